package activation

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Parameter is one {key, value[, init][, encryption]} entry of an action's parameters or of
// any entity's annotations. Value is raw JSON.
type Parameter struct {
	Key   string
	Value json.RawMessage
	// Init marks a parameter passed to /init as environment (written only when true).
	Init bool
	// Encryption names the scheme of an encrypted value ("aes-128", "aes-256"); empty when plain.
	Encryption string
}

// Parameters is an ordered list of parameters or annotations. Order is kept as read.
type Parameters []Parameter

// MarshalJSON writes one parameter.
func (p Parameter) MarshalJSON() ([]byte, error) { return p.appendJSON(nil), nil }

// MarshalJSON writes the list ([] when empty).
func (ps Parameters) MarshalJSON() ([]byte, error) { return ps.appendJSON(nil), nil }

// Get returns the value of key (the last one if repeated) and whether it exists.
func (ps Parameters) Get(key string) (json.RawMessage, bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Key == key {
			return ps[i].Value, true
		}
	}
	return nil, false
}

// GetString returns the value of key if it is a JSON string.
func (ps Parameters) GetString(key string) (string, bool) {
	v, ok := ps.Get(key)
	if !ok || jsonType(v) != "string" {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// GetInt returns the value of key if it is a whole JSON number.
func (ps Parameters) GetInt(key string) (int64, bool) {
	v, ok := ps.Get(key)
	if !ok {
		return 0, false
	}
	n, err := parseWhole(v)
	return n, err == nil
}

// GetBool returns the value of key if it is a JSON boolean.
func (ps Parameters) GetBool(key string) (bool, bool) {
	v, ok := ps.Get(key)
	if !ok || jsonType(v) != "boolean" {
		return false, false
	}
	return string(bytes.TrimSpace(v)) == "true", true
}

// IsTruthy applies OpenWhisk's truthiness to key: false, 0, "" and null are false, any other
// value is true; a missing key gives ifAbsent.
func (ps Parameters) IsTruthy(key string, ifAbsent bool) bool {
	v, ok := ps.Get(key)
	if !ok {
		return ifAbsent
	}
	v = bytes.TrimSpace(v)
	switch jsonType(v) {
	case "boolean":
		return string(v) == "true"
	case "null":
		return false
	case "string":
		return string(v) != `""`
	case "number":
		f, err := strconv.ParseFloat(string(v), 64)
		return err != nil || f != 0
	}
	return true
}

// With returns ps with key set to value (replacing an existing entry in place, else appended).
func (ps Parameters) With(key string, value json.RawMessage) Parameters {
	out := append(Parameters(nil), ps...)
	for i := range out {
		if out[i].Key == key {
			out[i].Value = value
			return out
		}
	}
	return append(out, Parameter{Key: key, Value: value})
}

func mustJSON(v any) json.RawMessage {
	b, err := Marshal(v)
	if err != nil {
		panic(err) // only called with values that always marshal
	}
	return b
}

// parameters reads an array of {key, value[, init][, encryption]}.
func (o obj) parameters(name string, required bool) (Parameters, error) {
	items, ok, err := o.array(name, required)
	if err != nil || !ok {
		return nil, err
	}
	out := make(Parameters, 0, len(items))
	for i, it := range items {
		p, err := o.r.parseObject(it, index(o.field(name), i))
		if err != nil {
			return nil, err
		}
		var e Parameter
		if e.Key, err = p.reqString("key"); err != nil {
			return nil, err
		}
		v, ok := p.m["value"]
		if !ok {
			return nil, p.missing("value")
		}
		e.Value = compact(v)
		if b, _, err := p.boolean("init", false); err != nil {
			return nil, err
		} else {
			e.Init = b
		}
		if e.Encryption, _, err = p.optString("encryption"); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
