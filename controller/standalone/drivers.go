package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/backend"
)

// ProbeDrivers asks every registered driver whether it can run on this host. A probe that
// does not answer within ten seconds counts as failed.
func ProbeDrivers(ctx context.Context, reg *backend.Registry, opts map[string]map[string]string, dataDir string) []DriverStatus {
	var out []DriverStatus
	for _, name := range reg.Names() {
		r, _ := reg.Lookup(name)
		st := DriverStatus{Name: name, Kinds: r.Kinds}
		if r.Probe != nil {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			st.Err = probe(pctx, r, backend.Config{Logger: zap.NewNop(), DataDir: filepath.Join(dataDir, name), Options: opts[name]})
			cancel()
		}
		out = append(out, st)
	}
	return out
}

func probe(ctx context.Context, r backend.Registration, cfg backend.Config) (err error) {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("probe panicked: %v", p)
			}
		}()
		done <- r.Probe(ctx, cfg)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("probe did not answer: %w", ctx.Err())
	}
}

// catalogKind is a runtime kind standalone can offer when a driver runs it.
type catalogKind struct {
	family, kind string
	image        string
	requireMain  bool
}

// catalog lists the kinds of the built-in manifest, the first of each family its default.
// The images are the upstream ones: the container driver runs them where it has an engine,
// and they name the runtime for every other driver.
var catalog = []catalogKind{
	{"nodejs", "nodejs:20", "action-nodejs-v20", false},
	{"python", "python:3.11", "action-python-v3.11", false},
	{"java", "java:8", "java8action", true},
	{"go", "go:1.20", "action-golang-v1.20", false},
}

// DefaultManifest builds the runtimes manifest from the kinds the available drivers run. With
// no available driver it is upstream's fallback, nodejs:20 alone, so the controller still
// accepts actions.
func DefaultManifest(drivers []DriverStatus) []byte {
	type image struct {
		Prefix string `json:"prefix"`
		Name   string `json:"name"`
		Tag    string `json:"tag,omitempty"`
	}
	type kind struct {
		Kind        string `json:"kind"`
		Default     bool   `json:"default"`
		Image       image  `json:"image"`
		Deprecated  bool   `json:"deprecated"`
		RequireMain bool   `json:"requireMain,omitempty"`
	}
	runs := func(k string) bool {
		for _, d := range drivers {
			if d.Err != nil {
				continue
			}
			for _, p := range d.Kinds {
				if backend.MatchKind(p, k) {
					return true
				}
			}
		}
		return false
	}
	m := struct {
		Runtimes   map[string][]kind `json:"runtimes"`
		Blackboxes []image           `json:"blackboxes"`
	}{Runtimes: map[string][]kind{}, Blackboxes: []image{}}
	for _, c := range catalog {
		if !runs(c.kind) {
			continue
		}
		m.Runtimes[c.family] = append(m.Runtimes[c.family], kind{Kind: c.kind, Default: len(m.Runtimes[c.family]) == 0,
			Image: image{"openwhisk", c.image, "nightly"}, RequireMain: c.requireMain})
	}
	if runs("blackbox") {
		// Native actionloop images: the untagged name is what `wsk action create --native`
		// sends, the nightly tag what upstream's manifest lists.
		m.Blackboxes = append(m.Blackboxes, image{"openwhisk", "dockerskeleton", ""}, image{"openwhisk", "dockerskeleton", "nightly"})
	}
	if len(m.Runtimes) == 0 {
		m.Runtimes["nodejs"] = []kind{{Kind: "nodejs:20", Default: true, Image: image{"openwhisk", "action-nodejs-v20", "nightly"}}}
	}
	b, _ := json.Marshal(m)
	return b
}

// fallbackDriver is the driver that runs every kind, slowly: the others go first.
const fallbackDriver = "container"

// DriverOrder is the invoker's driver order (SNAPINVOKER_DRIVERS) that puts the fast drivers
// available here before the container driver for the kinds they run ("blackbox=unikernel,
// container"), the fallback policy of the design: the fast path first, the container when the
// fast path answers "unsupported". Empty when there is nothing to order.
func DriverOrder(drivers []DriverStatus) string {
	container := false
	for _, d := range drivers {
		container = container || (d.Name == fallbackDriver && d.Err == nil)
	}
	var rules []string
	seen := map[string]bool{}
	for _, d := range drivers {
		if d.Err != nil || d.Name == fallbackDriver {
			continue
		}
		for _, p := range d.Kinds {
			if seen[p] {
				continue
			}
			seen[p] = true
			list := d.Name
			if container {
				list += "," + fallbackDriver
			}
			rules = append(rules, p+"="+list)
		}
	}
	return strings.Join(rules, ";")
}
