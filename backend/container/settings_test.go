package container

import (
	"testing"

	"github.com/snapinvoker/snapinvoker/activation"
)

func TestOptionsFor(t *testing.T) {
	m := &activation.Manifest{Families: map[string][]activation.RuntimeKind{
		"nodejs": {{Kind: "nodejs:20", Image: activation.ImageName{Prefix: "openwhisk", Name: "action-nodejs-v20", Tag: "nightly"}}},
	}}
	opts := OptionsFor(Settings{Engine: "docker", APIHost: "https://h:443", DockerNetwork: "whisk", InvokerName: "invoker0",
		UserMemory: 2 << 30, CPUs: 1.5, Manifest: m})
	o, err := parseOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	if o.engine != "docker" || o.docker.apiHost != "https://h:443" || o.docker.network != "whisk" || o.docker.namePrefix != "wskinvoker0_" ||
		o.userMemory != 2<<30 || o.cpus != 1.5 || o.docker.images["nodejs:20"] != "openwhisk/action-nodejs-v20:nightly" {
		t.Fatalf("options %v parsed as %+v", opts, o)
	}
	if len(OptionsFor(Settings{})) != 0 {
		t.Fatalf("zero settings give options %v", OptionsFor(Settings{}))
	}
}
