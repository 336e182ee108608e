package activation

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// EventMessage is a user event on the events topic (protocol §5).
type EventMessage struct {
	Source    string // "invoker<N>"
	EventType string // "Activation" or "Metric"
	Timestamp int64  // epoch milliseconds
	Subject   string
	Namespace string
	UserID    string // the invoking namespace's uuid
	// Exactly one of Activation and Metric is set, matching EventType.
	Activation *ActivationEvent
	Metric     *MetricEvent
}

// ActivationEvent is the body of an "Activation" event. Durations are milliseconds.
type ActivationEvent struct {
	Name                  string `json:"name"` // the path annotation
	ActivationID          string `json:"activationId"`
	StatusCode            int    `json:"statusCode"`
	Duration              int64  `json:"duration"`
	WaitTime              int64  `json:"waitTime"`
	InitTime              int64  `json:"initTime"`
	Kind                  string `json:"kind"`
	Conductor             bool   `json:"conductor"`
	Memory                int    `json:"memory"`
	CausedBy              string `json:"causedBy,omitempty"`
	Size                  *int   `json:"size,omitempty"`
	UserDefinedStatusCode *int   `json:"userDefinedStatusCode,omitempty"`
}

// MetricEvent is the body of a "Metric" event (sent by controllers, read here for completeness).
type MetricEvent struct {
	MetricName  string `json:"metricName"`
	MetricValue int64  `json:"metricValue"`
}

// MarshalJSON writes the event.
func (e EventMessage) MarshalJSON() ([]byte, error) {
	var body any = e.Activation
	if e.Metric != nil {
		body = e.Metric
	}
	return Marshal(struct {
		Source    string `json:"source"`
		Body      any    `json:"body"`
		Subject   string `json:"subject"`
		Namespace string `json:"namespace"`
		UserID    string `json:"userId"`
		EventType string `json:"eventType"`
		Timestamp int64  `json:"timestamp"`
	}{e.Source, body, e.Subject, e.Namespace, e.UserID, e.EventType, e.Timestamp})
}

// DecodeEvent reads an EventMessage. Errors are *FieldError wrapping ErrInvalidMessage.
func DecodeEvent(data []byte) (*EventMessage, error) {
	r := reader{doc: "EventMessage", kind: ErrInvalidMessage}
	if len(data) > MaxActivationLimit {
		return nil, r.fail(largestMember(data), ErrTooLarge, "message is %d bytes, above MAX_ACTIVATION_LIMIT", len(data))
	}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	e := &EventMessage{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"source", &e.Source}, {"subject", &e.Subject}, {"namespace", &e.Namespace}, {"userId", &e.UserID}, {"eventType", &e.EventType}} {
		if *f.dst, err = o.reqString(f.name); err != nil {
			return nil, err
		}
	}
	if e.Timestamp, err = o.reqInt("timestamp", math.MinInt64, math.MaxInt64); err != nil {
		return nil, err
	}
	b, _, err := o.object("body", true)
	if err != nil {
		return nil, err
	}
	if b.present("metricName") {
		m := &MetricEvent{}
		if m.MetricName, err = b.reqString("metricName"); err != nil {
			return nil, err
		}
		if m.MetricValue, err = b.reqInt("metricValue", math.MinInt64, math.MaxInt64); err != nil {
			return nil, err
		}
		e.Metric = m
		return e, nil
	}
	a := &ActivationEvent{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &a.Name}, {"activationId", &a.ActivationID}, {"kind", &a.Kind}} {
		if *f.dst, err = b.reqString(f.name); err != nil {
			return nil, err
		}
	}
	sc, err := b.reqInt("statusCode", math.MinInt32, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	a.StatusCode = int(sc)
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"duration", &a.Duration}, {"waitTime", &a.WaitTime}, {"initTime", &a.InitTime}} {
		if *f.dst, err = b.reqInt(f.name, math.MinInt64, math.MaxInt64); err != nil {
			return nil, err
		}
	}
	if a.Conductor, err = b.reqBool("conductor"); err != nil {
		return nil, err
	}
	mem, err := b.reqInt("memory", math.MinInt32, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	a.Memory = int(mem)
	if a.CausedBy, _, err = b.optString("causedBy"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  **int
	}{{"size", &a.Size}, {"userDefinedStatusCode", &a.UserDefinedStatusCode}} {
		n, err := b.optInt(f.name, math.MinInt32, math.MaxInt32)
		if err != nil {
			return nil, err
		}
		if n != nil {
			*f.dst = intPtr(int(*n))
		}
	}
	e.Activation = a
	return e, nil
}

// ActivationEventFrom derives the user event for record a (protocol §5): source is the
// invoker ("invoker0"), userID the invoking namespace's uuid, nowMillis the event time in
// epoch milliseconds. It returns false — no event — when the record lacks the path or kind
// annotation, as upstream.
func ActivationEventFrom(a *WhiskActivation, source, userID string, nowMillis int64) (EventMessage, bool) {
	path, ok1 := a.Annotations.GetString(AnnotationPath)
	kind, ok2 := a.Annotations.GetString(AnnotationKind)
	if !ok1 || !ok2 {
		return EventMessage{}, false
	}
	body := &ActivationEvent{Name: path, ActivationID: string(a.ActivationID), StatusCode: a.Response.StatusCode, Kind: kind}
	if a.Duration != nil {
		body.Duration = max(*a.Duration, 0)
	}
	if w, ok := a.Annotations.GetInt(AnnotationWaitTime); ok {
		body.WaitTime = max(w, 0)
	}
	if i, ok := a.Annotations.GetInt(AnnotationInitTime); ok {
		body.InitTime = max(i, 0)
	}
	body.Conductor, _ = a.Annotations.GetBool(AnnotationConductor)
	if lv, ok := a.Annotations.Get(AnnotationLimits); ok {
		var l struct {
			Memory json.Number `json:"memory"`
		}
		if json.Unmarshal(lv, &l) == nil {
			if n, err := parseWhole([]byte(l.Memory)); err == nil && n >= 0 && n <= math.MaxInt32 {
				body.Memory = int(n)
			}
		}
	}
	body.CausedBy, _ = a.Annotations.GetString(AnnotationCausedBy)
	if a.Response.Size != nil {
		body.Size = intPtr(*a.Response.Size)
	}
	body.UserDefinedStatusCode = userDefinedStatusCode(a.Response.Result)
	return EventMessage{Source: source, EventType: "Activation", Timestamp: nowMillis, Subject: a.Subject,
		Namespace: a.Namespace, UserID: userID, Activation: body}, true
}

// userDefinedStatusCode is result.error.statusCode, else result.statusCode, for an object
// result; a value that is not an integer counts as 400.
func userDefinedStatusCode(result json.RawMessage) *int {
	if jsonType(result) != "object" {
		return nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(result, &top) != nil {
		return nil
	}
	var code json.RawMessage
	if errv, ok := top["error"]; ok && jsonType(errv) == "object" {
		var em map[string]json.RawMessage
		if json.Unmarshal(errv, &em) == nil {
			code = em["statusCode"]
		}
	}
	if code == nil {
		code = top["statusCode"]
	}
	if code == nil {
		return nil
	}
	return intPtr(toIntOr400(code))
}

// toIntOr400 converts like Scala's convertTo[BigInt].intValue: a JSON number is truncated to
// an integer and keeps its low 32 bits; any other JSON value counts as 400 (Bad Request).
func toIntOr400(v json.RawMessage) int {
	if jsonType(v) != "number" {
		return 400
	}
	s := strings.TrimSpace(string(v))
	if bi, ok := new(big.Int).SetString(s, 10); ok {
		return int(int32(bi.Int64())) // Int64 keeps the low 64 bits, int32 the low 32
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 400
	}
	if math.Abs(f) < 9e18 {
		return int(int32(int64(f)))
	}
	// A huge value written with an exponent is a multiple of 2^32: its low 32 bits are 0.
	return 0
}
