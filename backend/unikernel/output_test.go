package unikernel

import (
	"strings"
	"testing"
	"time"
)

func TestLogCollector(t *testing.T) {
	now := func() time.Time { return time.Unix(0, 0) }
	c := newLogCollector(25, now)
	out, errs := c.stream(0), c.stream(1)
	out.Write([]byte("first li"))
	errs.Write([]byte("an error\n"))
	out.Write([]byte("ne\nsecond line\nthird"))
	c.flush()
	var got []string
	for _, l := range c.lines {
		got = append(got, l.Stream+":"+l.Text)
	}
	// "an error" (8) + "first line" (10) fit in 25 bytes; "second line" (11) does not.
	if want := "stderr:an error|stdout:first line"; strings.Join(got, "|") != want {
		t.Errorf("lines %q, want %q", strings.Join(got, "|"), want)
	}
	if !c.truncated {
		t.Error("not marked truncated after dropping lines")
	}
	line, ok := c.takeLastStdout()
	if !ok || string(line) != "third" {
		t.Errorf("last stdout line %q %v, want \"third\"", line, ok)
	}

	sentinel := newLogCollector(1<<20, now)
	sentinel.stream(0).Write([]byte("before\nXXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\nafter\n"))
	if len(sentinel.lines) != 2 || sentinel.lines[0].Text != "before" || sentinel.lines[1].Text != "after" {
		t.Errorf("the log sentinel was not dropped: %+v", sentinel.lines)
	}

	none := newLogCollector(0, now)
	none.stream(0).Write([]byte("dropped\n"))
	if len(none.lines) != 0 || none.truncated {
		t.Errorf("log limit 0: %d lines, truncated %v; want nothing collected", len(none.lines), none.truncated)
	}
	long := newLogCollector(1<<30, now)
	long.stream(1).Write([]byte(strings.Repeat("x", maxLogLine*2+5)))
	long.flush()
	if len(long.lines) != 3 || len(long.lines[0].Text) != maxLogLine {
		t.Errorf("a line of %d bytes became %d lines; want it split at %d", maxLogLine*2+5, len(long.lines), maxLogLine)
	}
}

func TestResultSink(t *testing.T) {
	r := &resultSink{max: 4}
	r.Write([]byte(`{"ab`))
	r.Write([]byte(`c":1}` + "\n" + `{"next":true}` + "\n"))
	if !r.done || string(r.line()) != `{"ab` || r.length != len(`{"abc":1}`) {
		t.Errorf("done=%v body=%q length=%d; want the first line cut to 4 bytes with its full length", r.done, r.line(), r.length)
	}
}
