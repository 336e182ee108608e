package invoker

import (
	"strings"
	"testing"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/unikernel"
)

// TestMetricsExportDriverCollectors: a driver with its own Prometheus collector (the unikernel
// driver, here on the host's /dev/kvm) has its metrics on the admin API's /metrics next to the
// invoker's, they are live (an activation the driver ran is counted), and the fallbacks between
// drivers are exported too.
func TestMetricsExportDriverCollectors(t *testing.T) {
	w := newWorld(t, false)
	if err := unikernel.Probe(t.Context(), backend.Config{}); err != nil {
		t.Fatalf("the unikernel driver cannot run here (it needs /dev/kvm, see scripts/install-deps.sh): %v", err)
	}
	if err := w.registry.Register(unikernel.Name, unikernel.Registration()); err != nil {
		t.Fatal(err)
	}
	p := w.process("SNAPINVOKER_DRIVERS=blackbox=unikernel,process")
	stop := run(p)

	body := get(t, "http://"+p.Addr()+"/metrics")
	for _, name := range []string{"snapinvoker_unikernel_snapshot_builds_total", "snapinvoker_unikernel_restores_total",
		"snapinvoker_unikernel_ready_guests", "snapinvoker_driver_fallbacks_total 0"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s:\n%s", name, grep(body, "unikernel"))
		}
	}

	id := aid(900)
	w.invoke("echo", id, true, map[string]any{"name": "kvm"}, nil)
	if a := w.record(id).WhiskActivation; a.Response.StatusCode != activation.StatusSuccess {
		t.Fatalf("echo on the unikernel driver: status %d, result %s", a.Response.StatusCode, a.Response.Result)
	}
	body = get(t, "http://"+p.Addr()+"/metrics")
	if !strings.Contains(body, "snapinvoker_unikernel_activations_total 1\n") {
		t.Fatalf("/metrics does not count the activation the unikernel driver ran:\n%s", grep(body, "unikernel"))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
