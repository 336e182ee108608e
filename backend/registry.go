package backend

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// Registry errors.
var (
	// ErrInvalidRegistration: a Register call with an empty name, no constructor, a duplicate
	// name or a malformed kind pattern. It is a programming error in a driver package.
	ErrInvalidRegistration = errors.New("invalid driver registration")
	// ErrUnknownDriver: configuration names a driver nobody registered.
	ErrUnknownDriver = errors.New("unknown driver")
	// ErrNoDriver: no available driver runs this kind (or every one of them refused the action).
	ErrNoDriver = errors.New("no driver for kind")
)

// Config is what a driver's constructor and probe receive.
type Config struct {
	// Logger is never nil when a Set passes it; it is already named after the driver.
	Logger *zap.Logger
	// DataDir is a directory the driver owns (created by the caller), e.g. for snapshots or
	// bundles. It survives restarts.
	DataDir string
	// Options are the driver's own settings as text, e.g. {"runtime": "runc"}. A driver
	// rejects an option it does not know with an error naming it.
	Options map[string]string
}

// Registration describes a driver to the registry.
type Registration struct {
	// Kinds are the kind patterns the driver can run: an exact kind ("python:3.11"), a prefix
	// ending in '*' ("python:3*", "nodejs:*", or "*" for every kind), or "blackbox". A '*'
	// anywhere but at the end is invalid.
	Kinds []string
	// Probe reports why the driver cannot run on this host (no /dev/kvm, no OCI runtime …).
	// A non-nil error leaves the driver out at start-up with one log line; it is not fatal.
	// Probe may be nil (always runs). It must not have side effects beyond looking.
	Probe func(ctx context.Context, cfg Config) error
	// New constructs the driver. It is called at most once per Set, after a successful Probe.
	New func(ctx context.Context, cfg Config) (Driver, error)
}

// Registry maps driver names to registrations. Driver packages add themselves to the default
// registry from init(); tests may build their own with NewRegistry. A Registry is safe for
// concurrent use.
type Registry struct {
	mu   sync.Mutex
	regs map[string]Registration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{regs: map[string]Registration{}} }

// defaultRegistry is the one package-level mutable value: drivers register from init().
var defaultRegistry = NewRegistry()

// DefaultRegistry is the registry Register adds to and a Set uses when none is given.
func DefaultRegistry() *Registry { return defaultRegistry }

// Register adds a driver to the default registry. It panics on an invalid registration,
// because that is a programming error found the first time the binary starts (as
// database/sql.Register does).
func Register(name string, reg Registration) {
	if err := defaultRegistry.Register(name, reg); err != nil {
		panic(err)
	}
}

// Register adds a driver. The error wraps ErrInvalidRegistration.
func (r *Registry) Register(name string, reg Registration) error {
	if name == "" || strings.ContainsAny(name, " \t\n,") {
		return fmt.Errorf("backend: register %q: name must be non-empty without spaces or commas: %w", name, ErrInvalidRegistration)
	}
	if reg.New == nil {
		return fmt.Errorf("backend: register %q: New is nil: %w", name, ErrInvalidRegistration)
	}
	if len(reg.Kinds) == 0 {
		return fmt.Errorf("backend: register %q: Kinds is empty: %w", name, ErrInvalidRegistration)
	}
	for _, p := range reg.Kinds {
		if err := ValidKindPattern(p); err != nil {
			return fmt.Errorf("backend: register %q: %w", name, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.regs[name]; dup {
		return fmt.Errorf("backend: register %q: already registered: %w", name, ErrInvalidRegistration)
	}
	reg.Kinds = append([]string(nil), reg.Kinds...)
	r.regs[name] = reg
	return nil
}

// Lookup returns the registration of name.
func (r *Registry) Lookup(name string) (Registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regs[name]
	return reg, ok
}

// Names returns the registered driver names, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.regs))
	for n := range r.regs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ValidKindPattern checks a kind pattern: non-empty, no spaces, '*' only as the last byte.
// The error wraps ErrInvalidRegistration.
func ValidKindPattern(p string) error {
	if p == "" || strings.ContainsAny(p, " \t\n") {
		return fmt.Errorf("kind pattern %q: empty or contains spaces: %w", p, ErrInvalidRegistration)
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return fmt.Errorf("kind pattern %q: '*' is allowed only at the end: %w", p, ErrInvalidRegistration)
	}
	return nil
}

// MatchKind reports whether kind matches pattern: equal, or pattern ends in '*' and kind
// starts with the text before it. "blackbox" matches only "blackbox".
func MatchKind(pattern, kind string) bool {
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(kind, pattern[:len(pattern)-1])
	}
	return pattern == kind
}

// patternRank orders patterns by specificity: an exact pattern beats any prefix pattern, and a
// longer prefix beats a shorter one. Higher is more specific.
func patternRank(p string) int {
	if strings.HasSuffix(p, "*") {
		return len(p) - 1
	}
	return 1 << 20
}
