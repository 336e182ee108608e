package activation

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// These tests rebuild the fixtures that the rules produce (runtime bodies, records, acks,
// events) from the fixtures they are produced from, following the README's cross-file
// relations.

func loadMsg(t *testing.T, name string) *ActivationMessage {
	t.Helper()
	m, err := DecodeActivationMessage(readFixture(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func loadAction(t *testing.T, name string) *ActionDocument {
	t.Helper()
	d, err := DecodeAction(readFixture(t, name), testManifest(t))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

func loadKeys(t *testing.T) ParameterKeys {
	t.Helper()
	k, err := DecodeParameterKeys(readFixture(t, "parameter-encryption-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func loadStored(t *testing.T, name string) *StoredActivation {
	t.Helper()
	s, err := DecodeStoredActivation(readFixture(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

func assertJSONEqual(t *testing.T, what string, got []byte, want []byte) {
	t.Helper()
	if !reflect.DeepEqual(generic(t, got), generic(t, want)) {
		t.Errorf("%s differs\n got: %s\nwant: %s", what, got, compact(want))
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ms(n int64) time.Time { return time.UnixMilli(n) }

// sortArrayAction is the action of group D (no document fixture exists for it).
func sortArrayAction(t *testing.T) *ActionDocument {
	d := loadAction(t, "action-doc-nodejs-inline.json")
	d.ID, d.Name, d.Version = "guest/sort-array", "sort-array", SemVer{0, 0, 1}
	d.Annotations = Parameters{{Key: AnnotationProvideAPIKey, Value: json.RawMessage("false")}}
	return d
}

func TestRuntimeBodiesFromFixtures(t *testing.T) {
	keys := loadKeys(t)
	cases := []struct {
		name                  string
		msg, action           string
		actionDoc             func(*testing.T) *ActionDocument
		initDeadline, runDead int64
		initFixture, runFix   string
	}{
		{name: "A cold start", msg: "activation-message-blocking.json", action: "action-doc-nodejs-inline.json",
			initDeadline: 1717171717935 + 60000, runDead: 1717171717935 + 289 + 60000,
			initFixture: "init-request.json", runFix: "run-request.json"},
		{name: "H init and locked args", msg: "activation-message-init-and-locked-args.json", action: "action-doc-with-params-init-encryption.json",
			initDeadline: 1717172032011, runDead: 1717172032154,
			initFixture: "init-request-init-and-locked-args.json", runFix: "run-request-init-and-locked-args.json"},
		{name: "D array content", msg: "activation-message-array-content.json", actionDoc: sortArrayAction,
			runDead: 1717171802218 + 60000, runFix: "run-request-array-content.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := loadMsg(t, c.msg)
			var doc *ActionDocument
			if c.actionDoc != nil {
				doc = c.actionDoc(t)
			} else {
				doc = loadAction(t, c.action)
			}
			if c.initFixture != "" {
				init, err := BuildInit(Invocation{Msg: msg, Action: doc, Keys: keys, Deadline: c.initDeadline})
				if err != nil {
					t.Fatal(err)
				}
				assertJSONEqual(t, "/init body", marshal(t, init), readFixture(t, c.initFixture))
			}
			run, err := BuildRun(Invocation{Msg: msg, Action: doc, Keys: keys, Deadline: c.runDead})
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, "/run body", marshal(t, run), readFixture(t, c.runFix))
		})
	}
}

func TestRuntimeBodyRules(t *testing.T) {
	keys := loadKeys(t)
	msg := loadMsg(t, "activation-message-blocking.json")
	py := loadAction(t, "action-doc-python-plain-string.json") // no provide-api-key: key provided
	init, err := BuildInit(Invocation{Msg: msg, Action: py, Keys: keys, Deadline: 5})
	if err != nil {
		t.Fatal(err)
	}
	if init.Env["__OW_API_KEY"] != msg.User.APIKey() || init.Code == nil || !strings.Contains(*init.Code, "def main") {
		t.Errorf("plain-string python action: env %v code %v", init.Env, init.Code)
	}
	if init.Env["__OW_DEADLINE"] != "5" {
		t.Errorf("deadline %q", init.Env["__OW_DEADLINE"])
	}

	// Without a version: "" in the /init env, null in the /run body.
	nov := *msg
	nov.Action.Version = nil
	init, _ = BuildInit(Invocation{Msg: &nov, Action: py, Keys: keys})
	run, _ := BuildRun(Invocation{Msg: &nov, Action: py, Keys: keys})
	if v, ok := init.Env["__OW_ACTION_VERSION"]; !ok || v != "" {
		t.Errorf("init env version = %q, %v", v, ok)
	}
	if string(run.Context["action_version"]) != "null" {
		t.Errorf("run action_version = %s", run.Context["action_version"])
	}

	// Init args are stringified; __OW_ keys win over a parameter of the same name.
	odd := *msg
	odd.Content = json.RawMessage(`{"n":4711,"f":1.5,"b":true,"z":null,"o":{"a":[1,2]},"s":"x","__OW_NAMESPACE":"spoof","keep":1}`)
	odd.InitArgs = []string{"n", "f", "b", "z", "o", "s", "__OW_NAMESPACE", "absent"}
	init, err = BuildInit(Invocation{Msg: &odd, Action: py, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"n": "4711", "f": "1.5", "b": "true", "z": "", "o": `{"a":[1,2]}`, "s": "x", "__OW_NAMESPACE": "guest"}
	for k, v := range want {
		if init.Env[k] != v {
			t.Errorf("env[%s] = %q, want %q", k, init.Env[k], v)
		}
	}
	run, _ = BuildRun(Invocation{Msg: &odd, Action: py, Keys: keys})
	assertJSONEqual(t, "run value", run.Value, []byte(`{"keep":1}`))

	// Binary inline code is passed as standard base64 of the stored bytes.
	bin := *loadAction(t, "action-doc-nodejs-inline.json")
	bin.Exec.Binary = true
	init, _ = BuildInit(Invocation{Msg: msg, Action: &bin})
	raw, _ := bin.Exec.Code.InlineBytes()
	if init.Code == nil || *init.Code == string(raw) || !IsBinaryCode(*init.Code) {
		t.Errorf("binary code not base64: %v", init.Code)
	}

	// A CouchDB attachment must be fetched first.
	java := loadAction(t, "action-doc-java-attachment.json")
	if _, err := BuildInit(Invocation{Msg: msg, Action: java}); !errors.Is(err, ErrNotRunnable) {
		t.Errorf("attachment without bytes: %v", err)
	}
	init, err = BuildInit(Invocation{Msg: msg, Action: java, Code: []byte{0x50, 0x4b, 3, 4}})
	if err != nil || *init.Code != "UEsDBA==" || init.Main != "Hello" || !init.Binary {
		t.Errorf("jar init: %+v %v", init, err)
	}

	// A blackbox without code sends no code.
	bb := loadAction(t, "action-doc-blackbox.json")
	init, _ = BuildInit(Invocation{Msg: msg, Action: bb})
	if init.Code != nil || init.Main != "main" || init.Env["__OW_API_KEY"] != "" {
		t.Errorf("blackbox init: %+v", init)
	}
	if b := marshal(t, init); strings.Contains(string(b), `"code"`) {
		t.Errorf("code member present: %s", b)
	}

	// Sequences and scalar content are not runnable; a wrong key fails decryption.
	if _, err := BuildRun(Invocation{Msg: msg, Action: loadAction(t, "action-doc-sequence.json")}); !errors.Is(err, ErrNotRunnable) {
		t.Errorf("sequence: %v", err)
	}
	scalar := *msg
	scalar.Content = json.RawMessage(`"text"`)
	if _, err := BuildRun(Invocation{Msg: &scalar, Action: py}); !errors.Is(err, ErrNotRunnable) {
		t.Errorf("scalar content: %v", err)
	}
	h := loadMsg(t, "activation-message-init-and-locked-args.json")
	bad := keys
	bad.AES128 = make([]byte, 16)
	if _, err := BuildRun(Invocation{Msg: h, Action: py, Keys: bad}); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong key: %v", err)
	}
}

func TestEveryEncryptedFixtureParameterDecrypts(t *testing.T) {
	keys := loadKeys(t)
	for _, name := range []string{"action-doc-with-params-init-encryption.json", "action-doc-params-aes256.json"} {
		for _, p := range loadAction(t, name).Parameters {
			var s string
			if err := json.Unmarshal(p.Value, &s); err != nil || p.Encryption == "" {
				t.Fatalf("%s %s: not an encrypted string", name, p.Key)
			}
			plain, err := keys.Decrypt(p.Encryption, s)
			if err != nil {
				t.Errorf("%s %s: %v", name, p.Key, err)
				continue
			}
			// Encrypt and decrypt again: the scheme's IV length is written and checked.
			again, err := keys.Encrypt(p.Encryption, plain, strings.NewReader(strings.Repeat("r", 200)))
			if err != nil {
				t.Fatal(err)
			}
			back, err := keys.Decrypt(p.Encryption, again)
			if err != nil || string(back) != string(plain) {
				t.Errorf("re-encryption of %s: %s, %v", p.Key, back, err)
			}
		}
	}
	// Tampering, a wrong IV length and an unknown scheme are refused.
	ct, _ := keys.Encrypt(SchemeAES128, json.RawMessage(`"secret"`), strings.NewReader(strings.Repeat("x", 12)))
	tampered := []byte(ct)
	tampered[len(tampered)-3] ^= 1
	for _, c := range []struct{ scheme, value string }{
		{SchemeAES128, string(tampered)}, {SchemeAES256, ct}, {"rot13", ct}, {SchemeAES128, "%%%"}, {SchemeAES128, "AAAA"},
	} {
		if _, err := keys.Decrypt(c.scheme, c.value); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt(%s, %.20s) = %v, want ErrDecrypt", c.scheme, c.value, err)
		}
	}
}

var invoker0 = InvokerInstanceID{Instance: 0, UniqueName: "0", UserMemory: ByteSize{2147483648, Bytes}}

func TestRecordsAcksAndEventsFromFixtures(t *testing.T) {
	sys := DefaultSystemLimits()

	t.Run("A blocking cold start", func(t *testing.T) {
		msg := loadMsg(t, "activation-message-blocking.json")
		doc := loadAction(t, "action-doc-nodejs-inline.json")
		stored := loadStored(t, "activation-record-stored-success.json")
		initIv := Interval{ms(1717171717935), ms(1717171717935 + 289)}
		runIv := Interval{ms(1717171717935 + 289), ms(1717171718246)}
		resp := ClassifyRun(RuntimeOutcome{Status: 200, Body: []byte(`{"payload":"Hello, World"}`), Length: 26, Start: runIv.Start, End: runIv.End},
			ResponseLimitsFor(doc.Limits, msg.User.Limits, sys))
		a := BuildActivation(RecordInput{Msg: msg, Action: doc, Sys: sys, Response: resp.Response, Init: &initIv, Run: &runIv,
			TimedOut: resp.TimedOut, Logs: stored.Logs})
		assertJSONEqual(t, "stored record", marshal(t, a.Stored(1717171718257)), readFixture(t, "activation-record-stored-success.json"))
		ext, _ := a.ExtendedJSON()
		assertJSONEqual(t, "REST record", ext, readFixture(t, "activation-record-api-extended.json"))

		plan := ChooseAcks(AfterRun, msg.Blocking, LogsCollected(doc.Limits, sys))
		acks := BuildAcks(plan, msg.TransID, &a, invoker0)
		if len(acks) != 2 || !plan.Steps[1].AfterLogs || plan.Steps[0].AfterLogs {
			t.Fatalf("plan %+v", plan)
		}
		assertJSONEqual(t, "result ack", marshal(t, acks[0]), readFixture(t, "ack-result.json"))
		assertJSONEqual(t, "completion ack", marshal(t, acks[1]), readFixture(t, "ack-completion.json"))

		ev, ok := ActivationEventFrom(&a, invoker0.Source(), msg.User.Namespace.UUID, 1717171718258)
		if !ok {
			t.Fatal("no event")
		}
		assertJSONEqual(t, "event", marshal(t, ev), readFixture(t, "event-activation.json"))
	})

	t.Run("B non-blocking warm", func(t *testing.T) {
		msg := loadMsg(t, "activation-message-nonblocking.json")
		a := WhiskActivation{ActivationID: msg.ActivationID, Response: SuccessResponse(json.RawMessage(`{}`), nil)}
		acks := BuildAcks(ChooseAcks(AfterRun, msg.Blocking, true), msg.TransID, &a, invoker0)
		assertJSONEqual(t, "completion", marshal(t, acks[0]), readFixture(t, "ack-completion-nonblocking.json"))
	})

	t.Run("C health action echoes the transid byte for byte", func(t *testing.T) {
		raw := readFixture(t, "activation-message-health.json")
		msg := loadMsg(t, "activation-message-health.json")
		a := WhiskActivation{ActivationID: msg.ActivationID}
		acks := BuildAcks(ChooseAcks(AfterRun, false, true), msg.TransID, &a, invoker0)
		b := marshal(t, acks[0])
		assertJSONEqual(t, "health completion", b, readFixture(t, "ack-completion-health.json"))
		var in, out struct{ Transid json.RawMessage }
		_ = json.Unmarshal(raw, &in)
		_ = json.Unmarshal(b, &out)
		if string(out.Transid) != string(compact(in.Transid)) {
			t.Errorf("transid %s, sent %s", out.Transid, in.Transid)
		}
	})

	t.Run("D sequence component", func(t *testing.T) {
		msg := loadMsg(t, "activation-message-array-content.json")
		run := Interval{ms(1717171802218), ms(1717171802221)}
		c := ClassifyRun(RuntimeOutcome{Status: 200, Body: []byte(`["alpha","bravo","charlie","delta"]`), Start: run.Start, End: run.End},
			ResponseLimits{Timeout: time.Minute, MaxPayload: 1 << 20, Truncation: 1 << 20})
		a := BuildActivation(RecordInput{Msg: msg, Action: sortArrayAction(t), Sys: sys, Response: c.Response, Run: &run})
		assertJSONEqual(t, "record", marshal(t, a.Stored(1717171802225)), readFixture(t, "activation-record-stored-sequence-component.json"))
		ev, _ := ActivationEventFrom(&a, "invoker0", msg.User.Namespace.UUID, 1717171802226)
		assertJSONEqual(t, "event", marshal(t, ev), readFixture(t, "event-activation-sequence-component.json"))
	})

	t.Run("E action deleted", func(t *testing.T) {
		msg := loadMsg(t, "activation-message-missing-action.json")
		a := FallbackActivation(msg, ApplicationError(MsgActionRemoved), ms(1717171830342))
		plan := ChooseAcks(PreExecutionFailure, msg.Blocking, false)
		acks := BuildAcks(plan, msg.TransID, &a, invoker0)
		assertJSONEqual(t, "combined", marshal(t, acks[0]), readFixture(t, "ack-combined.json"))
		if !plan.Store {
			t.Error("fallback activation not stored")
		}
		assertJSONEqual(t, "record", marshal(t, a.Stored(1717171830342)), readFixture(t, "activation-record-fallback-missing-action.json"))
	})

	t.Run("F container start failure", func(t *testing.T) {
		msg := loadMsg(t, "activation-message-extralogging.json")
		doc := loadAction(t, "action-doc-nodejs-inline.json")
		doc.Name, doc.Version = "thumbnail", SemVer{0, 0, 4}
		c4 := int64(4)
		doc.Limits.Memory, doc.Limits.Concurrency = 512, &c4
		now := ms(1717171902083)
		a := BuildActivation(RecordInput{Msg: msg, Action: doc, Sys: sys, Response: WhiskError(MsgResourceProvision), Now: now})
		assertJSONEqual(t, "record", marshal(t, a.Stored(1717171902083)), readFixture(t, "activation-record-stored-whisk-error.json"))
		acks := BuildAcks(ChooseAcks(ContainerStartFailure, msg.Blocking, true), msg.TransID, &a, invoker0)
		assertJSONEqual(t, "shrunk combined", marshal(t, acks[0]), readFixture(t, "ack-combined-shrunk.json"))

		// The buffered non-blocking activation aborted on the same proxy.
		other := &ActivationMessage{TransID: NewTransactionID("j5iPtrekqa0U8kEKI42oEtZm54IhTlMU", 1717171900233),
			ActivationID: "f3aad2b7760b50e2b5bac5850e15d05e", Action: msg.Action, User: msg.User}
		b := BuildActivation(RecordInput{Msg: other, Action: doc, Sys: sys, Response: WhiskError(MsgAbnormalRun), Now: now})
		acks = BuildAcks(ChooseAcks(AbortedBuffered, false, true), other.TransID, &b, invoker0)
		assertJSONEqual(t, "aborted completion", marshal(t, acks[0]), readFixture(t, "ack-completion-system-error.json"))
	})

	t.Run("binding", func(t *testing.T) {
		msg := loadMsg(t, "activation-message-binding.json")
		doc := loadAction(t, "action-doc-nodejs-inline.json")
		doc.Namespace, doc.Name, doc.Version = "whisk.system/utils", "echo", SemVer{0, 0, 1}
		run := Interval{ms(1717172230678), ms(1717172230680)}
		c := ClassifyRun(RuntimeOutcome{Status: 200, Body: []byte(`{"msg":"HelloWhisker"}`), Start: run.Start, End: run.End},
			ResponseLimitsFor(doc.Limits, msg.User.Limits, sys))
		a := BuildActivation(RecordInput{Msg: msg, Action: doc, Sys: sys, Response: c.Response, Run: &run})
		assertJSONEqual(t, "record", marshal(t, a.Stored(1717172230685)), readFixture(t, "activation-record-stored-binding.json"))
	})

	t.Run("init failure and timeout records", func(t *testing.T) {
		init := loadStored(t, "activation-record-stored-init-failure.json")
		body := `{"error":` + string(mustJSON(mustString(t, init.Response.Result, "error"))) + `}`
		c := ClassifyInit(RuntimeOutcome{Status: 502, Body: []byte(body), Start: ms(init.Start), End: ms(init.End)},
			ResponseLimits{Timeout: time.Minute, MaxPayload: 1 << 20, Truncation: 1 << 20})
		assertJSONEqual(t, "init failure response", marshal(t, c.Response), marshal(t, init.Response))

		to := loadStored(t, "activation-record-stored-developer-error-timeout.json")
		c = ClassifyRun(RuntimeOutcome{Failure: FailureTimeout, Start: ms(to.Start), End: ms(to.End)},
			ResponseLimits{Timeout: 3 * time.Second, MaxPayload: 1 << 20, Truncation: 1 << 20})
		if !c.TimedOut {
			t.Error("timeout not flagged")
		}
		assertJSONEqual(t, "timeout response", marshal(t, c.Response), marshal(t, to.Response))
	})

	t.Run("init failure and run timeout records rebuilt", func(t *testing.T) {
		sys := DefaultSystemLimits()
		lim := func(ms int64) ResponseLimits {
			return ResponseLimits{Timeout: time.Duration(ms) * time.Millisecond, MaxPayload: 1 << 20, Truncation: 1 << 20}
		}
		msgFor := func(s *StoredActivation, name string, tidStart int64) *ActivationMessage {
			m := loadMsg(t, "activation-message-blocking.json")
			m.ActivationID, m.Action.Name, m.TransID = s.ActivationID, name, NewTransactionID("x", tidStart)
			return m
		}

		want := loadStored(t, "activation-record-stored-init-failure.json")
		doc := loadAction(t, "action-doc-nodejs-inline.json")
		doc.Name, doc.Version = "broken", SemVer{0, 0, 1}
		initIv := Interval{ms(want.Start), ms(want.End)}
		body := `{"error":` + string(mustJSON(mustString(t, want.Response.Result, "error"))) + `}`
		c := ClassifyInit(RuntimeOutcome{Status: 502, Body: []byte(body), Start: initIv.Start, End: initIv.End}, lim(60000))
		a := BuildActivation(RecordInput{Msg: msgFor(want, "broken", want.Start-734), Action: doc, Sys: sys, Response: c.Response,
			Init: &initIv, TimedOut: c.TimedOut, Logs: want.Logs})
		assertJSONEqual(t, "init failure record", marshal(t, a.Stored(want.Updated)), readFixture(t, "activation-record-stored-init-failure.json"))

		want = loadStored(t, "activation-record-stored-developer-error-timeout.json")
		py := loadAction(t, "action-doc-python-plain-string.json")
		c1 := int64(1)
		py.Name, py.Version, py.Limits.Timeout, py.Limits.Concurrency = "slowpoke", SemVer{0, 0, 1}, 3000, &c1
		runIv := Interval{ms(want.Start), ms(want.End)}
		c = ClassifyRun(RuntimeOutcome{Failure: FailureTimeout, Start: runIv.Start, End: runIv.End}, lim(3000))
		a = BuildActivation(RecordInput{Msg: msgFor(want, "slowpoke", want.Start-47), Action: py, Sys: sys, Response: c.Response,
			Run: &runIv, TimedOut: c.TimedOut, Logs: want.Logs})
		assertJSONEqual(t, "timeout record", marshal(t, a.Stored(want.Updated)), readFixture(t, "activation-record-stored-developer-error-timeout.json"))
	})

	t.Run("app error event", func(t *testing.T) {
		s := loadStored(t, "activation-record-stored-app-error.json")
		ev, ok := ActivationEventFrom(&s.WhiskActivation, "invoker0", "23bc46b1-71f6-4ed5-8c54-816aa4f8c502", 1717172020923)
		if !ok {
			t.Fatal("no event")
		}
		assertJSONEqual(t, "event", marshal(t, ev), readFixture(t, "event-activation-app-error.json"))
	})
}

func mustString(t *testing.T, obj json.RawMessage, key string) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}
