package activation

import (
	"encoding/json"
	"testing"
	"time"
)

// Benchmarks report absolute costs; compare each with the generic encoding/json baseline on
// the same bytes in the same run (BenchmarkBaseline*), never with fixed numbers.

func BenchmarkDecodeActivationMessage(b *testing.B) {
	data := readFixture(b, "activation-message-blocking.json")
	data = compact(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeActivationMessage(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineGenericDecodeMessage(b *testing.B) {
	data := compact(readFixture(b, "activation-message-blocking.json"))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResultAck(b *testing.B) {
	a, err := DecodeAck(readFixture(b, "ack-result.json"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Marshal(a); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineGenericEncodeAck(b *testing.B) {
	var v map[string]any
	if err := json.Unmarshal(readFixture(b, "ack-result.json"), &v); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClassifyRun(b *testing.B) {
	o := RuntimeOutcome{Status: 200, Body: []byte(`{"payload":"Hello, World"}`), Length: 26}
	l := ResponseLimits{Timeout: time.Minute, MaxPayload: 1 << 20, Truncation: 1 << 20}
	for b.Loop() {
		ClassifyRun(o, l)
	}
}

func BenchmarkBuildRun(b *testing.B) {
	msg, err := DecodeActivationMessage(readFixture(b, "activation-message-init-and-locked-args.json"))
	if err != nil {
		b.Fatal(err)
	}
	doc, err := DecodeAction(readFixture(b, "action-doc-with-params-init-encryption.json"), nil)
	if err != nil {
		b.Fatal(err)
	}
	keys, _ := DecodeParameterKeys(readFixture(b, "parameter-encryption-keys.json"))
	for b.Loop() {
		r, err := BuildRun(Invocation{Msg: msg, Action: doc, Keys: keys, Deadline: 1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
