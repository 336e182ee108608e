package activation

import (
	"strings"
	"testing"
	"time"
)

func TestClassifyRun(t *testing.T) {
	lim := ResponseLimits{Timeout: 3 * time.Second, MaxPayload: 64, Truncation: 16}
	t0 := time.UnixMilli(1717172100548)
	long := strings.Repeat("x", 100)
	cases := []struct {
		name     string
		o        RuntimeOutcome
		status   int
		result   string // compact JSON of the result
		size     int    // -1: no size
		timedOut bool
	}{
		{"success object", RuntimeOutcome{Status: 200, Body: []byte(`{"payload": "Hello, World"}`)},
			0, `{"payload":"Hello, World"}`, 27, false},
		{"success array", RuntimeOutcome{Status: 200, Body: []byte(`["a","b"]`)},
			0, `["a","b"]`, 9, false},
		{"application error", RuntimeOutcome{Status: 200, Body: []byte(`{"error":{"statusCode":422}}`)},
			1, `{"error":{"statusCode":422}}`, 28, false},
		{"non-200 with error", RuntimeOutcome{Status: 502, Body: []byte(`{"error":"boom"}`)},
			2, `{"error":"boom"}`, 16, false},
		{"non-200 object without error", RuntimeOutcome{Status: 500, Body: []byte(`{"x":1}`)},
			2, `{"error":"The action did not produce a valid JSON or JSON Array response: {\"x\":1}"}`, 7, false},
		{"non-200 array", RuntimeOutcome{Status: 500, Body: []byte(`[1]`)},
			2, `{"error":"The action did not produce a valid JSON or JSON Array response: [1]"}`, 3, false},
		{"scalar", RuntimeOutcome{Status: 200, Body: []byte(`42`)},
			2, `{"error":"The action did not produce a valid JSON or JSON Array response: 42"}`, 2, false},
		{"not JSON", RuntimeOutcome{Status: 200, Body: []byte(`oops`)},
			2, `{"error":"The action did not produce a valid JSON or JSON Array response: oops"}`, 4, false},
		{"empty body", RuntimeOutcome{Status: 200, Body: nil},
			2, `{"error":"The action did not produce a valid JSON or JSON Array response."}`, 0, false},
		{"timeout by failure", RuntimeOutcome{Failure: FailureTimeout},
			2, `{"error":"The action exceeded its time limits of 3000 milliseconds."}`, -1, true},
		{"timeout by elapsed time even with an answer", RuntimeOutcome{Status: 200, Body: []byte(`{}`), Start: t0, End: t0.Add(3 * time.Second)},
			2, `{"error":"The action exceeded its time limits of 3000 milliseconds."}`, -1, true},
		{"just under the timeout", RuntimeOutcome{Status: 200, Body: []byte(`{}`), Start: t0, End: t0.Add(3*time.Second - time.Millisecond)},
			0, `{}`, 2, false},
		{"exited", RuntimeOutcome{Failure: FailureExited},
			2, `{"error":"The action did not produce a valid response and exited unexpectedly."}`, -1, false},
		{"no response", RuntimeOutcome{Failure: FailureNoResponse},
			2, `{"error":"The action did not produce a valid response and exited unexpectedly."}`, -1, false},
		{"oom", RuntimeOutcome{Failure: FailureOOM},
			2, `{"error":"The action exhausted its memory and was aborted."}`, -1, false},
		{"truncated", RuntimeOutcome{Status: 200, Body: []byte(long[:16]), Length: 100},
			1, `{"error":"The action produced a response that exceeded the allowed length: 100 > 64 bytes. The truncated response was: xxxxxxxxxxxxxxxx"}`, 100, false},
		{"truncated, driver gave more than the truncation size", RuntimeOutcome{Status: 200, Body: []byte(long), Length: 100},
			1, `{"error":"The action produced a response that exceeded the allowed length: 100 > 64 bytes. The truncated response was: xxxxxxxxxxxxxxxx"}`, 100, false},
		{"exactly the maximum is not truncated", RuntimeOutcome{Status: 200, Body: []byte(`{"k":"` + strings.Repeat("y", 56) + `"}`), Length: 64},
			0, `{"k":"` + strings.Repeat("y", 56) + `"}`, 64, false},
		{"size counts UTF-16 code units", RuntimeOutcome{Status: 200, Body: []byte(`{"s":"é😀"}`)},
			0, `{"s":"é😀"}`, 11, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ClassifyRun(c.o, lim)
			checkResponse(t, got, c.status, c.result, c.size)
			if got.TimedOut != c.timedOut {
				t.Errorf("TimedOut = %v", got.TimedOut)
			}
			if got.Initialized {
				t.Error("a run is never 'initialized'")
			}
			if keep := c.status <= 1; got.KeepContainer() != keep {
				t.Errorf("KeepContainer = %v for status %d", got.KeepContainer(), c.status)
			}
		})
	}
}

func TestClassifyInit(t *testing.T) {
	lim := ResponseLimits{Timeout: time.Minute, MaxPayload: 64, Truncation: 8}
	t0 := time.UnixMilli(1717172160825)
	cases := []struct {
		name   string
		o      RuntimeOutcome
		ok     bool
		status int
		result string
		size   int
		to     bool
	}{
		{"200 initializes", RuntimeOutcome{Status: 200, Body: []byte(`{"OK":true}`)}, true, 0, "", -1, false},
		{"200 late still initializes", RuntimeOutcome{Status: 200, Body: []byte(`{"ok":true}`), Start: t0, End: t0.Add(2 * time.Minute)}, true, 0, "", -1, false},
		{"error member", RuntimeOutcome{Status: 502, Body: []byte(`{"error":"Initialization has failed due to: SyntaxError"}`)},
			false, 2, `{"error":"Initialization has failed due to: SyntaxError"}`, 57, false},
		{"object without error", RuntimeOutcome{Status: 500, Body: []byte(`{"x":1}`)},
			false, 2, `{"error":"The action failed during initialization: {\"x\":1}"}`, 7, false},
		{"not an object", RuntimeOutcome{Status: 403, Body: []byte(`forbidden`)},
			false, 2, `{"error":"The action failed during initialization: forbidden"}`, 9, false},
		{"empty", RuntimeOutcome{Status: 500},
			false, 2, `{"error":"The action failed during initialization."}`, 0, false},
		{"timeout", RuntimeOutcome{Failure: FailureTimeout},
			false, 2, `{"error":"The action exceeded its time limits of 60000 milliseconds during initialization."}`, -1, true},
		{"slow failure is a timeout", RuntimeOutcome{Status: 500, Body: []byte(`{}`), Start: t0, End: t0.Add(time.Minute)},
			false, 2, `{"error":"The action exceeded its time limits of 60000 milliseconds during initialization."}`, -1, true},
		{"exited", RuntimeOutcome{Failure: FailureExited},
			false, 2, `{"error":"The action did not initialize and exited unexpectedly."}`, -1, false},
		{"no response", RuntimeOutcome{Failure: FailureNoResponse},
			false, 2, `{"error":"The action did not initialize and exited unexpectedly."}`, -1, false},
		{"oom", RuntimeOutcome{Failure: FailureOOM},
			false, 2, `{"error":"The action exhausted its memory and was aborted."}`, -1, false},
		{"truncated 200 is a developer error", RuntimeOutcome{Status: 200, Body: []byte(strings.Repeat("z", 8)), Length: 65},
			false, 2, `{"error":"The action produced a response that exceeded the allowed length: 65 > 64 bytes. The truncated response was: zzzzzzzz"}`, 65, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ClassifyInit(c.o, lim)
			if got.Initialized != c.ok {
				t.Fatalf("Initialized = %v, response %s", got.Initialized, got.Response.Result)
			}
			if got.TimedOut != c.to {
				t.Errorf("TimedOut = %v", got.TimedOut)
			}
			if c.ok {
				if got.Response.Result != nil || !got.KeepContainer() {
					t.Errorf("successful init carries %+v", got)
				}
				return
			}
			checkResponse(t, got, c.status, c.result, c.size)
			if got.KeepContainer() {
				t.Error("failed init keeps its container")
			}
		})
	}
}

func checkResponse(t *testing.T, got Classification, status int, result string, size int) {
	t.Helper()
	r := got.Response
	if r.StatusCode != status {
		t.Errorf("status %d, want %d (%s)", r.StatusCode, status, r.Result)
	}
	if string(r.Result) != result {
		t.Errorf("result\n got %s\nwant %s", r.Result, result)
	}
	switch {
	case size < 0 && r.Size != nil:
		t.Errorf("size %d, want none", *r.Size)
	case size >= 0 && (r.Size == nil || *r.Size != size):
		t.Errorf("size %v, want %d", r.Size, size)
	}
}

func TestUTF16Length(t *testing.T) {
	for s, want := range map[string]int{"": 0, "abc": 3, "é": 1, "😀": 2, "\xff\xfe": 2, "日本": 2} {
		if got := UTF16Length([]byte(s)); got != want {
			t.Errorf("UTF16Length(%q) = %d, want %d", s, got, want)
		}
	}
}
