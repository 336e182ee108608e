package activation

import (
	"strings"
	"testing"
	"time"
)

// Every log line in the record fixtures is reproduced from its parts: lines the action wrote
// with Docker's time format, lines the invoker appended with Java's Instant format.
func TestLogLinesOfFixtures(t *testing.T) {
	n := 0
	for _, name := range []string{
		"activation-record-stored-success.json", "activation-record-stored-app-error.json",
		"activation-record-stored-developer-error-timeout.json", "activation-record-stored-init-failure.json",
	} {
		for _, line := range loadStored(t, name).Logs {
			n++
			ts, stream, text, ok := ParseLogLine(line)
			if !ok {
				t.Fatalf("%s: cannot split %q", name, line)
			}
			tm, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var got string
			if text == MsgLogDeveloperError || text == MsgLogCollectionFailed || strings.HasPrefix(text, "Logs were truncated") {
				got = InvokerLogLine(tm, text)
			} else {
				got = FormatLogLine(LogLine{Time: tm, Stream: stream, Text: text})
			}
			if got != line {
				t.Errorf("%s:\n got %q\nwant %q", name, got, line)
			}
		}
	}
	if n < 9 {
		t.Fatalf("only %d lines checked", n)
	}
}

func TestInstantString(t *testing.T) {
	base := time.Date(2024, 5, 31, 16, 15, 3, 0, time.UTC)
	for ns, want := range map[int]string{
		0:         "2024-05-31T16:15:03Z",
		553000000: "2024-05-31T16:15:03.553Z",
		553481000: "2024-05-31T16:15:03.553481Z",
		553481007: "2024-05-31T16:15:03.553481007Z",
		1000:      "2024-05-31T16:15:03.000001Z",
	} {
		if got := InstantString(base.Add(time.Duration(ns))); got != want {
			t.Errorf("InstantString(+%dns) = %s, want %s", ns, got, want)
		}
	}
	// Non-UTC inputs are printed in UTC.
	if got := InstantString(base.In(time.FixedZone("x", 3600))); got != "2024-05-31T16:15:03Z" {
		t.Error(got)
	}
}

func TestLogCollector(t *testing.T) {
	at := time.Date(2024, 5, 31, 16, 0, 0, 100, time.UTC)
	now := time.Date(2024, 5, 31, 16, 0, 1, 0, time.UTC)
	c := NewLogCollector(10)
	for i, text := range []string{"12345", "6789", "0", "x"} {
		ok := c.Add(LogLine{Time: at, Stream: "stdout", Text: text})
		if want := i < 3; ok != want {
			t.Errorf("Add(%q) = %v, want %v", text, ok, want)
		}
	}
	logs, errored := c.Finish(now, LogOutcome{DeveloperError: true})
	want := []string{
		"2024-05-31T16:00:00.0000001Z   stdout: 12345",
		"2024-05-31T16:00:00.0000001Z   stdout: 6789",
		"2024-05-31T16:00:00.0000001Z   stdout: 0",
		"2024-05-31T16:00:01Z           stderr: Logs were truncated because the total bytes size exceeds the limit of 10 bytes.",
		"2024-05-31T16:00:01Z           stderr: The action did not initialize or run as expected. Log data might be missing.",
	}
	if !errored || strings.Join(logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("errored=%v\n%s", errored, strings.Join(logs, "\n"))
	}

	c = NewLogCollector(1 << 20)
	logs, errored = c.Finish(now, LogOutcome{CollectionFailed: true})
	if !errored || len(logs) != 1 || !strings.HasSuffix(logs[0], "stderr: "+MsgLogCollectionFailed) {
		t.Errorf("%v %q", errored, logs)
	}
	logs, errored = NewLogCollector(0).Finish(now, LogOutcome{})
	if errored || logs == nil || len(logs) != 0 {
		t.Errorf("empty collection: %v %#v", errored, logs)
	}
}
