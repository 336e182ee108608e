package invoker

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
	"github.com/snapinvoker/snapinvoker/backend/container"
)

// TestHealthActionSucceeds: the controller's health test action (nodejs, revision null,
// non-blocking, sid_invokerHealth transid) runs on the container driver (runc, the host's node)
// and is answered with one Completion carrying the transid byte for byte and no system error,
// which is what moves the invoker to Healthy.
func TestHealthActionSucceeds(t *testing.T) {
	w := newWorld(t, false)
	reg, ok := backend.DefaultRegistry().Lookup(container.DriverName)
	if !ok {
		t.Fatal("the container driver is not registered")
	}
	if err := w.registry.Register(container.DriverName, reg); err != nil {
		t.Fatal(err)
	}
	if err := reg.Probe(t.Context(), backend.Config{}); err != nil {
		t.Fatalf("the container driver cannot run here (install runc and run as root: scripts/install-deps.sh): %v", err)
	}
	p := w.process("SNAPINVOKER_DRIVERS=nodejs:*=container;blackbox=process")
	stop := run(p)
	raw, err := os.ReadFile("testdata/activation-message-health.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		TransID      json.RawMessage `json:"transid"`
		ActivationID string          `json:"activationId"`
	}
	json.Unmarshal(raw, &m)
	w.publish(raw)
	acks := w.waitAcks(m.ActivationID, 1)
	var want bytes.Buffer
	json.Compact(&want, m.TransID)
	got, _ := json.Marshal(acks[0].TransID)
	if string(got) != want.String() {
		t.Fatalf("transid %s, want %s", got, want.String())
	}
	if acks[0].Kind != activation.CompletionAck || *acks[0].IsSystemError {
		t.Fatalf("health ack = %+v; want a Completion without system error", acks[0])
	}
	rec := w.recordIn("whisk.system", m.ActivationID).WhiskActivation
	if rec.Response.StatusCode != activation.StatusSuccess || rec.Namespace != "whisk.system" {
		t.Fatalf("health record = %d %s in %s", rec.Response.StatusCode, rec.Response.Result, rec.Namespace)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
