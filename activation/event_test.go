package activation

import (
	"encoding/json"
	"testing"
)

func TestActivationEventRules(t *testing.T) {
	base := func() WhiskActivation {
		d := int64(5)
		return WhiskActivation{Namespace: "guest", Subject: "guest", ActivationID: "c5a6e53a9e5c4f6ba6e53a9e5c2f6b11", Duration: &d,
			Response:    SuccessResponse(json.RawMessage(`{}`), nil),
			Annotations: Parameters{{Key: AnnotationPath, Value: json.RawMessage(`"guest/a"`)}, {Key: AnnotationKind, Value: json.RawMessage(`"nodejs:20"`)}}}
	}
	a := base()
	ev, ok := ActivationEventFrom(&a, "invoker3", "uuid", 7)
	if !ok || ev.Source != "invoker3" || ev.Timestamp != 7 || ev.Activation.Memory != 0 || ev.Activation.InitTime != 0 ||
		ev.Activation.WaitTime != 0 || ev.Activation.Duration != 5 || ev.Activation.Size != nil || ev.Activation.CausedBy != "" {
		t.Errorf("defaults: %+v %+v", ev, ev.Activation)
	}
	for _, drop := range []string{AnnotationPath, AnnotationKind} {
		a := base()
		var kept Parameters
		for _, p := range a.Annotations {
			if p.Key != drop {
				kept = append(kept, p)
			}
		}
		a.Annotations = kept
		if _, ok := ActivationEventFrom(&a, "invoker0", "u", 0); ok {
			t.Errorf("event derived without %s", drop)
		}
	}
	for result, want := range map[string]int{
		`{"error":{"statusCode":422}}`:     422,
		`{"statusCode":201}`:               201,
		`{"error":{"statusCode":"x"}}`:     400,
		`{"statusCode":4294967297}`:        1, // low 32 bits, as BigInt.intValue
		`{"error":"plain","statusCode":7}`: 7,
		`{"statusCode":418.9}`:             418,
	} {
		a := base()
		a.Response.Result = json.RawMessage(result)
		ev, _ := ActivationEventFrom(&a, "invoker0", "u", 0)
		if ev.Activation.UserDefinedStatusCode == nil || *ev.Activation.UserDefinedStatusCode != want {
			t.Errorf("%s: userDefinedStatusCode %v, want %d", result, ev.Activation.UserDefinedStatusCode, want)
		}
	}
	for _, result := range []string{`["statusCode"]`, `{"x":1}`, `null`} {
		a := base()
		a.Response.Result = json.RawMessage(result)
		if ev, _ := ActivationEventFrom(&a, "invoker0", "u", 0); ev.Activation.UserDefinedStatusCode != nil {
			t.Errorf("%s: userDefinedStatusCode %d", result, *ev.Activation.UserDefinedStatusCode)
		}
	}
	// Metric events are read too.
	e, err := DecodeEvent([]byte(`{"source":"controller0","eventType":"Metric","timestamp":1,"subject":"guest","namespace":"guest","userId":"u","body":{"metricName":"ConcurrentInvocations","metricValue":3}}`))
	if err != nil || e.Metric == nil || e.Metric.MetricValue != 3 || e.Activation != nil {
		t.Fatalf("metric: %+v %v", e, err)
	}
	if b, _ := Marshal(e); string(b) != `{"source":"controller0","body":{"metricName":"ConcurrentInvocations","metricValue":3},"subject":"guest","namespace":"guest","userId":"u","eventType":"Metric","timestamp":1}` {
		t.Errorf("metric encoded as %s", b)
	}
}
