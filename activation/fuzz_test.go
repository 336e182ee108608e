package activation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seed adds every fixture whose name starts with prefix (valid and invalid) to the corpus.
func seed(f *testing.F, prefix string) {
	for _, dir := range []string{"testdata/wire", "testdata/wire/invalid"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".json") {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err == nil && len(b) < 64<<10 {
					f.Add(b)
				}
			}
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
}

// roundTrip checks that whatever a decoder accepts, it can write, and reads back.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted input cannot be encoded: %v", err)
	}
	if _, err := decode(out); err != nil {
		t.Fatalf("our own output is refused: %v\n%s", err, out)
	}
}

func FuzzDecodeActivationMessage(f *testing.F) {
	seed(f, "activation-message")
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := DecodeActivationMessage(b); err == nil {
			roundTrip(t, m, DecodeActivationMessage)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	seed(f, "ack-")
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := DecodeAck(b); err == nil {
			roundTrip(t, a, DecodeAck)
		}
	})
}

func FuzzDecodePing(f *testing.F) {
	seed(f, "ping")
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := DecodePing(b); err == nil {
			roundTrip(t, p, DecodePing)
		}
	})
}

func FuzzDecodeInvokerInstanceID(f *testing.F) {
	seed(f, "invoker-instance-id")
	f.Fuzz(func(t *testing.T, b []byte) {
		if i, err := DecodeInvokerInstanceID(b); err == nil {
			roundTrip(t, i, DecodeInvokerInstanceID)
		}
	})
}

func FuzzDecodeStoredActivation(f *testing.F) {
	seed(f, "activation-record")
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := DecodeStoredActivation(b); err == nil {
			roundTrip(t, a, DecodeStoredActivation)
			if _, err := a.ExtendedJSON(); err != nil {
				t.Fatal(err)
			}
		}
		if a, err := DecodeExtendedActivation(b); err == nil {
			out, err := a.ExtendedJSON()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeExtendedActivation(out); err != nil {
				t.Fatalf("own extended output refused: %v\n%s", err, out)
			}
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	seed(f, "event-")
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := DecodeEvent(b); err == nil {
			roundTrip(t, e, DecodeEvent)
		}
	})
}

func FuzzDecodeAction(f *testing.F) {
	seed(f, "action-doc-")
	m := testManifest(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, man := range []*Manifest{nil, m} {
			if d, err := DecodeAction(b, man); err == nil {
				roundTrip(t, d, func(b []byte) (*ActionDocument, error) { return DecodeAction(b, man) })
			}
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	seed(f, "runtimes-manifest")
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := DecodeManifest(b); err == nil {
			roundTrip(t, m, DecodeManifest)
			for _, k := range m.Kinds() {
				if _, ok := m.Resolve(k); !ok {
					t.Fatalf("listed kind %q does not resolve", k)
				}
			}
		}
	})
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"2147483648 B", "1024 MB", "1 g", " 5K ", "12 XB", "", "9223372036854775807 GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("%q → %v → %q → %v, %v", s, b, b.String(), back, err)
		}
	})
}

// FuzzRuntimeBodies feeds hostile messages (content, initArgs, lockedArgs, authkey) to the
// /init and /run builders: they return a body or an error, never panic, and bodies are JSON.
func FuzzRuntimeBodies(f *testing.F) {
	seed(f, "activation-message")
	doc, err := DecodeAction(readFixture(f, "action-doc-with-params-init-encryption.json"), nil)
	if err != nil {
		f.Fatal(err)
	}
	keys, _ := DecodeParameterKeys(readFixture(f, "parameter-encryption-keys.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeActivationMessage(b)
		if err != nil {
			return
		}
		in := Invocation{Msg: m, Action: doc, Keys: keys, Deadline: 1}
		if r, err := BuildInit(in); err == nil {
			if out, err := Marshal(r); err != nil || !json.Valid(out) {
				t.Fatalf("init body %s: %v", out, err)
			}
		}
		if r, err := BuildRun(in); err == nil {
			if out, err := Marshal(r); err != nil || !json.Valid(out) {
				t.Fatalf("run body %s: %v", out, err)
			}
		}
	})
}

// FuzzClassify feeds arbitrary runtime answers to the classifiers: the response is always a
// valid status with a JSON result.
func FuzzClassify(f *testing.F) {
	f.Add(200, []byte(`{"a":1}`), 7, uint8(0))
	f.Add(502, []byte(`{"error":"x"}`), 13, uint8(0))
	f.Add(200, []byte(`[1,2`), 4, uint8(0))
	f.Add(200, []byte("\xff\xfe"), 999, uint8(0))
	f.Add(0, []byte(nil), 0, uint8(3))
	f.Fuzz(func(t *testing.T, status int, body []byte, length int, failure uint8) {
		o := RuntimeOutcome{Failure: RuntimeFailure(failure % 5), Status: status, Body: body, Length: length}
		l := ResponseLimits{Timeout: time.Second, MaxPayload: 64, Truncation: 16}
		for _, c := range []Classification{ClassifyRun(o, l), ClassifyInit(o, l)} {
			if c.Initialized {
				continue
			}
			r := c.Response
			if r.StatusCode < 0 || r.StatusCode > 3 || !json.Valid(r.Result) {
				t.Fatalf("response %d %s", r.StatusCode, r.Result)
			}
			if _, err := Marshal(r); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzSplit checks the single-pass splitter against encoding/json on valid documents and
// that it never panics on invalid ones.
func FuzzSplit(f *testing.F) {
	seed(f, "")
	f.Add([]byte(`{"a\u0041":[1,{"b":"}"}],"a":"x\"y","c":{}}`))
	f.Add([]byte(`[1, "a", [ ], {"k": null} ,true]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, errM := splitObject(b)
		items, errA := splitArray(b)
		if _, err := unquote(b); err == nil && !json.Valid(b) {
			t.Fatalf("unquote accepted invalid %q", b)
		}
		if !json.Valid(b) {
			return
		}
		var wantM map[string]json.RawMessage
		if json.Unmarshal(b, &wantM) == nil && wantM != nil {
			if errM != nil || len(m) != len(wantM) {
				t.Fatalf("splitObject(%q) = %v, %v; want %v", b, m, errM, wantM)
			}
			for k, v := range wantM {
				if string(m[k]) != string(v) {
					t.Fatalf("member %q: %q, want %q", k, m[k], v)
				}
			}
		}
		var wantA []json.RawMessage
		if json.Unmarshal(b, &wantA) == nil && wantA != nil {
			if errA != nil || len(items) != len(wantA) {
				t.Fatalf("splitArray(%q) = %v, %v; want %v", b, items, errA, wantA)
			}
			for i := range wantA {
				if string(items[i]) != string(wantA[i]) {
					t.Fatalf("element %d: %q, want %q", i, items[i], wantA[i])
				}
			}
		}
	})
}

// FuzzAppendString checks the string writer against encoding/json (HTML escaping off).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\n\r\t\b\f\x00\x1f", "<&>", "é😀", "\xff\xfe", "\u2028\u2029", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}
