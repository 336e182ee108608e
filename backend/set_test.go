package backend

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// namedDriver is the smallest honest Driver: it has a name and starts nothing. The selector
// never starts instances, so nothing more is needed to test it.
type namedDriver struct {
	name   string
	closed bool
}

func (d *namedDriver) Name() string { return d.name }
func (d *namedDriver) Start(context.Context, StartSpec) (Instance, error) {
	return nil, fmt.Errorf("%s: start: %w", d.name, ErrUnsupported)
}
func (d *namedDriver) Close() error { d.closed = true; return nil }

func reg(kinds []string, probe error) Registration {
	return Registration{
		Kinds: kinds,
		Probe: func(context.Context, Config) error { return probe },
		New: func(_ context.Context, cfg Config) (Driver, error) {
			return &namedDriver{name: cfg.Logger.Name()}, nil
		},
	}
}

func TestMatchKind(t *testing.T) {
	for _, tc := range []struct {
		pattern, kind string
		want          bool
	}{
		{"python:3.11", "python:3.11", true},
		{"python:3.11", "python:3.10", false},
		{"python:3*", "python:3.11", true},
		{"python:3*", "python:2.7", false},
		{"nodejs:*", "nodejs:20", true},
		{"nodejs:*", "nodejs", false},
		{"blackbox", "blackbox", true},
		{"blackbox", "blackbox:x", false},
		{"*", "java:8", true},
	} {
		if got := MatchKind(tc.pattern, tc.kind); got != tc.want {
			t.Errorf("MatchKind(%q, %q) = %v, want %v", tc.pattern, tc.kind, got, tc.want)
		}
	}
}

func TestRegisterRejects(t *testing.T) {
	ok := reg([]string{"python:3*"}, nil)
	for _, tc := range []struct {
		name string
		r    Registration
	}{
		{"", ok},
		{"has space", ok},
		{"nonew", Registration{Kinds: []string{"x"}}},
		{"nokinds", Registration{New: ok.New}},
		{"midstar", Registration{Kinds: []string{"py*thon"}, New: ok.New}},
		{"emptykind", Registration{Kinds: []string{""}, New: ok.New}},
	} {
		r := NewRegistry()
		if err := r.Register(tc.name, tc.r); !errors.Is(err, ErrInvalidRegistration) {
			t.Errorf("Register(%q): err = %v, want ErrInvalidRegistration", tc.name, err)
		}
	}
	r := NewRegistry()
	if err := r.Register("a", ok); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("a", ok); !errors.Is(err, ErrInvalidRegistration) {
		t.Errorf("duplicate: err = %v", err)
	}
}

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	r := NewRegistry()
	for name, rr := range map[string]Registration{
		"unikernel": reg([]string{"python:3*", "nodejs:*", "blackbox"}, nil),
		"jvm":       reg([]string{"java:*"}, nil),
		"container": reg([]string{"*"}, nil),
		"broken":    reg([]string{"*"}, errors.New("no /dev/kvm")),
	} {
		if err := r.Register(name, rr); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestSetOrder(t *testing.T) {
	order := map[string][]string{
		"python:3*":   {"broken", "unikernel", "container"},
		"python:3.10": {"container"},
		"java:*":      {"jvm", "container"},
		"blackbox":    {"unikernel", "container"},
	}
	for _, tc := range []struct {
		name  string
		order map[string][]string
		kind  string
		want  []string
	}{
		{"prefix pattern, broken driver left out", order, "python:3.11", []string{"unikernel", "container"}},
		{"exact beats prefix", order, "python:3.10", []string{"container"}},
		{"family", order, "java:8", []string{"jvm", "container"}},
		{"blackbox", order, "blackbox", []string{"unikernel", "container"}},
		{"unconfigured kind: declaring drivers by name", order, "nodejs:20", []string{"container", "unikernel"}},
		{"no order at all", nil, "java:17", []string{"container", "jvm"}},
		{"undeclared kind dropped from order", map[string][]string{"*": {"jvm", "container"}}, "go:1.20", []string{"container"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenSet(context.Background(), SetConfig{Registry: testRegistry(t), Order: tc.order})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Order(tc.kind); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Order(%q) = %v, want %v", tc.kind, got, tc.want)
			}
			ds := s.ForKind(tc.kind)
			for i, d := range ds {
				if d.Name() != tc.want[i] {
					t.Errorf("ForKind(%q)[%d] = %s, want %s", tc.kind, i, d.Name(), tc.want[i])
				}
			}
		})
	}
}

func TestSetProbeFailureLoggedOnce(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	s, err := OpenSet(context.Background(), SetConfig{Registry: testRegistry(t), Logger: zap.New(core), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Available(), []string{"container", "jvm", "unikernel"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Available = %v, want %v", got, want)
	}
	down := s.Unavailable()
	if len(down) != 1 || !strings.Contains(fmt.Sprint(down["broken"]), "no /dev/kvm") {
		t.Errorf("Unavailable = %v, want broken: no /dev/kvm", down)
	}
	left := logs.FilterMessage("driver left out").All()
	if len(left) != 1 || left[0].ContextMap()["driver"] != "broken" ||
		!strings.Contains(fmt.Sprint(left[0].ContextMap()["error"]), "no /dev/kvm") {
		t.Errorf("want exactly one log line for broken with its reason, got %v", left)
	}
	_ = s.ForKind("python:3.11")
	_ = s.ForKind("python:3.11")
	if n := logs.FilterMessage("driver left out").Len(); n != 1 {
		t.Errorf("probe failure logged %d times, want 1", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	d, _ := s.Driver("jvm")
	if !d.(*namedDriver).closed {
		t.Error("Close did not close the jvm driver")
	}
}

func TestSetPanickingDriverLeftOut(t *testing.T) {
	r := NewRegistry()
	_ = r.Register("panics", Registration{Kinds: []string{"*"}, New: func(context.Context, Config) (Driver, error) {
		panic("boom")
	}})
	_ = r.Register("nilnew", Registration{Kinds: []string{"*"}, New: func(context.Context, Config) (Driver, error) {
		return nil, nil
	}})
	s, err := OpenSet(context.Background(), SetConfig{Registry: r})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Available()) != 0 || len(s.Unavailable()) != 2 {
		t.Errorf("available %v, unavailable %v", s.Available(), s.Unavailable())
	}
	if _, err := s.Pick(Action{Name: "guest/a", Kind: "python:3.11"}); !errors.Is(err, ErrNoDriver) {
		t.Errorf("Pick with no drivers: err = %v, want ErrNoDriver", err)
	}
}

func TestSetConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SetConfig
		want error
		text string
	}{
		{"unknown in order", SetConfig{Order: map[string][]string{"python:3*": {"vm"}}}, ErrUnknownDriver, `driver "vm"`},
		{"bad pattern", SetConfig{Order: map[string][]string{"py*3": {"jvm"}}}, ErrInvalidRegistration, `py*3`},
		{"unknown in drivers", SetConfig{Drivers: []string{"nope"}}, ErrUnknownDriver, `"nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Registry = testRegistry(t)
			_, err := OpenSet(context.Background(), tc.cfg)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %s", err, tc.want, tc.text)
			}
		})
	}
}

func TestSetFallback(t *testing.T) {
	s, err := OpenSet(context.Background(), SetConfig{
		Registry: testRegistry(t),
		Order:    map[string][]string{"python:3*": {"unikernel", "jvm", "container"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// jvm does not declare python, so it is skipped in the python order.
	a := Action{Kind: "python:3.11", Name: "guest/a", DocID: "guest/a", Revision: "1-x"}
	steps := []struct {
		op      string // pick | fallback
		arg     Action
		failed  string
		want    string
		wantErr error
		count   uint64
	}{
		{"pick", a, "", "unikernel", nil, 0},
		{"fallback", a, "unikernel", "container", nil, 1},
		{"pick", a, "", "container", nil, 1},
		{"fallback", a, "container", "", ErrNoDriver, 1},
		// a new revision gets another chance on the fast path
		{"pick", Action{Kind: "python:3.11", Name: "guest/a", DocID: "guest/a", Revision: "2-y"}, "", "unikernel", nil, 1},
		// without a doc id, the name and version are the key
		{"fallback", Action{Kind: "python:3.11", Name: "guest/b", Version: "0.0.1"}, "unikernel", "container", nil, 2},
		{"pick", Action{Kind: "python:3.11", Name: "guest/b", Version: "0.0.1"}, "", "container", nil, 2},
		{"pick", Action{Kind: "python:3.11", Name: "guest/b", Version: "0.0.2"}, "", "unikernel", nil, 2},
		{"pick", Action{Kind: "cobol:1", Name: "guest/c"}, "", "container", nil, 2},
	}
	for i, st := range steps {
		var d Driver
		var err error
		if st.op == "pick" {
			d, err = s.Pick(st.arg)
		} else {
			d, err = s.Fallback(st.arg, st.failed, fmt.Errorf("syscall 56: %w", ErrUnsupported))
		}
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) || !errors.Is(err, ErrUnsupported) {
				t.Errorf("step %d: err = %v, want %v wrapping the cause", i, err, st.wantErr)
			}
		} else if err != nil || d.Name() != st.want {
			t.Errorf("step %d %s: got %v, %v; want %s", i, st.op, d, err, st.want)
		}
		if got := s.Fallbacks(); got != st.count {
			t.Errorf("step %d: Fallbacks = %d, want %d", i, got, st.count)
		}
	}
}

func TestSetRememberBounded(t *testing.T) {
	s, err := OpenSet(context.Background(), SetConfig{
		Registry:      testRegistry(t),
		Order:         map[string][]string{"*": {"unikernel", "container"}},
		RememberLimit: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	act := func(n string) Action { return Action{Kind: "python:3.11", Name: n} }
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.Fallback(act(n), "unikernel", ErrUnsupported); err != nil {
			t.Fatal(err)
		}
	}
	for n, want := range map[string]string{"a": "unikernel", "b": "container", "c": "container"} {
		if d, _ := s.Pick(act(n)); d.Name() != want {
			t.Errorf("Pick(%s) = %s, want %s (oldest memory entry forgotten)", n, d.Name(), want)
		}
	}
}
