package activation

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fixtures in testdata/wire are copies of ../shared/testdata/wire (the large invalid
// content fixture is stored gzipped). See testdata/wire/README.md.

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join("testdata", "wire", name)
	if b, err := os.ReadFile(path); err == nil {
		return b
	}
	f, err := os.Open(path + ".gz")
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b
}

func testManifest(t testing.TB) *Manifest {
	t.Helper()
	m, err := DecodeManifest(readFixture(t, "runtimes-manifest.json"))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return m
}

// codec decodes a document of one fixture family and encodes it back.
type codec func(t testing.TB, data []byte) ([]byte, error)

func codecFor(t testing.TB, name string) (codec, bool) {
	m := testManifest(t)
	enc := func(v any, err error) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
	switch {
	case strings.HasPrefix(name, "activation-message-"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeActivationMessage(d)) }, true
	case strings.HasPrefix(name, "ack-"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeAck(d)) }, true
	case strings.HasPrefix(name, "ping"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodePing(d)) }, true
	case strings.HasPrefix(name, "invoker-instance-id"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeInvokerInstanceID(d)) }, true
	case strings.HasPrefix(name, "activation-record-api-extended"):
		return func(_ testing.TB, d []byte) ([]byte, error) {
			a, err := DecodeExtendedActivation(d)
			if err != nil {
				return nil, err
			}
			return a.ExtendedJSON()
		}, true
	case strings.HasPrefix(name, "activation-record-"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeStoredActivation(d)) }, true
	case strings.HasPrefix(name, "event-"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeEvent(d)) }, true
	case strings.HasPrefix(name, "action-doc-"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeAction(d, m)) }, true
	case strings.HasPrefix(name, "runtimes-manifest"):
		return func(_ testing.TB, d []byte) ([]byte, error) { return enc(DecodeManifest(d)) }, true
	}
	return nil, false
}

func generic(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// expectedRoundTrip is the fixture as our encoder must write it: identical except where the
// fixture shows an accepted input form that is always written canonically.
func expectedRoundTrip(t testing.TB, name string, fixture []byte) any {
	v := generic(t, fixture)
	m, _ := v.(map[string]any)
	switch name {
	case "activation-message-numeric-activationid.json":
		m["activationId"] = string(m["activationId"].(json.Number)) // always written as a string
	case "runtimes-manifest.json":
		delete(m, "description") // only runtimes and blackboxes are read
	}
	return v
}

func TestGoldenRoundTrip(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "wire"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		c, ok := codecFor(t, name)
		if !ok {
			continue // runtime bodies and keys: covered by the payload tests
		}
		n++
		t.Run(name, func(t *testing.T) {
			fixture := readFixture(t, name)
			first, err := c(t, fixture)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got, want := generic(t, first), expectedRoundTrip(t, name, fixture); !reflect.DeepEqual(got, want) {
				t.Fatalf("encoded form differs from the fixture\n got: %s\nwant: %s", first, compact(fixture))
			}
			second, err := c(t, first)
			if err != nil {
				t.Fatalf("re-decode of our own output: %v\n%s", err, first)
			}
			if !bytes.Equal(first, second) {
				t.Fatalf("decode→encode is not stable\nfirst:  %s\nsecond: %s", first, second)
			}
		})
	}
	if n < 40 {
		t.Fatalf("only %d fixtures were round-tripped; testdata incomplete?", n)
	}
}

// invalidFields is the field each invalid fixture's error must name ("" = the whole document).
var invalidFields = map[string]string{
	"ack-completion-instance-without-type":         "instance.instanceType",
	"ack-result-activation-missing-logs":           "response.logs",
	"ack-result-response-number":                   "response",
	"action-doc-blackbox-missing-image":            "exec.image",
	"action-doc-java-missing-main":                 "exec.main",
	"action-doc-limits-missing-memory":             "limits.memory",
	"action-doc-parameters-not-array":              "parameters",
	"action-doc-sequence-components-not-array":     "exec.components",
	"action-doc-unknown-kind":                      "exec.kind",
	"activation-message-action-missing-name":       "action.name",
	"activation-message-action-name-illegal":       "action.name",
	"activation-message-action-version-zero":       "action.version",
	"activation-message-activationid-31-chars":     "activationId",
	"activation-message-activationid-null":         "activationId",
	"activation-message-activationid-number-short": "activationId",
	"activation-message-activationid-uppercase":    "activationId",
	"activation-message-authkey-string":            "user.authkey",
	"activation-message-blocking-string":           "blocking",
	"activation-message-cause-malformed":           "cause",
	"activation-message-content-2mb":               "content",
	"activation-message-controller-illegal-chars":  "rootControllerIndex.asString",
	"activation-message-controller-wrong-type":     "rootControllerIndex.instanceType",
	"activation-message-initargs-not-array":        "initArgs",
	"activation-message-lockedargs-not-strings":    "lockedArgs.password",
	"activation-message-missing-initargs":          "initArgs",
	"activation-message-missing-lockedargs":        "lockedArgs",
	"activation-message-missing-revision":          "revision",
	"activation-message-missing-transid":           "transid",
	"activation-message-missing-user-limits":       "user.limits",
	"activation-message-not-object":                "",
	"activation-message-revision-number":           "revision",
	"activation-message-rights-not-array":          "user.rights",
	"activation-message-rights-unknown":            "user.rights[1]",
	"activation-message-subject-too-short":         "user.subject",
	"activation-message-truncated":                 "",
	"activation-record-missing-statuscode":         "response.statusCode",
	"invoker-instance-id-missing-tags":             "tags",
	"invoker-instance-id-usermemory-number":        "userMemory",
	"invoker-instance-id-usermemory-xb":            "userMemory",
	"invoker-instance-id-wrong-type":               "instanceType",
	"ping-instance-instead-of-name":                "name",
	"ping-isenabled-string":                        "isEnabled",
	"runtimes-manifest-no-default":                 "runtimes.python",
	"runtimes-manifest-reactive-min-above-max":     "runtimes.nodejs[1].stemCells[0].reactive.minCount",
	"runtimes-manifest-stemcell-missing-memory":    "runtimes.nodejs[1].stemCells[0].memory",
	"runtimes-manifest-stemcell-zero-count":        "runtimes.nodejs[1].stemCells[0].initialCount",
	"runtimes-manifest-two-defaults":               "runtimes.nodejs",
}

var kindOf = map[string]error{
	"activation-message-": ErrInvalidMessage, "ack-": ErrInvalidMessage, "ping": ErrInvalidMessage,
	"invoker-instance-id": ErrInvalidMessage, "activation-record-": ErrInvalidRecord,
	"action-doc-": ErrInvalidAction, "runtimes-manifest": ErrInvalidManifest,
}

func TestInvalidFixturesRejected(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "wire", "invalid"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".why.txt")
		if !ok {
			continue
		}
		seen[base] = true
		t.Run(base, func(t *testing.T) {
			data := readFixture(t, filepath.Join("invalid", base+".json"))
			c, ok := codecFor(t, base+".json")
			if !ok {
				t.Fatalf("no reader for %s", base)
			}
			_, err := c(t, data)
			if err == nil {
				t.Fatalf("accepted; it must be rejected because: %s", readFixture(t, filepath.Join("invalid", base+".why.txt")))
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FieldError", err, err)
			}
			want, ok := invalidFields[base]
			if !ok {
				t.Fatalf("no expected field listed for %s (error: %v)", base, err)
			}
			if fe.Field != want {
				t.Errorf("error names field %q, want %q: %v", fe.Field, want, err)
			}
			for prefix, kind := range kindOf {
				if strings.HasPrefix(base, prefix) && !errors.Is(err, kind) {
					t.Errorf("error %v does not wrap %v", err, kind)
				}
			}
			t.Logf("%v", err)
		})
	}
	for name := range invalidFields {
		if !seen[name] {
			t.Errorf("expected invalid fixture %s is missing from testdata", name)
		}
	}
}
