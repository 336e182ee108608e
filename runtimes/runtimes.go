package runtimes

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
)

// Marker is the end-of-step line every managed launcher writes on stdout and on stderr before its
// fd-3 reply. It is OpenWhisk's log sentinel, so a launcher whose streams are passed straight
// through to a container's log already produces the log framing the invoker expects.
const Marker = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

// Default interpreters. Debian's python3 is named by path on purpose: a python3 found on PATH
// may be another installation (pyenv on the development machines) with other modules.
const (
	DefaultNode    = "/usr/bin/node"
	DefaultPython3 = "/usr/bin/python3"
)

// ErrUnknownKind is returned for an exec kind no launcher here serves.
var ErrUnknownKind = errors.New("runtimes: no launcher for kind")

//go:embed launchers/launcher.js
var nodeLauncher []byte

//go:embed launchers/launcher.py
var pythonLauncher []byte

// Family is the group of exec kinds one launcher serves.
type Family int

const (
	// Native is an actionloop executable that speaks the framing itself (blackbox, dockerskeleton
	// images created with --native). It has no launcher and no init line; see doc.go.
	Native Family = iota + 1
	// NodeJS is every "nodejs:*" kind.
	NodeJS
	// Python is every "python:3*" kind.
	Python
)

func (f Family) String() string {
	switch f {
	case Native:
		return "native"
	case NodeJS:
		return "nodejs"
	case Python:
		return "python"
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// FamilyOf maps an exec kind to its family: "nodejs:20" → NodeJS, "python:3.11" → Python,
// "blackbox" → Native. Other kinds wrap ErrUnknownKind.
func FamilyOf(kind string) (Family, error) {
	switch {
	case strings.HasPrefix(kind, "nodejs:"):
		return NodeJS, nil
	case kind == "python:3" || strings.HasPrefix(kind, "python:3"):
		return Python, nil
	case kind == "blackbox" || kind == "native":
		return Native, nil
	}
	return 0, fmt.Errorf("%w %q (known: nodejs:*, python:3*, blackbox)", ErrUnknownKind, kind)
}

// Launcher returns the launcher for an exec kind: the file name to write it under and its
// contents (a copy the caller may keep). Native kinds and unknown kinds have none: "", nil.
func Launcher(kind string) (name string, script []byte) {
	f, err := FamilyOf(kind)
	if err != nil {
		return "", nil
	}
	switch f {
	case NodeJS:
		return "launcher.js", append([]byte(nil), nodeLauncher...)
	case Python:
		return "launcher.py", append([]byte(nil), pythonLauncher...)
	}
	return "", nil
}

// Interpreters names the programs that run the launchers.
type Interpreters struct {
	Node    string // default DefaultNode
	Python3 string // default DefaultPython3
}

// Command returns the argv that runs kind's launcher written at launcherPath. For Native it
// returns nil: the action's executable is the process.
func (in Interpreters) Command(kind, launcherPath string) ([]string, error) {
	f, err := FamilyOf(kind)
	if err != nil {
		return nil, err
	}
	switch f {
	case NodeJS:
		node := in.Node
		if node == "" {
			node = DefaultNode
		}
		// --expose-gc as the nodejs runtime image starts node; actions call global.gc().
		return []string{node, "--expose-gc", launcherPath}, nil
	case Python:
		py := in.Python3
		if py == "" {
			py = DefaultPython3
		}
		// -s: no user site-packages; the action sees Debian's modules only.
		return []string{py, "-s", launcherPath}, nil
	}
	return nil, nil
}
