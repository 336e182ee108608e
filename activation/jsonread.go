package activation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// reader carries what every error of one decode call needs: the document name and its sentinel.
// Decoding goes through generic JSON (map of raw members) so that required-versus-optional,
// null-versus-absent and wrong types are decided per field, the way OpenWhisk's spray-json
// formats decide them, and every failure names its field.
type reader struct {
	doc  string
	kind error
}

func (r reader) fail(field string, cause error, format string, args ...any) error {
	return &FieldError{Doc: r.doc, Field: field, Reason: fmt.Sprintf(format, args...), Kind: r.kind, Err: cause}
}

// jsonType names the JSON type of a raw value by its first byte.
func jsonType(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func isNull(raw []byte) bool { return jsonType(raw) == "null" }

// obj is one JSON object being read; path is its dotted location in the document.
type obj struct {
	r    reader
	path string
	m    map[string]json.RawMessage
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// parseObject reads raw as a JSON object located at path. With path "" raw is a whole
// document and is validated here, once; a non-empty path means raw is a member of a document
// that was validated already, so it is only split.
func (r reader) parseObject(raw []byte, path string) (obj, error) {
	if path == "" && !json.Valid(raw) {
		return obj{}, r.syntax(raw)
	}
	if t := jsonType(raw); t != "object" {
		if path == "" {
			return obj{}, r.fail("", nil, "must be a JSON object, got %s", t)
		}
		return obj{}, r.fail(path, nil, "must be a JSON object, got %s", t)
	}
	m, err := splitObject(raw)
	if err != nil {
		return obj{}, r.fail(path, err, "malformed object")
	}
	return obj{r: r, path: path, m: m}, nil
}

func (r reader) syntax(raw []byte) error {
	var v any
	err := json.Unmarshal(raw, &v)
	if err == nil {
		err = fmt.Errorf("not JSON")
	}
	return r.fail("", err, "not valid JSON: %v", err)
}

func (o obj) field(name string) string { return join(o.path, name) }

// get returns the member if present and not null.
func (o obj) get(name string) (json.RawMessage, bool) {
	v, ok := o.m[name]
	if !ok || isNull(v) {
		return nil, false
	}
	return v, true
}

// present reports whether the member exists at all (null included).
func (o obj) present(name string) bool { _, ok := o.m[name]; return ok }

func (o obj) missing(name string) error {
	return o.r.fail(o.field(name), nil, "is required but missing")
}

func (o obj) wrongType(name, want string, raw []byte) error {
	return o.r.fail(o.field(name), nil, "must be %s, got %s", want, jsonType(raw))
}

func (o obj) str(name string, required bool) (string, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return "", false, o.missing(name)
		}
		return "", false, nil
	}
	if jsonType(v) != "string" {
		return "", false, o.wrongType(name, "a string", v)
	}
	s, err := unquote(v)
	if err != nil {
		return "", false, o.r.fail(o.field(name), err, "malformed string: %v", err)
	}
	return s, true, nil
}

func (o obj) reqString(name string) (string, error) {
	s, _, err := o.str(name, true)
	return s, err
}

func (o obj) optString(name string) (string, bool, error) { return o.str(name, false) }

func (o obj) boolean(name string, required bool) (bool, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return false, false, o.missing(name)
		}
		return false, false, nil
	}
	switch string(bytes.TrimSpace(v)) {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, false, o.wrongType(name, "a boolean", v)
}

func (o obj) reqBool(name string) (bool, error) {
	b, _, err := o.boolean(name, true)
	return b, err
}

func (o obj) optBool(name string) (*bool, error) {
	b, ok, err := o.boolean(name, false)
	if err != nil || !ok {
		return nil, err
	}
	return &b, nil
}

// integer reads a JSON number that holds a whole value within [min, max].
func (o obj) integer(name string, required bool, min, max int64) (int64, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return 0, false, o.missing(name)
		}
		return 0, false, nil
	}
	n, err := parseWhole(v)
	if err != nil {
		return 0, false, o.r.fail(o.field(name), nil, "%v", err)
	}
	if n < min || n > max {
		return 0, false, o.r.fail(o.field(name), nil, "%d is outside [%d, %d]", n, min, max)
	}
	return n, true, nil
}

func parseWhole(v []byte) (int64, error) {
	if t := jsonType(v); t != "number" {
		return 0, fmt.Errorf("must be a number, got %s", t)
	}
	s := string(bytes.TrimSpace(v))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	// Scala readers accept any JSON number and take its integral value; we accept exponent
	// forms of whole numbers but refuse fractions and overflow.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("malformed number %.40q", s)
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("must be a whole number, got %.40s", s)
	}
	if f < -9.2e18 || f > 9.2e18 {
		return 0, fmt.Errorf("number %.40s is out of range", s)
	}
	return int64(f), nil
}

func (o obj) reqInt(name string, min, max int64) (int64, error) {
	n, _, err := o.integer(name, true, min, max)
	return n, err
}

func (o obj) optInt(name string, min, max int64) (*int64, error) {
	n, ok, err := o.integer(name, false, min, max)
	if err != nil || !ok {
		return nil, err
	}
	return &n, nil
}

func (o obj) object(name string, required bool) (obj, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return obj{}, false, o.missing(name)
		}
		return obj{}, false, nil
	}
	if jsonType(v) != "object" {
		return obj{}, false, o.wrongType(name, "an object", v)
	}
	sub, err := o.r.parseObject(v, o.field(name))
	return sub, err == nil, err
}

func (o obj) array(name string, required bool) ([]json.RawMessage, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return nil, false, o.missing(name)
		}
		return nil, false, nil
	}
	if jsonType(v) != "array" {
		return nil, false, o.wrongType(name, "an array", v)
	}
	items, err := splitArray(v)
	if err != nil {
		return nil, false, o.r.fail(o.field(name), err, "malformed array: %v", err)
	}
	return items, true, nil
}

// strings reads an array of strings; a missing optional array is nil.
func (o obj) strings(name string, required bool) ([]string, error) {
	items, ok, err := o.array(name, required)
	if err != nil || !ok {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		if jsonType(it) != "string" {
			return nil, o.r.fail(index(o.field(name), i), nil, "must be a string, got %s", jsonType(it))
		}
		s, err := unquote(it)
		if err != nil {
			return nil, o.r.fail(index(o.field(name), i), err, "malformed string")
		}
		out = append(out, s)
	}
	return out, nil
}

// stringMap reads an object whose values are all strings.
func (o obj) stringMap(name string, required bool) (map[string]string, error) {
	sub, ok, err := o.object(name, required)
	if err != nil || !ok {
		return nil, err
	}
	out := make(map[string]string, len(sub.m))
	for k, v := range sub.m {
		if jsonType(v) != "string" {
			return nil, o.r.fail(sub.field(k), nil, "must be a string, got %s", jsonType(v))
		}
		s, err := unquote(v)
		if err != nil {
			return nil, o.r.fail(sub.field(k), err, "malformed string")
		}
		out[k] = s
	}
	return out, nil
}

// compact returns raw without insignificant whitespace (a fresh copy).
func compact(raw []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return b.Bytes()
}
