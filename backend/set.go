package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Selector answers which driver runs an action and applies the fallback policy (the
// Containerless rule). The pool uses it; *Set implements it. Implementations are safe for
// concurrent use.
type Selector interface {
	// ForKind returns the available drivers that run kind, in the configured order. It is
	// what stem cells (prewarm instances) of that kind are started on: the first entry.
	ForKind(kind string) []Driver
	// Pick returns the driver to try first for the action: the one the action was remembered
	// for after an earlier fallback, else the first driver for its kind. The error wraps
	// ErrNoDriver.
	Pick(a Action) (Driver, error)
	// Fallback is called when driver `failed` answered ErrUnsupported for the action. It
	// returns the next driver for the action's kind after `failed`, remembers the action for
	// it (so Pick answers it next time) and counts one fallback. With no next driver the
	// error wraps ErrNoDriver and cause.
	Fallback(a Action, failed string, cause error) (Driver, error)
}

// SetConfig configures the drivers of one process.
type SetConfig struct {
	// Registry is where drivers are looked up; nil means DefaultRegistry().
	Registry *Registry
	// Order maps a kind pattern (as in Registration.Kinds) to driver names in the order they
	// are tried, e.g. {"python:3*": {"unikernel", "container"}, "*": {"container"}}. The most
	// specific pattern matching a kind wins (exact, then the longest prefix). A kind no
	// pattern matches gets every available driver that declares it, sorted by name.
	Order map[string][]string
	// Drivers limits which registered drivers are probed and opened; empty means all.
	Drivers []string
	// Logger receives one line per driver left out; nil means no logs.
	Logger *zap.Logger
	// DataDir is the parent of each driver's own directory, DataDir/<name>, created on
	// demand. Empty means each driver gets an empty DataDir.
	DataDir string
	// Options holds each driver's options by driver name.
	Options map[string]map[string]string
	// RememberLimit bounds how many actions the fallback memory holds; the oldest entry is
	// forgotten first. Zero means 10000.
	RememberLimit int
}

// Set is the opened drivers of one process and the fallback memory. It implements Selector.
type Set struct {
	log     *zap.Logger
	drivers map[string]Driver
	kinds   map[string][]string // driver name → its kind patterns
	down    map[string]error    // driver name → why it was left out
	order   map[string][]string
	names   []string // every opened driver, sorted

	mu        sync.Mutex
	remember  map[string]string // action key → driver name
	fifo      []string          // remember keys, oldest first
	limit     int
	fallbacks atomic.Uint64
}

var _ Selector = (*Set)(nil)

// OpenSet probes every registered driver (or those in cfg.Drivers), constructs those whose
// probe passes, and returns the set. A driver whose Probe or New fails is logged once with the
// reason and left out; that is not an error. The error is for bad configuration only: an Order
// or Drivers entry naming an unregistered driver or malformed pattern (wrapping
// ErrUnknownDriver or ErrInvalidRegistration).
func OpenSet(ctx context.Context, cfg SetConfig) (*Set, error) {
	reg := cfg.Registry
	if reg == nil {
		reg = DefaultRegistry()
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	registered := reg.Names()
	known := func(n string) bool {
		i := sort.SearchStrings(registered, n)
		return i < len(registered) && registered[i] == n
	}
	for pattern, names := range cfg.Order {
		if err := ValidKindPattern(pattern); err != nil {
			return nil, fmt.Errorf("backend: order: %w", err)
		}
		for _, n := range names {
			if !known(n) {
				return nil, fmt.Errorf("backend: order for kind %q: driver %q (registered: %s): %w",
					pattern, n, strings.Join(registered, ", "), ErrUnknownDriver)
			}
		}
	}
	wanted := registered
	if len(cfg.Drivers) > 0 {
		wanted = nil
		for _, n := range cfg.Drivers {
			if !known(n) {
				return nil, fmt.Errorf("backend: drivers: %q (registered: %s): %w",
					n, strings.Join(registered, ", "), ErrUnknownDriver)
			}
			wanted = append(wanted, n)
		}
	}
	s := &Set{
		log:      log,
		drivers:  map[string]Driver{},
		kinds:    map[string][]string{},
		down:     map[string]error{},
		order:    map[string][]string{},
		remember: map[string]string{},
		limit:    cfg.RememberLimit,
	}
	if s.limit <= 0 {
		s.limit = 10000
	}
	for p, names := range cfg.Order {
		s.order[p] = append([]string(nil), names...)
	}
	for _, name := range wanted {
		r, _ := reg.Lookup(name)
		dcfg := Config{Logger: log.Named(name), Options: cfg.Options[name]}
		if cfg.DataDir != "" {
			dcfg.DataDir = filepath.Join(cfg.DataDir, name)
		}
		if err := s.open(ctx, name, r, dcfg); err != nil {
			s.down[name] = err
			log.Warn("driver left out", zap.String("driver", name), zap.Error(err))
			continue
		}
		s.kinds[name] = r.Kinds
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	return s, nil
}

// open probes and constructs one driver, turning a panic in driver code into an error so a
// broken driver cannot take the process down at start-up.
func (s *Set) open(ctx context.Context, name string, r Registration, cfg Config) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("backend: driver %q panicked while starting: %v", name, p)
		}
	}()
	if r.Probe != nil {
		if err := r.Probe(ctx, cfg); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	d, err := r.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	if d == nil {
		return fmt.Errorf("new: returned a nil driver")
	}
	s.drivers[name] = d
	return nil
}

// Available returns the names of the drivers that were opened, sorted.
func (s *Set) Available() []string { return append([]string(nil), s.names...) }

// Unavailable returns each driver left out and why.
func (s *Set) Unavailable() map[string]error {
	m := make(map[string]error, len(s.down))
	for k, v := range s.down {
		m[k] = v
	}
	return m
}

// Driver returns an opened driver by name.
func (s *Set) Driver(name string) (Driver, bool) {
	d, ok := s.drivers[name]
	return d, ok
}

// Order returns the names of the available drivers for kind, in the order they are tried.
func (s *Set) Order(kind string) []string {
	best, rank := "", -1
	for p := range s.order {
		if MatchKind(p, kind) {
			if r := patternRank(p); r > rank || (r == rank && p < best) {
				best, rank = p, r
			}
		}
	}
	var out []string
	if rank >= 0 {
		for _, n := range s.order[best] {
			if _, ok := s.drivers[n]; ok && s.declares(n, kind) {
				out = append(out, n)
			}
		}
		return out
	}
	for _, n := range s.names {
		if s.declares(n, kind) {
			out = append(out, n)
		}
	}
	return out
}

// declares reports whether driver n registered a pattern matching kind.
func (s *Set) declares(n, kind string) bool {
	for _, p := range s.kinds[n] {
		if MatchKind(p, kind) {
			return true
		}
	}
	return false
}

// ForKind implements Selector.
func (s *Set) ForKind(kind string) []Driver {
	names := s.Order(kind)
	out := make([]Driver, len(names))
	for i, n := range names {
		out[i] = s.drivers[n]
	}
	return out
}

// RememberKey is the key under which the fallback memory stores an action: its document id
// and revision when known (a new revision gets a new chance on the fast path), else its name
// and version.
func RememberKey(a Action) string {
	if a.DocID != "" {
		return "doc:" + a.DocID + "@" + a.Revision
	}
	return "name:" + a.Name + "@" + a.Version
}

// Pick implements Selector.
func (s *Set) Pick(a Action) (Driver, error) {
	names := s.Order(a.Kind)
	if len(names) == 0 {
		return nil, fmt.Errorf("backend: action %s: kind %q: %w", a.Name, a.Kind, ErrNoDriver)
	}
	s.mu.Lock()
	r, ok := s.remember[RememberKey(a)]
	s.mu.Unlock()
	if ok {
		for _, n := range names {
			if n == r {
				return s.drivers[n], nil
			}
		}
	}
	return s.drivers[names[0]], nil
}

// Fallback implements Selector.
func (s *Set) Fallback(a Action, failed string, cause error) (Driver, error) {
	names := s.Order(a.Kind)
	next := ""
	for i, n := range names {
		if n == failed && i+1 < len(names) {
			next = names[i+1]
			break
		}
	}
	if next == "" {
		return nil, fmt.Errorf("backend: action %s: kind %q: no driver after %q: %w (%w)",
			a.Name, a.Kind, failed, ErrNoDriver, cause)
	}
	key := RememberKey(a)
	s.mu.Lock()
	if _, ok := s.remember[key]; !ok {
		s.fifo = append(s.fifo, key)
		for len(s.fifo) > s.limit {
			delete(s.remember, s.fifo[0])
			s.fifo = s.fifo[1:]
		}
	}
	s.remember[key] = next
	s.mu.Unlock()
	s.fallbacks.Add(1)
	s.log.Info("driver fallback", zap.String("action", a.Name), zap.String("kind", a.Kind),
		zap.String("from", failed), zap.String("to", next), zap.Error(cause))
	return s.drivers[next], nil
}

// Fallbacks returns how many fallbacks happened since the set was opened.
func (s *Set) Fallbacks() uint64 { return s.fallbacks.Load() }

// Close closes every opened driver and returns their errors joined.
func (s *Set) Close() error {
	var errs []error
	for _, n := range s.names {
		if err := s.drivers[n].Close(); err != nil {
			errs = append(errs, fmt.Errorf("backend: close %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}
