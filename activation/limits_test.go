package activation

import (
	"errors"
	"testing"
	"time"
)

func i64(n int64) *int64 { return &n }

func TestCheckLimits(t *testing.T) {
	sys := DefaultSystemLimits()
	base := ActionLimits{Timeout: 60000, Memory: 256}
	with := func(f func(*ActionLimits)) ActionLimits { l := base; f(&l); return l }
	cases := []struct {
		name  string
		l     ActionLimits
		u     UserLimits
		field string
		msg   string
	}{
		{"defaults pass", base, UserLimits{}, "", ""},
		{"timeout above system max", with(func(l *ActionLimits) { l.Timeout = 300001 }), UserLimits{}, "timeout",
			"requirement failed: duration 300001 milliseconds exceeds allowed threshold of 300000 milliseconds"},
		{"timeout below system min", with(func(l *ActionLimits) { l.Timeout = 99 }), UserLimits{}, "timeout",
			"requirement failed: duration 99 milliseconds below allowed threshold of 100 milliseconds"},
		{"namespace max timeout narrows", base, UserLimits{MaxActionTimeout: i64(30000)}, "timeout",
			"requirement failed: duration 60000 milliseconds exceeds allowed threshold of 30000 milliseconds"},
		{"namespace max above system is capped", with(func(l *ActionLimits) { l.Timeout = 400000 }), UserLimits{MaxActionTimeout: i64(900000)}, "timeout",
			"requirement failed: duration 400000 milliseconds exceeds allowed threshold of 300000 milliseconds"},
		{"memory above max", with(func(l *ActionLimits) { l.Memory = 1024 }), UserLimits{}, "memory",
			"requirement failed: memory size 1024 MB exceeds allowed threshold of 512 MB"},
		{"memory below namespace min", base, UserLimits{MinActionMemory: i64(384)}, "memory",
			"requirement failed: memory size 256 MB below allowed threshold of 384 MB"},
		{"namespace min below system is raised", with(func(l *ActionLimits) { l.Memory = 64 }), UserLimits{MinActionMemory: i64(32)}, "memory",
			"requirement failed: memory size 64 MB below allowed threshold of 128 MB"},
		{"concurrency above max", with(func(l *ActionLimits) { l.Concurrency = i64(4) }), UserLimits{}, "concurrency",
			"requirement failed: concurrency 4 exceeds allowed threshold of 1"},
		{"concurrency below min", with(func(l *ActionLimits) { l.Concurrency = i64(0) }), UserLimits{}, "concurrency",
			"requirement failed: concurrency 0 below allowed threshold of 1"},
		{"logs above max", with(func(l *ActionLimits) { l.Logs = i64(11) }), UserLimits{}, "logs",
			"requirement failed: log size 11 MB exceeds allowed threshold of 10 MB"},
		{"logs below namespace min", with(func(l *ActionLimits) { l.Logs = i64(0) }), UserLimits{MinActionLogs: i64(1)}, "logs",
			"requirement failed: log size 0 MB below allowed threshold of 1 MB"},
		{"timeout is checked before memory", ActionLimits{Timeout: 1, Memory: 9999}, UserLimits{}, "timeout",
			"requirement failed: duration 1 milliseconds below allowed threshold of 100 milliseconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckLimits(c.l, c.u, sys)
			if c.msg == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimits) {
				t.Fatalf("got %v, want *LimitError wrapping ErrLimits", err)
			}
			if le.Field != c.field || le.Message != c.msg {
				t.Errorf("got %s: %q\nwant %s: %q", le.Field, le.Message, c.field, c.msg)
			}
			// The message becomes the fallback activation's application error.
			if r := ApplicationError(le.Message); r.StatusCode != StatusApplicationError {
				t.Error(r)
			}
		})
	}
}

func TestResponseLimitsFor(t *testing.T) {
	sys := DefaultSystemLimits()
	rl := ResponseLimitsFor(ActionLimits{Timeout: 3000, Memory: 256}, UserLimits{}, sys)
	if rl.Timeout != 3*time.Second || rl.MaxPayload != 1<<20 || rl.Truncation != 1<<20 {
		t.Errorf("%+v", rl)
	}
	small, big := SizeBytes(1000), ByteSize{4, GB}
	rl = ResponseLimitsFor(ActionLimits{Timeout: 1}, UserLimits{MaxPayloadSize: &small, TruncationSize: &big}, sys)
	if rl.MaxPayload != 1000 || rl.Truncation != 1<<20 {
		t.Errorf("namespace sizes are not narrowed to the system's: %+v", rl)
	}
}

func TestShouldStore(t *testing.T) {
	no, yes := false, true
	ok, app, dev := SuccessResponse(nil, nil), ApplicationError("x"), DeveloperError("y")
	cases := []struct {
		name            string
		blocking, extra bool
		store           *bool
		r               ActivationResponse
		blk, nonblk     StoreLevel
		want            bool
	}{
		{"default stores", true, false, nil, ok, StoreAlways, StoreAlways, true},
		{"blocking failures only skips success", true, false, nil, ok, StoreFailures, StoreAlways, false},
		{"blocking failures only keeps app error", true, false, nil, app, StoreFailures, StoreAlways, true},
		{"not app errors skips app error", false, false, nil, app, StoreAlways, StoreFailuresNotApplicationErrors, false},
		{"not app errors keeps developer error", false, false, nil, dev, StoreAlways, StoreFailuresNotApplicationErrors, true},
		{"extra logging overrides the level", false, true, nil, ok, StoreAlways, StoreFailures, true},
		{"storeActivations false wins over extra logging", true, true, &no, dev, StoreAlways, StoreAlways, false},
		{"storeActivations true is the default", true, false, &yes, ok, StoreAlways, StoreAlways, true},
	}
	for _, c := range cases {
		m := &ActivationMessage{Blocking: c.blocking, TransID: TransactionID{ExtraLogging: c.extra}}
		m.User.Limits.StoreActivations = c.store
		if got := ShouldStore(m, c.r, c.blk, c.nonblk); got != c.want {
			t.Errorf("%s: ShouldStore = %v", c.name, got)
		}
	}
	for _, s := range []string{"STORE_ALWAYS", "STORE_FAILURES", "STORE_FAILURES_NOT_APPLICATION_ERRORS"} {
		if _, err := ParseStoreLevel(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseStoreLevel("SOMETIMES"); err == nil {
		t.Error("unknown level accepted")
	}
}
