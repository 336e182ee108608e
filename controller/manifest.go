package controller

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Kind is what the controller needs to know about one runtime kind of the manifest.
type Kind struct {
	Kind        string
	RequireMain bool
	Deprecated  bool
}

// Manifest is the runtimes manifest as the controller uses it: resolving and validating exec
// kinds, and showing the runtimes at GET /. The standalone command builds it from the same
// manifest JSON the invoker is given.
type Manifest struct {
	raw      json.RawMessage
	kinds    map[string]Kind
	defaults map[string]string // family → default kind
	names    []string
}

// ParseManifest reads a runtimes manifest ({"runtimes": {family: [{kind, default, …}]}, …}).
// Its full validation is the invoker's (package activation); here only what the controller
// uses is read.
func ParseManifest(raw []byte) (*Manifest, error) {
	var m struct {
		Runtimes map[string][]struct {
			Kind        string `json:"kind"`
			Default     bool   `json:"default"`
			Deprecated  bool   `json:"deprecated"`
			RequireMain bool   `json:"requireMain"`
		} `json:"runtimes"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("controller: runtimes manifest: %w", err)
	}
	out := &Manifest{raw: json.RawMessage(raw), kinds: map[string]Kind{}, defaults: map[string]string{}}
	for family, kinds := range m.Runtimes {
		for _, k := range kinds {
			if k.Kind == "" {
				return nil, fmt.Errorf("controller: runtimes manifest: family %q has a kind without a name", family)
			}
			out.kinds[k.Kind] = Kind{Kind: k.Kind, RequireMain: k.RequireMain, Deprecated: k.Deprecated}
			out.names = append(out.names, k.Kind)
			if k.Default || len(kinds) == 1 {
				out.defaults[family] = k.Kind
			}
		}
	}
	sort.Strings(out.names)
	return out, nil
}

// Resolve maps a kind as a client sends it (trimmed, lower-cased, "family:default" allowed)
// to the manifest's kind.
func (m *Manifest) Resolve(kind string) (Kind, bool) {
	kind = strings.ToLower(strings.TrimSpace(kind))
	if fam, ver, ok := strings.Cut(kind, ":"); ok && ver == "default" {
		if d, ok := m.defaults[fam]; ok {
			kind = d
		}
	}
	k, ok := m.kinds[kind]
	return k, ok
}

// Kinds lists the manifest's kinds, sorted.
func (m *Manifest) Kinds() []string { return append([]string(nil), m.names...) }

// DefaultKind returns the default kind of a family.
func (m *Manifest) DefaultKind(family string) (string, bool) {
	k, ok := m.defaults[family]
	return k, ok
}

// JSON is the manifest as given.
func (m *Manifest) JSON() json.RawMessage { return m.raw }

// runtimesByFamily is the "runtimes" member of GET /: the manifest's runtimes object.
func (m *Manifest) runtimesByFamily() json.RawMessage {
	var v struct {
		Runtimes json.RawMessage `json:"runtimes"`
	}
	if json.Unmarshal(m.raw, &v) != nil || v.Runtimes == nil {
		return json.RawMessage(`{}`)
	}
	return v.Runtimes
}

// DefaultManifest is a manifest naming every kind snapinvoker's drivers know. The standalone
// command normally builds a narrower one from the drivers available on the host.
func DefaultManifest() (*Manifest, error) {
	return ParseManifest([]byte(`{"runtimes":{
 "nodejs":[{"kind":"nodejs:20","default":true,"image":{"prefix":"openwhisk","name":"action-nodejs-v20","tag":"nightly"}}],
 "python":[{"kind":"python:3.11","default":true,"image":{"prefix":"openwhisk","name":"action-python-v3.11","tag":"nightly"}}],
 "java":[{"kind":"java:8","default":true,"requireMain":true,"image":{"prefix":"openwhisk","name":"java8action","tag":"nightly"}}]},
 "blackboxes":[{"prefix":"openwhisk","name":"dockerskeleton","tag":"nightly"}]}`))
}
