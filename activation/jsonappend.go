package activation

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Append-style writers for the records written on every activation (acks, stored records).
// encoding/json re-compacts the output of every nested MarshalJSON, which made an ack cost
// several times a generic encode; these write each byte once. Strings are escaped exactly
// as encoding/json does with HTML escaping off; raw values are copied as they are (they are
// compact already: decoders compact what they keep, builders produce compact JSON).

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendRaw(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

func appendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// appendKey writes ,"key": (without the comma for the first member).
func appendKey(b []byte, first bool, key string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendString(b, key)
	return append(b, ':')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

func (p Parameter) appendJSON(b []byte) []byte {
	b = append(b, `{"key":`...)
	b = appendString(b, p.Key)
	b = append(b, `,"value":`...)
	b = appendRaw(b, p.Value)
	if p.Init {
		b = append(b, `,"init":true`...)
	}
	if p.Encryption != "" {
		b = append(b, `,"encryption":`...)
		b = appendString(b, p.Encryption)
	}
	return append(b, '}')
}

func (ps Parameters) appendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = p.appendJSON(b)
	}
	return append(b, ']')
}

func (r ActivationResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"statusCode":`...)
	b = appendInt(b, int64(r.StatusCode))
	if len(r.Result) > 0 {
		b = append(b, `,"result":`...)
		b = appendRaw(b, r.Result)
	}
	if r.Size != nil {
		b = append(b, `,"size":`...)
		b = appendInt(b, int64(*r.Size))
	}
	return append(b, '}')
}

// appendMembers writes the record's members (no braces), in upstream's order.
func (a WhiskActivation) appendMembers(b []byte) []byte {
	v := a.Version
	if v.IsZero() {
		v = DefaultVersion
	}
	b = append(b, `"namespace":`...)
	b = appendString(b, a.Namespace)
	b = append(b, `,"name":`...)
	b = appendString(b, a.Name)
	b = append(b, `,"subject":`...)
	b = appendString(b, a.Subject)
	b = append(b, `,"activationId":`...)
	b = appendString(b, string(a.ActivationID))
	b = append(b, `,"start":`...)
	b = appendInt(b, a.Start)
	b = append(b, `,"end":`...)
	b = appendInt(b, a.End)
	if a.Cause != "" {
		b = append(b, `,"cause":`...)
		b = appendString(b, string(a.Cause))
	}
	b = append(b, `,"response":`...)
	b = a.Response.appendJSON(b)
	b = append(b, `,"logs":`...)
	b = appendStrings(b, a.Logs)
	b = append(b, `,"version":`...)
	b = appendString(b, v.String())
	b = append(b, `,"publish":`...)
	b = appendBool(b, a.Publish)
	b = append(b, `,"annotations":`...)
	b = a.Annotations.appendJSON(b)
	if a.Duration != nil {
		b = append(b, `,"duration":`...)
		b = appendInt(b, *a.Duration)
	}
	return b
}

func (a WhiskActivation) appendJSON(b []byte) []byte {
	b = append(b, '{')
	b = a.appendMembers(b)
	return append(b, '}')
}

func (i InvokerInstanceID) appendJSON(b []byte) []byte {
	b = append(b, `{"instance":`...)
	b = appendInt(b, int64(i.Instance))
	b = append(b, `,"userMemory":`...)
	b = appendString(b, i.UserMemory.String())
	if i.BusyMemory != nil {
		b = append(b, `,"busyMemory":`...)
		b = appendString(b, i.BusyMemory.String())
	}
	b = append(b, `,"instanceType":"invoker","tags":`...)
	b = appendStrings(b, i.Tags)
	b = append(b, `,"dedicatedNamespaces":`...)
	b = appendStrings(b, i.DedicatedNamespaces)
	if i.UniqueName != "" {
		b = append(b, `,"uniqueName":`...)
		b = appendString(b, i.UniqueName)
	}
	if i.DisplayedName != "" {
		b = append(b, `,"displayedName":`...)
		b = appendString(b, i.DisplayedName)
	}
	return append(b, '}')
}

func (t TransactionID) appendJSON(b []byte) []byte {
	if t.raw != nil {
		return append(b, t.raw...)
	}
	return append(b, t.canonical()...)
}

func (a Ack) appendJSON(b []byte) []byte {
	b = append(b, `{"transid":`...)
	b = a.TransID.appendJSON(b)
	if a.Kind == CompletionAck {
		b = append(b, `,"activationId":`...)
		b = appendString(b, string(a.ActivationID))
	} else {
		b = append(b, `,"response":`...)
		if a.Response.Activation != nil {
			b = a.Response.Activation.appendJSON(b)
		} else {
			b = appendString(b, string(a.Response.ID))
		}
	}
	if a.Kind != ResultAck {
		if a.IsSystemError != nil {
			b = append(b, `,"isSystemError":`...)
			b = appendBool(b, *a.IsSystemError)
		}
		b = append(b, `,"instance":`...)
		b = a.Instance.appendJSON(b)
	}
	return append(b, '}')
}
