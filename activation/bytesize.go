package activation

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// SizeUnit is the unit a ByteSize was written with. OpenWhisk keeps the unit: "1024 MB" is
// printed back as "1024 MB", "2147483648 B" as "2147483648 B".
type SizeUnit int

// The units of a ByteSize, with their multipliers (binary: 1 KB = 1024 B).
const (
	Bytes SizeUnit = iota
	KB
	MB
	GB
)

func (u SizeUnit) String() string {
	switch u {
	case KB:
		return "KB"
	case MB:
		return "MB"
	case GB:
		return "GB"
	}
	return "B"
}

func (u SizeUnit) factor() int64 {
	switch u {
	case KB:
		return 1 << 10
	case MB:
		return 1 << 20
	case GB:
		return 1 << 30
	}
	return 1
}

// ByteSize is a size with its unit, as in InvokerInstanceId.userMemory, stem cell memory and
// the UserLimits size fields. Its JSON form is the string "<n> <unit>".
type ByteSize struct {
	Size int64
	Unit SizeUnit
}

// SizeBytes is n bytes.
func SizeBytes(n int64) ByteSize { return ByteSize{n, Bytes} }

// SizeMB is n megabytes.
func SizeMB(n int64) ByteSize { return ByteSize{n, MB} }

// Bytes is the size in bytes.
func (b ByteSize) Bytes() int64 { return b.Size * b.Unit.factor() }

// MB is the size in whole megabytes (rounded down).
func (b ByteSize) MB() int64 { return b.Bytes() >> 20 }

// String is the wire form: "2147483648 B", "1024 MB".
func (b ByteSize) String() string { return strconv.FormatInt(b.Size, 10) + " " + b.Unit.String() }

// byteSizePattern is upstream's `\s?(\d+)\s?(MB|KB|B|M|K|GB|G)\s?`, case-insensitive, whole string.
var byteSizePattern = regexp.MustCompile(`(?i)\A\s?(\d+)\s?(MB|KB|B|M|K|GB|G)\s?\z`)

// ParseByteSize reads "<digits>[ ]<unit>" with unit B, K, KB, M, MB, G or GB in any case.
// Errors wrap ErrInvalidByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	m := byteSizePattern.FindStringSubmatch(s)
	if m == nil {
		return ByteSize{}, fmt.Errorf("%w: %.64q: Size Unit not supported. Only \"B\", \"K[B]\", \"M[B]\" and \"G[B]\" are supported.", ErrInvalidByteSize, s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return ByteSize{}, fmt.Errorf("%w: %.64q: number out of range", ErrInvalidByteSize, s)
	}
	var u SizeUnit
	switch strings.ToUpper(m[2]) {
	case "B":
		u = Bytes
	case "K", "KB":
		u = KB
	case "M", "MB":
		u = MB
	case "G", "GB":
		u = GB
	}
	if n > math.MaxInt64/u.factor() {
		return ByteSize{}, fmt.Errorf("%w: %.64q: more than 2^63 bytes", ErrInvalidByteSize, s)
	}
	return ByteSize{n, u}, nil
}

// MarshalJSON writes the string form.
func (b ByteSize) MarshalJSON() ([]byte, error) { return Marshal(b.String()) }

// UnmarshalJSON reads the string form.
func (b *ByteSize) UnmarshalJSON(raw []byte) error {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("%w: must be a string such as \"2147483648 B\"", ErrInvalidByteSize)
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (o obj) byteSize(name string, required bool) (ByteSize, bool, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return ByteSize{}, false, o.missing(name)
		}
		return ByteSize{}, false, nil
	}
	if jsonType(v) != "string" {
		return ByteSize{}, false, o.r.fail(o.field(name), ErrInvalidByteSize, "must be a ByteSize string such as \"2147483648 B\", got %s", jsonType(v))
	}
	var b ByteSize
	if err := b.UnmarshalJSON(v); err != nil {
		return ByteSize{}, false, o.r.fail(o.field(name), err, "%v", err)
	}
	return b, true, nil
}
