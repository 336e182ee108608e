package unikernel

import (
	"fmt"
	"strings"

	"github.com/snapinvoker/snapinvoker/backend"
)

// kindSpec is one row of the kind table: which exec kinds run here and how their guest starts.
type kindSpec struct {
	// pattern is the kind pattern registered with backend (see backend.Registration.Kinds).
	pattern string
	// runtimeSnapshot: the guest is a runtime (an interpreter and its launcher) booted once per
	// runtime build into a runtime snapshot, /init restores it and feeds the init line, and the
	// function snapshot is a page diff against it. False: the action's own executable is the
	// guest and the function snapshot is a root.
	runtimeSnapshot bool
	// missing, when not empty, says what kvm still lacks for this kind; such rows are not
	// registered.
	missing string
}

// kindTable lists every kind the driver knows. A kind with a runtime snapshot (python:3*, see
// managed.go) adds its runtime image and init-line build; the rest of the driver (function
// snapshots, reset, ready guests, Containerless) is shared by all kinds. nodejs is not here: node
// needs threads, epoll and eventfd, which kvm does not serve.
var kindTable = []kindSpec{
	{pattern: "blackbox"},
	{pattern: "python:3*", runtimeSnapshot: true},
}

// Kinds returns the kind patterns the driver registers: the rows of the kind table kvm supports.
func Kinds() []string {
	var out []string
	for _, k := range kindTable {
		if k.missing == "" {
			out = append(out, k.pattern)
		}
	}
	return out
}

// lookupKind finds kind's row. The error wraps backend.ErrUnsupported.
func lookupKind(kind string) (kindSpec, error) {
	for _, k := range kindTable {
		if backend.MatchKind(k.pattern, kind) {
			if k.missing != "" {
				return k, fmt.Errorf("unikernel: kind %q: %s: %w", kind, k.missing, backend.ErrUnsupported)
			}
			return k, nil
		}
	}
	return kindSpec{}, fmt.Errorf("unikernel: kind %q: not one this driver runs (%s): %w",
		kind, strings.Join(Kinds(), ", "), backend.ErrUnsupported)
}
