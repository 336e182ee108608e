package controller

import (
	"encoding/json"
	"fmt"

	"github.com/snapinvoker/snapinvoker/activation"
)

// Kind is what the controller needs to know about one runtime kind of the manifest.
type Kind struct {
	Kind        string
	RequireMain bool
	Deprecated  bool
}

// Manifest is the runtimes manifest as the controller uses it: resolving and validating exec
// kinds, and showing the runtimes at GET /. It is the same manifest JSON the invoker is given,
// validated by package activation.
type Manifest struct {
	raw json.RawMessage
	m   *activation.Manifest
}

// ParseManifest reads and validates a runtimes manifest ({"runtimes": {family: [{kind, …}]}, …}).
func ParseManifest(raw []byte) (*Manifest, error) {
	m, err := activation.DecodeManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return &Manifest{raw: json.RawMessage(raw), m: m}, nil
}

// Resolve maps a kind as a client sends it (trimmed, lower-cased, "family:default" allowed)
// to the manifest's kind.
func (m *Manifest) Resolve(kind string) (Kind, bool) {
	k, ok := m.m.Resolve(kind)
	if !ok {
		return Kind{}, false
	}
	return Kind{Kind: k.Kind, RequireMain: k.RequiresMain(), Deprecated: k.IsDeprecated()}, true
}

// Kinds lists the manifest's kinds, sorted.
func (m *Manifest) Kinds() []string { return m.m.Kinds() }

// DefaultKind returns the default kind of a family.
func (m *Manifest) DefaultKind(family string) (string, bool) { return m.m.DefaultKind(family) }

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
