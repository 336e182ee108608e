package activation

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// A single-pass splitter for JSON that has already been validated (json.Valid on the whole
// document). Decoders validate each input once and then split objects and arrays into raw
// members without re-validating every level, which is what json.Unmarshal into
// map[string]json.RawMessage would do at each depth. Every index is bounds-checked, so
// misuse on unvalidated input yields errMalformed, never a panic. Raw values alias the input;
// whatever is kept beyond the decode is copied (compact) by the callers.

var errMalformed = errors.New("malformed JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"', or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j)
				if j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSpace(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// unquote decodes a JSON string; strings without escapes are converted directly.
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errMalformed
	}
	inner := raw[1 : len(raw)-1]
	plain := utf8.Valid(inner)
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// splitObject returns the members of the object in b (last duplicate wins, as in a map).
func splitObject(b []byte) (map[string]json.RawMessage, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errMalformed
	}
	m := make(map[string]json.RawMessage, 8)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, nil
	}
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return nil, errMalformed
		}
		ke := skipString(b, i)
		if ke < 0 {
			return nil, errMalformed
		}
		key, err := unquote(b[i:ke])
		if err != nil {
			return nil, errMalformed
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return nil, errMalformed
		}
		i = skipSpace(b, i+1)
		ve := skipValue(b, i)
		if ve < 0 {
			return nil, errMalformed
		}
		m[key] = b[i:ve]
		var done bool
		i, done, err = afterMember(b, ve, '}')
		if err != nil {
			return nil, err
		}
		if done {
			return m, nil
		}
	}
}

// afterMember steps past what follows a member of an object or array ending at ve: a ',' (more
// members follow, at next) or the closing byte (done).
func afterMember(b []byte, ve int, closing byte) (next int, done bool, err error) {
	i := skipSpace(b, ve)
	if i >= len(b) {
		return 0, false, errMalformed
	}
	switch b[i] {
	case ',':
		return i + 1, false, nil
	case closing:
		return i + 1, true, nil
	}
	return 0, false, errMalformed
}

// splitArray returns the elements of the array in b.
func splitArray(b []byte) ([]json.RawMessage, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, errMalformed
	}
	items := []json.RawMessage{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return items, nil
	}
	for {
		i = skipSpace(b, i)
		ve := skipValue(b, i)
		if ve < 0 {
			return nil, errMalformed
		}
		items = append(items, b[i:ve])
		var done bool
		var err error
		i, done, err = afterMember(b, ve, ']')
		if err != nil {
			return nil, err
		}
		if done {
			return items, nil
		}
	}
}
