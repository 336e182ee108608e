package container

import (
	"strconv"

	"github.com/snapinvoker/snapinvoker/activation"
)

// Settings are the invoker-level facts the driver's options come from. OptionsFor renders them
// as the options the driver reads (backend.SetConfig.Options[DriverName]), so the invoker does
// not spell option names itself.
type Settings struct {
	// Engine is "runc" (default) or "docker".
	Engine string
	// APIHost becomes __OW_API_HOST in every container (whisk.api.host: proto://host:port).
	APIHost string
	// Network is NetworkLoopback (default) or NetworkHost for runc; DockerNetwork names the
	// Docker network (whisk.container-factory.container-args.network).
	Network, DockerNetwork string
	// DockerHost is the Engine API address (unix:///var/run/docker.sock).
	DockerHost string
	// InvokerName is {uniqueName}{id} in upstream's container names wsk{InvokerName}_….
	InvokerName string
	// UserMemory is the invoker's user memory in bytes (cpu shares are relative to it).
	UserMemory int64
	// CPUs, when positive, caps each container at that many CPUs.
	CPUs float64
	// Manifest supplies the image of every kind (Docker engine).
	Manifest *activation.Manifest
}

// OptionsFor renders s as driver options.
func OptionsFor(s Settings) map[string]string {
	o := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			o[k] = v
		}
	}
	set("engine", s.Engine)
	set("api-host", s.APIHost)
	set("network", s.Network)
	set("docker-network", s.DockerNetwork)
	set("docker-host", s.DockerHost)
	set("invoker-name", s.InvokerName)
	if s.UserMemory > 0 {
		o["user-memory"] = strconv.FormatInt(s.UserMemory, 10)
	}
	if s.CPUs > 0 {
		o["cpus"] = strconv.FormatFloat(s.CPUs, 'f', -1, 64)
	}
	if s.Manifest != nil {
		for _, kinds := range s.Manifest.Families {
			for _, k := range kinds {
				o["image."+k.Kind] = k.Image.String()
			}
		}
	}
	return o
}
