package activation

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestChooseAcksScript runs testdata/acks.txt through ChooseAcks.
func TestChooseAcksScript(t *testing.T) {
	f, err := os.Open("testdata/acks.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	situations := map[string]AckSituation{"after-run": AfterRun, "pre-execution": PreExecutionFailure,
		"blacklisted": Blacklisted, "container-start": ContainerStartFailure, "aborted": AbortedBuffered}
	n := 0
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		in, want, ok := strings.Cut(text, "->")
		f := strings.Fields(in)
		if !ok || len(f) != 3 {
			t.Fatalf("acks.txt:%d: malformed %q", line, text)
		}
		s, ok := situations[f[0]]
		if !ok {
			t.Fatalf("acks.txt:%d: unknown situation %q", line, f[0])
		}
		plan := ChooseAcks(s, f[1] == "blocking", f[2] == "logs")
		if got := formatPlan(plan); got != strings.Join(strings.Fields(want), " ") {
			t.Errorf("acks.txt:%d: %s\n got: %s\nwant: %s", line, in, got, strings.Join(strings.Fields(want), " "))
		}
		n++
	}
	if n < 12 {
		t.Fatalf("only %d cases", n)
	}
}

func formatPlan(p AckPlan) string {
	var steps []string
	for _, s := range p.Steps {
		w := []string{s.Kind.String()}
		if s.Shrink {
			w = append(w, "shrunk")
		}
		if s.AfterLogs {
			w = append(w, "after-logs")
		}
		if s.Event {
			w = append(w, "event")
		}
		steps = append(steps, strings.Join(w, " "))
	}
	store := "no-store"
	if p.Store {
		store = "store"
	}
	return strings.Join(steps, ", ") + "; " + store
}

func TestAckShrinkAndKinds(t *testing.T) {
	a := &WhiskActivation{ActivationID: "c5a6e53a9e5c4f6ba6e53a9e5c2f6b11", Response: WhiskError("x"), Logs: []string{"l"}}
	tid := NewTransactionID("t", 1)
	for _, k := range []AckKind{ResultAck, CompletionAck, CombinedAck} {
		ack := NewAck(k, tid, a, invoker0)
		if ack.ID() != a.ActivationID {
			t.Errorf("%v: ID %q", k, ack.ID())
		}
		if ack.FreesSlot() != (k != ResultAck) {
			t.Errorf("%v: FreesSlot %v", k, ack.FreesSlot())
		}
		if k != ResultAck && (ack.IsSystemError == nil || !*ack.IsSystemError) {
			t.Errorf("%v: isSystemError not set for a whisk error", k)
		}
		s := ack.Shrink()
		b, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeAck(b)
		if err != nil {
			t.Fatalf("%v: %v\n%s", k, err, b)
		}
		if back.Kind != k || back.ID() != a.ActivationID || back.Response.Activation != nil {
			t.Errorf("%v: shrunk round trip gave %+v from %s", k, back, b)
		}
	}
	// A Result sent before log collection carries logs [], the stored record keeps them.
	acks := BuildAcks(ChooseAcks(AfterRun, true, true), tid, a, invoker0)
	if len(acks[0].Response.Activation.Logs) != 0 || len(a.Logs) != 1 {
		t.Errorf("result ack logs %v, record logs %v", acks[0].Response.Activation.Logs, a.Logs)
	}
}
