package standalone

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/snapinvoker/snapinvoker/activation"
)

func TestDefaultManifestFollowsTheDrivers(t *testing.T) {
	down := errors.New("no /dev/kvm")
	for _, tc := range []struct {
		name    string
		drivers []DriverStatus
		kinds   []string
		black   int
	}{
		{"container", []DriverStatus{{Name: "container", Kinds: []string{"nodejs:*", "python:3*", "blackbox"}}},
			[]string{"nodejs:20", "python:3.11"}, 2},
		{"unavailable drivers do not count", []DriverStatus{
			{Name: "container", Kinds: []string{"nodejs:*"}},
			{Name: "jvm", Kinds: []string{"java:*"}, Err: down}}, []string{"nodejs:20"}, 0},
		{"java and go", []DriverStatus{{Name: "x", Kinds: []string{"java:8", "go:*"}}}, []string{"go:1.20", "java:8"}, 0},
		{"nothing runs: upstream's fallback", []DriverStatus{{Name: "u", Kinds: []string{"blackbox"}, Err: down}}, []string{"nodejs:20"}, 0},
		{"no drivers at all", nil, []string{"nodejs:20"}, 0},
	} {
		raw := DefaultManifest(tc.drivers)
		m, err := activation.DecodeManifest(raw)
		if err != nil {
			t.Fatalf("%s: the built manifest is invalid: %v\n%s", tc.name, err, raw)
		}
		if got := m.Kinds(); !reflect.DeepEqual(got, tc.kinds) {
			t.Errorf("%s: kinds %v, want %v", tc.name, got, tc.kinds)
		}
		if len(m.Blackboxes) != tc.black {
			t.Errorf("%s: %d blackboxes, want %d", tc.name, len(m.Blackboxes), tc.black)
		}
		if tc.black > 0 && !m.IsNativeBlackbox("openwhisk/dockerskeleton") {
			t.Errorf("%s: the image of wsk --native is not native", tc.name)
		}
		if k, ok := m.Resolve("java:default"); ok && !k.RequiresMain() {
			t.Errorf("%s: java:8 must require main", tc.name)
		}
		var v map[string]json.RawMessage
		json.Unmarshal(raw, &v)
		if _, ok := v["runtimes"]; !ok {
			t.Errorf("%s: no runtimes member: %s", tc.name, raw)
		}
	}
}

func TestDriverOrderPutsFastDriversFirst(t *testing.T) {
	down := errors.New("no /dev/kvm")
	for _, tc := range []struct {
		name    string
		drivers []DriverStatus
		want    string
	}{
		{"unikernel before container", []DriverStatus{
			{Name: "container", Kinds: []string{"nodejs:*", "python:3*", "blackbox"}},
			{Name: "unikernel", Kinds: []string{"blackbox"}}}, "blackbox=unikernel,container"},
		{"unavailable fast driver", []DriverStatus{
			{Name: "container", Kinds: []string{"blackbox"}},
			{Name: "unikernel", Kinds: []string{"blackbox"}, Err: down}}, ""},
		{"no container to fall back to", []DriverStatus{{Name: "unikernel", Kinds: []string{"blackbox"}}}, "blackbox=unikernel"},
		{"every pattern of a fast driver", []DriverStatus{
			{Name: "container", Kinds: []string{"python:3*"}},
			{Name: "jvm", Kinds: []string{"java:*", "python:3*"}},
			{Name: "unikernel", Kinds: []string{"python:3*", "blackbox"}}},
			"java:*=jvm,container;python:3*=jvm,container;blackbox=unikernel,container"},
		{"container only", []DriverStatus{{Name: "container", Kinds: []string{"blackbox"}}}, ""},
	} {
		if got := DriverOrder(tc.drivers); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
