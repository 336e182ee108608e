package activation

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// mutate decodes a fixture generically, applies f and re-encodes it.
func mutate(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// at walks a dotted path to the parent object and the last key.
func at(m map[string]any, path string) (map[string]any, string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		m = m[p].(map[string]any)
	}
	return m, parts[len(parts)-1]
}

func wantFieldError(t *testing.T, err error, field string, kind error) *FieldError {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v (%T), want *FieldError for %s", err, err, field)
	}
	if fe.Field != field {
		t.Errorf("error names %q, want %q: %v", fe.Field, field, err)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %v does not wrap %v", err, kind)
	}
	return fe
}

func TestActivationMessageRequiredFields(t *testing.T) {
	for _, path := range []string{
		"transid", "action", "action.path", "action.name", "revision", "user", "user.subject",
		"user.namespace", "user.namespace.name", "user.namespace.uuid", "user.authkey", "user.rights",
		"user.limits", "activationId", "rootControllerIndex", "rootControllerIndex.asString", "blocking",
		"initArgs", "lockedArgs",
	} {
		t.Run(path, func(t *testing.T) {
			b := mutate(t, "activation-message-blocking.json", func(m map[string]any) {
				p, k := at(m, path)
				delete(p, k)
			})
			_, err := DecodeActivationMessage(b)
			wantFieldError(t, err, path, ErrInvalidMessage)
		})
	}
	// Optional members may be absent: content, cause, traceContext, version, binding, instanceType.
	for _, path := range []string{"content", "action.version", "rootControllerIndex.instanceType"} {
		b := mutate(t, "activation-message-blocking.json", func(m map[string]any) {
			p, k := at(m, path)
			delete(p, k)
		})
		if _, err := DecodeActivationMessage(b); err != nil {
			t.Errorf("without %s: %v", path, err)
		}
	}
}

func TestActivationMessageWrongTypes(t *testing.T) {
	cases := []struct {
		path  string
		value any
		field string // defaults to path
	}{
		{"action", 5.0, ""},
		{"action", "guest", ""}, // a string must have at least ns/name
		{"action.version", 3.0, ""},
		{"action.version", "x.y", ""},
		{"action.path", "bad path!", ""},
		{"action.binding", "guest/bad!", ""},
		{"revision", true, ""},
		{"user", "guest", ""},
		{"user.subject", 12345.0, ""},
		{"user.namespace.name", "bad name!", ""},
		{"user.rights", []any{"READ", 1.0}, "user.rights[1]"},
		{"user.limits.maxActionMemory", "512", ""},
		{"user.limits.maxActionMemory", 1.5, ""},
		{"user.limits.maxPayloadSize", "12 XB", ""},
		{"user.limits.storeActivations", "no", ""},
		{"user.limits.allowedKinds", "nodejs:20", ""},
		{"activationId", true, ""},
		{"activationId", "c5a6e53a9e5c4f6ba6e53a9e5c2f6b1g", ""},
		{"activationId", 1e31, ""},
		{"rootControllerIndex", []any{}, ""},
		{"rootControllerIndex.asString", 0.0, ""},
		{"rootControllerIndex.asString", strings.Repeat("a", 129), ""},
		{"blocking", 1.0, ""},
		{"initArgs", map[string]any{}, ""},
		{"initArgs", []any{1.0}, "initArgs[0]"},
		{"lockedArgs", []any{}, ""},
		{"cause", 5.0, ""},
		{"traceContext", map[string]any{"a": 1.0}, "traceContext.a"},
		{"traceContext", "x", ""},
	}
	for _, c := range cases {
		field := c.field
		if field == "" {
			field = c.path
		}
		t.Run(c.path, func(t *testing.T) {
			b := mutate(t, "activation-message-blocking.json", func(m map[string]any) {
				p, k := at(m, c.path)
				p[k] = c.value
			})
			_, err := DecodeActivationMessage(b)
			wantFieldError(t, err, field, ErrInvalidMessage)
		})
	}
}

func TestActivationMessageAcceptedForms(t *testing.T) {
	// A badly shaped transid reads as sid_unknown and is still echoed as received.
	b := mutate(t, "activation-message-blocking.json", func(m map[string]any) { m["transid"] = map[string]any{"x": 1.0} })
	m, err := DecodeActivationMessage(b)
	if err != nil || m.TransID.ID != UnknownTransactionID || !m.TransID.Malformed || string(m.TransID.Raw()) != `{"x":1}` {
		t.Fatalf("malformed transid: %+v %v", m, err)
	}
	// The action may be a plain "ns/pkg/name" string; null content is absent; scalar content parses.
	b = mutate(t, "activation-message-blocking.json", func(m map[string]any) {
		m["action"] = "guest/pkg/hello"
		m["content"] = nil
	})
	if m, err = DecodeActivationMessage(b); err != nil || m.Action.Path != "guest/pkg" || m.Action.Name != "hello" || m.Content != nil {
		t.Fatalf("string action: %+v %v", m, err)
	}
	b = mutate(t, "activation-message-blocking.json", func(m map[string]any) { m["content"] = "text" })
	if _, err = DecodeActivationMessage(b); err != nil {
		t.Fatalf("scalar content: %v", err)
	}
	// Generic authkeys keep all members; unknown members are ignored.
	b = mutate(t, "activation-message-blocking.json", func(m map[string]any) {
		m["user"].(map[string]any)["authkey"] = map[string]any{"token": "t", "extra": 1.0}
		m["somethingNew"] = []any{1.0}
	})
	if m, err = DecodeActivationMessage(b); err != nil || len(m.User.AuthKey) != 2 || m.User.APIKey() != "" {
		t.Fatalf("generic authkey: %+v %v", m, err)
	}
}

func TestActivationMessageSizeLimit(t *testing.T) {
	build := func(contentLen int) []byte {
		return mutate(t, "activation-message-blocking.json", func(m map[string]any) {
			m["content"] = map[string]any{"blob": strings.Repeat("a", contentLen)}
		})
	}
	base := len(build(0))
	fits := build(MaxActivationLimit - base)
	if len(fits) != MaxActivationLimit {
		t.Fatalf("built %d bytes", len(fits))
	}
	if _, err := DecodeActivationMessage(fits); err != nil {
		t.Fatalf("a record of exactly MaxActivationLimit bytes is refused: %v", err)
	}
	_, err := DecodeActivationMessage(build(MaxActivationLimit - base + 1))
	wantFieldError(t, err, "content", ErrInvalidMessage)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("%v does not wrap ErrTooLarge", err)
	}
	// Not even JSON: still refused as too large, before parsing.
	_, err = DecodeActivationMessage([]byte(strings.Repeat("[", MaxActivationLimit+1)))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized garbage: %v", err)
	}
}

func TestActivationIDs(t *testing.T) {
	good := []string{`"c5a6e53a9e5c4f6ba6e53a9e5c2f6b11"`, `20240531160910123456789012345678`, `"00000000000000000000000000000000"`}
	for _, s := range good {
		if id, err := decodeActivationID([]byte(s)); err != nil || len(id) != 32 {
			t.Errorf("%s: %q %v", s, id, err)
		}
	}
	bad := map[string]string{
		`"c5a6e53a9e5c4f6ba6e53a9e5c2f6b1"`:    "Activation id length is 31 but must be 32.",
		`"c5a6e53a9e5c4f6ba6e53a9e5c2f6b111"`:  "Activation id length is 33 but must be 32.",
		`"C5A6E53A9E5C4F6BA6E53A9E5C2F6B11"`:   "The activation id is not valid.",
		`"c5a6e53a-9e5c-4f6b-a6e5-3a9e5c2f6b"`: "Activation id length is 34 but must be 32.",
		`""`:                                   "Activation id length is 0 but must be 32.",
		`1717171717`:                           "Activation id length is 10 but must be 32.",
		`-2024053116091012345678901234567`:     "The activation id is not valid.",
		`2.024053116091012345678901234567e31`:  "Activation id length is 35 but must be 32.",
		`null`:                                 "The activation id is not valid.",
		`{}`:                                   "The activation id is not valid.",
	}
	for s, msg := range bad {
		_, err := decodeActivationID([]byte(s))
		if !errors.Is(err, ErrInvalidActivationID) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", s, err, msg)
		}
	}
	if id := NewActivationID(); len(id) != 32 {
		t.Error(id)
	} else if _, err := ParseActivationID(string(id)); err != nil {
		t.Error(err)
	}
}

func TestByteSize(t *testing.T) {
	good := map[string]struct {
		bytes int64
		print string
	}{
		"2147483648 B": {2147483648, "2147483648 B"},
		"1024 MB":      {1 << 30, "1024 MB"},
		"1024 mb":      {1 << 30, "1024 MB"},
		"1 g":          {1 << 30, "1 GB"},
		" 5K ":         {5 << 10, "5 KB"},
		"7KB":          {7 << 10, "7 KB"},
		"0 B":          {0, "0 B"},
		"256 M":        {256 << 20, "256 MB"},
	}
	for s, w := range good {
		b, err := ParseByteSize(s)
		if err != nil || b.Bytes() != w.bytes || b.String() != w.print {
			t.Errorf("%q: %v bytes=%d print=%q err=%v", s, b, b.Bytes(), b.String(), err)
		}
	}
	for _, s := range []string{"12 XB", "", "MB", "-1 MB", "1.5 MB", "1  MB", "1 TB", "99999999999999999999 B", "9999999999999 GB", "1 MBB"} {
		if b, err := ParseByteSize(s); !errors.Is(err, ErrInvalidByteSize) {
			t.Errorf("%q: accepted as %v (%v)", s, b, err)
		}
	}
	var b ByteSize
	if err := json.Unmarshal([]byte(`2048`), &b); !errors.Is(err, ErrInvalidByteSize) {
		t.Errorf("number accepted: %v", err)
	}
}

func TestTransactionIDShapes(t *testing.T) {
	cases := []struct {
		raw       string
		id        string
		start     int64
		extra     bool
		parent    string
		malformed bool
	}{
		{`["abc",17]`, "abc", 17, false, "", false},
		{`["abc",17,true]`, "abc", 17, true, "", false},
		{`["abc",17,false]`, "abc", 17, false, "", false},
		{`["abc",17,["p",3]]`, "abc", 17, false, "p", false},
		{`["abc",17,true,["p",3,["q",1]]]`, "abc", 17, true, "p", false},
		{`["abc",17,true,"junk"]`, "abc", 17, true, "", false}, // a bad parent is dropped
		{`["abc"]`, UnknownTransactionID, 0, false, "", true},
		{`[17,"abc"]`, UnknownTransactionID, 0, false, "", true},
		{`["abc",17,1,2]`, UnknownTransactionID, 0, false, "", true},
		{`"abc"`, UnknownTransactionID, 0, false, "", true},
		{`["a","b","c","d","e"]`, UnknownTransactionID, 0, false, "", true},
	}
	for _, c := range cases {
		var tid TransactionID
		if err := json.Unmarshal([]byte(c.raw), &tid); err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		parent := ""
		if tid.Parent != nil {
			parent = tid.Parent.ID
		}
		if tid.ID != c.id || tid.Start != c.start || tid.ExtraLogging != c.extra || parent != c.parent || tid.Malformed != c.malformed {
			t.Errorf("%s: %+v", c.raw, tid)
		}
		out, _ := Marshal(tid)
		if string(out) != c.raw {
			t.Errorf("%s echoed as %s", c.raw, out)
		}
	}
	out, _ := Marshal(TransactionID{ID: "a<b&c", Start: 5, ExtraLogging: true, Parent: &TransactionID{ID: "p", Start: 1}})
	if string(out) != `["a<b&c",5,true,["p",1]]` {
		t.Errorf("canonical form %s", out)
	}
}

func TestOtherRequiredFields(t *testing.T) {
	cases := []struct {
		fixture, path string
		decode        func([]byte) error
		kind          error
	}{}
	ack := func(b []byte) error { _, err := DecodeAck(b); return err }
	ping := func(b []byte) error { _, err := DecodePing(b); return err }
	inst := func(b []byte) error { _, err := DecodeInvokerInstanceID(b); return err }
	rec := func(b []byte) error { _, err := DecodeStoredActivation(b); return err }
	ev := func(b []byte) error { _, err := DecodeEvent(b); return err }
	act := func(b []byte) error { _, err := DecodeAction(b, nil); return err }
	add := func(fixture string, decode func([]byte) error, kind error, paths ...string) {
		for _, p := range paths {
			cases = append(cases, struct {
				fixture, path string
				decode        func([]byte) error
				kind          error
			}{fixture, p, decode, kind})
		}
	}
	add("ack-completion.json", ack, ErrInvalidMessage, "transid", "activationId", "instance.instance", "instance.userMemory", "instance.dedicatedNamespaces")
	add("ack-result.json", ack, ErrInvalidMessage, "response.namespace", "response.activationId", "response.start", "response.end",
		"response.response", "response.version", "response.publish", "response.annotations", "response.subject", "response.name")
	add("ack-combined.json", ack, ErrInvalidMessage, "instance.instanceType", "response.response.statusCode")
	add("ping.json", ping, ErrInvalidMessage, "name", "name.userMemory", "name.tags")
	add("invoker-instance-id.json", inst, ErrInvalidMessage, "instance", "userMemory", "instanceType", "tags", "dedicatedNamespaces")
	add("activation-record-stored-success.json", rec, ErrInvalidRecord, "namespace", "name", "subject", "activationId", "start", "end",
		"response", "response.statusCode", "logs", "version", "publish", "annotations")
	add("event-activation.json", ev, ErrInvalidMessage, "source", "eventType", "timestamp", "subject", "namespace", "userId", "body",
		"body.name", "body.activationId", "body.statusCode", "body.duration", "body.waitTime", "body.initTime", "body.kind", "body.conductor", "body.memory")
	add("action-doc-nodejs-inline.json", act, ErrInvalidAction, "namespace", "name", "version", "publish", "exec", "exec.kind", "exec.code",
		"exec.code.attachmentName", "exec.code.attachmentType", "parameters", "limits", "limits.timeout", "limits.memory", "annotations")
	// Without "instance" a completion reads as a ResultMessage, which then lacks "response".
	b := mutate(t, "ack-completion.json", func(m map[string]any) { delete(m, "instance") })
	wantFieldError(t, ack(b), "response", ErrInvalidMessage)
	for _, c := range cases {
		t.Run(c.fixture+"/"+c.path, func(t *testing.T) {
			b := mutate(t, c.fixture, func(m map[string]any) {
				p, k := at(m, c.path)
				delete(p, k)
			})
			wantFieldError(t, c.decode(b), c.path, c.kind)
		})
	}
}

func TestDecodersRefuseNonObjects(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"message":  func(b []byte) error { _, err := DecodeActivationMessage(b); return err },
		"ack":      func(b []byte) error { _, err := DecodeAck(b); return err },
		"ping":     func(b []byte) error { _, err := DecodePing(b); return err },
		"instance": func(b []byte) error { _, err := DecodeInvokerInstanceID(b); return err },
		"record":   func(b []byte) error { _, err := DecodeStoredActivation(b); return err },
		"event":    func(b []byte) error { _, err := DecodeEvent(b); return err },
		"action":   func(b []byte) error { _, err := DecodeAction(b, nil); return err },
		"manifest": func(b []byte) error { _, err := DecodeManifest(b); return err },
	}
	for name, d := range decoders {
		for _, in := range []string{"", "null", "[]", `"x"`, "42", "{", `{"a":}`, "\xff"} {
			err := d([]byte(in))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "" {
				t.Errorf("%s(%q) = %v, want a *FieldError about the whole document", name, in, err)
			}
		}
	}
}
