package controller

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// keyValue is one {key, value[, init][, encryption]} of parameters and annotations.
type keyValue struct {
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value"`
	Init       bool            `json:"init,omitempty"`
	Encryption json.RawMessage `json:"encryption,omitempty"`
}

type keyValues []keyValue

func (kvs keyValues) MarshalJSON() ([]byte, error) {
	if kvs == nil {
		return []byte(`[]`), nil
	}
	return json.Marshal([]keyValue(kvs))
}

func (kvs keyValues) get(key string) (json.RawMessage, bool) {
	for i := len(kvs) - 1; i >= 0; i-- {
		if kvs[i].Key == key {
			return kvs[i].Value, true
		}
	}
	return nil, false
}

// with sets key to value, replacing an existing entry in place.
func (kvs keyValues) with(key string, value json.RawMessage) keyValues {
	out := append(keyValues(nil), kvs...)
	for i := range out {
		if out[i].Key == key {
			out[i].Value = value
			return out
		}
	}
	return append(out, keyValue{Key: key, Value: value})
}

func (kvs keyValues) without(keys []string) keyValues {
	var out keyValues
	for _, kv := range kvs {
		drop := false
		for _, k := range keys {
			if kv.Key == k {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// actionLimits are an action's limits (spec §1.3).
type actionLimits struct {
	Timeout     int `json:"timeout"`
	Memory      int `json:"memory"`
	Logs        int `json:"logs"`
	Concurrency int `json:"concurrency"`
}

// execDoc is an action's exec as the controller writes it: code inline as a string, which
// every reader of action documents accepts (protocol §5).
type execDoc struct {
	Kind       string   `json:"kind"`
	Code       *string  `json:"code,omitempty"`
	Image      string   `json:"image,omitempty"`
	Components []string `json:"components,omitempty"`
	Binary     *bool    `json:"binary,omitempty"`
	Main       string   `json:"main,omitempty"`
}

// actionDoc is an action as stored (with entityType) and as served (without).
type actionDoc struct {
	Namespace   string          `json:"namespace"`
	Name        string          `json:"name"`
	Version     string          `json:"version"`
	Exec        execDoc         `json:"exec"`
	Parameters  keyValues       `json:"parameters"`
	Limits      actionLimits    `json:"limits"`
	Publish     bool            `json:"publish"`
	Annotations keyValues       `json:"annotations"`
	Updated     int64           `json:"updated"`
	EntityType  string          `json:"entityType,omitempty"`
	Extra       json.RawMessage `json:"-"`
}

// summary is the list row of an action (spec §1.3): no code, no parameters.
func (a actionDoc) summary() map[string]any {
	binary := false
	if a.Exec.Binary != nil {
		binary = *a.Exec.Binary
	}
	return map[string]any{
		"namespace": a.Namespace, "name": a.Name, "version": a.Version, "publish": a.Publish,
		"annotations": a.Annotations, "limits": a.Limits, "exec": map[string]any{"binary": binary},
		"updated": a.Updated,
	}
}

// actionPut is the body of PUT /actions/{name} (WhiskActionPut). Every member is optional.
type actionPut struct {
	Exec           *execDoc
	Parameters     keyValues
	HasParameters  bool
	Limits         map[string]int
	Version        string
	Publish        *bool
	Annotations    keyValues
	HasAnnotations bool
	DelAnnotations []string
}

var (
	semverPattern = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	base64Pattern = regexp.MustCompile(`^[A-Za-z0-9+/]*={0,2}$`)
)

// parsePut reads a PUT body with the manifest. Errors are the 400s of the spec.
func (s *Server) parsePut(body []byte) (*actionPut, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte(`{}`)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, malformed(jsonDetail(err))
	}
	if raw == nil {
		return nil, malformed("Object expected")
	}
	p := &actionPut{}
	if v, ok := raw["exec"]; ok && !isNull(v) {
		e, err := s.parseExec(v)
		if err != nil {
			return nil, err
		}
		p.Exec = e
	}
	var err error
	if v, ok := raw["parameters"]; ok && !isNull(v) {
		if p.Parameters, err = parseKeyValues(v, "parameters"); err != nil {
			return nil, err
		}
		p.HasParameters = true
	}
	if v, ok := raw["annotations"]; ok && !isNull(v) {
		if p.Annotations, err = parseKeyValues(v, "annotations"); err != nil {
			return nil, err
		}
		p.HasAnnotations = true
	}
	if v, ok := raw["delAnnotations"]; ok && !isNull(v) {
		if json.Unmarshal(v, &p.DelAnnotations) != nil {
			return nil, malformed("'delAnnotations' must be an array of strings")
		}
	}
	if v, ok := raw["version"]; ok && !isNull(v) {
		if json.Unmarshal(v, &p.Version) != nil || !semverPattern.MatchString(p.Version) {
			return nil, malformed(fmt.Sprintf("bad semantic version %s", v))
		}
		p.Version = normalizeSemver(p.Version)
	}
	if v, ok := raw["publish"]; ok && !isNull(v) {
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return nil, malformed("'publish' must be a boolean")
		}
		p.Publish = &b
	}
	if v, ok := raw["limits"]; ok && !isNull(v) {
		if p.Limits, err = s.parseLimits(v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func normalizeSemver(v string) string {
	parts := strings.Split(v, ".")
	for i, p := range parts {
		n, _ := strconv.Atoi(p)
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ".")
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// jsonDetail renders a JSON decoding error for the "malformed" message.
func jsonDetail(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case asErr(err, &se):
		return fmt.Sprintf("%s at input index %d", se.Error(), se.Offset)
	case asErr(err, &te):
		return "Object expected"
	}
	return err.Error()
}

func parseKeyValues(v json.RawMessage, field string) (keyValues, error) {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, malformed(fmt.Sprintf("'%s' must be an array of {key, value} objects", field))
	}
	out := make(keyValues, 0, len(list))
	for _, m := range list {
		var kv keyValue
		if k, ok := m["key"]; !ok || json.Unmarshal(k, &kv.Key) != nil {
			return nil, malformed(fmt.Sprintf("'%s' entries must have a string 'key'", field))
		}
		kv.Value = m["value"]
		if kv.Value == nil {
			kv.Value = json.RawMessage(`null`)
		}
		if i, ok := m["init"]; ok && json.Unmarshal(i, &kv.Init) != nil {
			return nil, malformed(fmt.Sprintf("'%s' entry %q: 'init' must be a boolean", field, kv.Key))
		}
		if e, ok := m["encryption"]; ok && !isNull(e) {
			kv.Encryption = e
		}
		out = append(out, kv)
	}
	return out, nil
}

// parseExec validates exec against the manifest, the way OpenWhisk's Exec reader does.
func (s *Server) parseExec(v json.RawMessage) (*execDoc, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
		return nil, malformed("'kind' must be a string defined in 'exec'")
	}
	var kind string
	if k, ok := obj["kind"]; !ok || json.Unmarshal(k, &kind) != nil {
		return nil, malformed("'kind' must be a string defined in 'exec'")
	}
	kind = strings.ToLower(strings.TrimSpace(kind))
	var main string
	if m, ok := obj["main"]; ok && !isNull(m) {
		if json.Unmarshal(m, &main) != nil {
			return nil, malformed(fmt.Sprintf("if defined, 'main' be a string in 'exec' for '%s' actions", kind))
		}
	}
	optCode := func() (*string, error) {
		c, ok := obj["code"]
		if !ok || isNull(c) {
			return nil, nil
		}
		var code string
		if json.Unmarshal(c, &code) != nil {
			return nil, malformed(fmt.Sprintf("if defined, 'code' must a string defined in 'exec' for '%s' actions", kind))
		}
		return &code, nil
	}
	switch kind {
	case "sequence":
		c, ok := obj["components"]
		if !ok {
			return nil, malformed("'components' must be defined for sequence kind")
		}
		var comps []string
		if json.Unmarshal(c, &comps) != nil {
			return nil, malformed("'components' must be an array")
		}
		return &execDoc{Kind: "sequence", Components: comps}, nil
	case "blackbox":
		var image string
		if i, ok := obj["image"]; !ok || json.Unmarshal(i, &image) != nil || strings.TrimSpace(image) == "" {
			return nil, malformed("'image' must be a string defined in 'exec' for 'blackbox' actions")
		}
		code, err := optCode()
		if err != nil {
			return nil, err
		}
		binary := code != nil && isBinaryCode(*code)
		if code != nil && strings.TrimSpace(*code) == "" {
			code = nil
		}
		return &execDoc{Kind: "blackbox", Image: image, Code: code, Binary: &binary, Main: main}, nil
	}
	k, ok := s.cfg.Manifest.Resolve(kind)
	if !ok {
		return nil, malformed(fmt.Sprintf("The specified runtime '%s' is not supported by this platform. Valid values are: '%s'.",
			kind, strings.Join(s.cfg.Manifest.Kinds(), "', '")))
	}
	var code string
	if c, ok := obj["code"]; !ok || json.Unmarshal(c, &code) != nil {
		return nil, malformed(fmt.Sprintf("'code' must be a string defined in 'exec' for '%s' actions", k.Kind))
	}
	if k.RequireMain && main == "" {
		return nil, malformed(fmt.Sprintf("'main' must be a string defined in 'exec' for '%s' actions", k.Kind))
	}
	if k.Deprecated {
		return nil, badRequest(fmt.Sprintf("The '%s' runtime is no longer supported. You may read and delete but not update or invoke this action.", k.Kind))
	}
	binary := isBinaryCode(code)
	return &execDoc{Kind: k.Kind, Code: &code, Binary: &binary, Main: main}, nil
}

// isBinaryCode is OpenWhisk's rule: code is binary when it is non-empty valid base64.
func isBinaryCode(code string) bool {
	t := strings.TrimSpace(code)
	if t == "" || len(t)%4 != 0 || !base64Pattern.MatchString(t) {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(t)
	return err == nil
}

// parseLimits checks each limit given against the system range, with OpenWhisk's texts.
func (s *Server) parseLimits(v json.RawMessage) (map[string]int, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
		return nil, malformed("'limits' must be an object")
	}
	L := s.limits
	out := map[string]int{}
	whole := func(name string) (int, bool, error) {
		raw, ok := obj[name]
		if !ok || isNull(raw) {
			return 0, false, nil
		}
		var f float64
		if json.Unmarshal(raw, &f) != nil {
			return 0, false, malformed(fmt.Sprintf("%s limit malformed", name))
		}
		if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
			return 0, false, malformed(fmt.Sprintf("requirement failed: %s limit must be whole number", name))
		}
		return int(f), true, nil
	}
	if n, ok, err := whole("timeout"); err != nil {
		return nil, err
	} else if ok {
		if n < L.MinTimeoutMs {
			return nil, malformed(fmt.Sprintf("requirement failed: duration %d milliseconds below allowed threshold of %s", n, durationText(L.MinTimeoutMs)))
		}
		if n > L.MaxTimeoutMs {
			return nil, malformed(fmt.Sprintf("requirement failed: duration %d milliseconds exceeds allowed threshold of %s", n, durationText(L.MaxTimeoutMs)))
		}
		out["timeout"] = n
	}
	if n, ok, err := whole("memory"); err != nil {
		return nil, err
	} else if ok {
		if n < L.MinMemoryMB {
			return nil, malformed(fmt.Sprintf("requirement failed: memory %d MB below allowed threshold of %d MB", n, L.MinMemoryMB))
		}
		if n > L.MaxMemoryMB {
			return nil, malformed(fmt.Sprintf("requirement failed: memory %d MB exceeds allowed threshold of %d MB", n, L.MaxMemoryMB))
		}
		out["memory"] = n
	}
	if n, ok, err := whole("logs"); err != nil {
		return nil, err
	} else if ok {
		if n < L.MinLogsMB {
			return nil, malformed(fmt.Sprintf("requirement failed: log size %d MB below allowed threshold of %d MB", n, L.MinLogsMB))
		}
		if n > L.MaxLogsMB {
			return nil, malformed(fmt.Sprintf("requirement failed: log size %d MB exceeds allowed threshold of %d MB", n, L.MaxLogsMB))
		}
		out["logs"] = n
	}
	if n, ok, err := whole("concurrency"); err != nil {
		return nil, err
	} else if ok {
		if n < L.MinConcurrency {
			return nil, malformed(fmt.Sprintf("requirement failed: concurrency %d below allowed threshold of %d", n, L.MinConcurrency))
		}
		if n > L.MaxConcurrency {
			return nil, malformed(fmt.Sprintf("requirement failed: concurrency %d exceeds allowed threshold of %d", n, L.MaxConcurrency))
		}
		out["concurrency"] = n
	}
	return out, nil
}

// durationText prints milliseconds the way Scala's FiniteDuration prints the configured
// bounds ("100 milliseconds", "5 minutes").
func durationText(ms int) string {
	switch {
	case ms%60000 == 0:
		return plural(ms/60000, "minute")
	case ms%1000 == 0:
		return plural(ms/1000, "second")
	}
	return plural(ms, "millisecond")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// bumpPatch increments the patch number of a semantic version.
func bumpPatch(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "0.0.1"
	}
	n, _ := strconv.Atoi(parts[2])
	parts[2] = strconv.Itoa(n + 1)
	return strings.Join(parts, ".")
}
