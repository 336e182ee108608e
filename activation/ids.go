package activation

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ActivationID is an activation's id: 32 lower-case hexadecimal characters (a random UUID
// without dashes). The zero value is "no id".
type ActivationID string

// ParseActivationID checks s with OpenWhisk's rules and the texts of its errors
// ("Activation id length is 31 but must be 32.", "The activation id is not valid.").
// Errors wrap ErrInvalidActivationID.
func ParseActivationID(s string) (ActivationID, error) {
	if len(s) != 32 {
		return "", fmt.Errorf("%w: Activation id length is %d but must be 32.", ErrInvalidActivationID, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: The activation id is not valid.", ErrInvalidActivationID)
		}
	}
	return ActivationID(s), nil
}

// NewActivationID returns a fresh random id.
func NewActivationID() ActivationID {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (it panics instead)
	return ActivationID(hex.EncodeToString(b[:]))
}

// String returns the id.
func (a ActivationID) String() string { return string(a) }

// decodeActivationID reads the JSON form: a string, or a JSON number whose decimal text has
// exactly 32 digits (read as text, never through float64, which would lose digits).
func decodeActivationID(raw []byte) (ActivationID, error) {
	switch jsonType(raw) {
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: malformed string", ErrInvalidActivationID)
		}
		return ParseActivationID(s)
	case "number":
		return ParseActivationID(string(bytes.TrimSpace(raw)))
	}
	return "", fmt.Errorf("%w: The activation id is not valid. (got %s)", ErrInvalidActivationID, jsonType(raw))
}

func (o obj) activationID(name string, required bool) (ActivationID, error) {
	v, ok := o.get(name)
	if !ok {
		if required {
			if o.present(name) {
				return "", o.r.fail(o.field(name), ErrInvalidActivationID, "must be an activation id, got null")
			}
			return "", o.missing(name)
		}
		return "", nil
	}
	id, err := decodeActivationID(v)
	if err != nil {
		return "", o.r.fail(o.field(name), err, "%v", err)
	}
	return id, nil
}

// TransactionID is OpenWhisk's transaction id as carried in every Kafka message: a JSON array
// [id, startMillis] optionally followed by true (extra logging) and/or a nested parent array.
//
// The raw JSON read from a message is kept and written back unchanged (compacted), because
// the controller recognises health-test completions by comparing transids. A badly shaped
// transid does not fail a read: it reads as id "sid_unknown" (Malformed set) and is still
// echoed as received.
type TransactionID struct {
	ID           string
	Start        int64 // epoch milliseconds
	ExtraLogging bool
	Parent       *TransactionID
	// Malformed is set when the raw value did not have a recognised shape.
	Malformed bool

	raw json.RawMessage
}

// UnknownTransactionID is the id given to malformed transids.
const UnknownTransactionID = "sid_unknown"

// NewTransactionID builds a transaction id (without raw form; it is written canonically).
func NewTransactionID(id string, startMillis int64) TransactionID {
	return TransactionID{ID: id, Start: startMillis}
}

// Raw returns the exact JSON this id was read from (nil if it was constructed).
func (t TransactionID) Raw() json.RawMessage { return t.raw }

// MarshalJSON writes the received form unchanged, or the canonical array.
func (t TransactionID) MarshalJSON() ([]byte, error) {
	if t.raw != nil {
		return t.raw, nil
	}
	return t.canonical(), nil
}

func (t TransactionID) canonical() []byte {
	var b bytes.Buffer
	idj, _ := Marshal(t.ID)
	b.WriteByte('[')
	b.Write(idj)
	b.WriteByte(',')
	b.WriteString(strconv.FormatInt(t.Start, 10))
	if t.ExtraLogging {
		b.WriteString(",true")
	}
	if t.Parent != nil {
		b.WriteByte(',')
		b.Write(t.Parent.canonical())
	}
	b.WriteByte(']')
	return b.Bytes()
}

// UnmarshalJSON reads any JSON value; only invalid JSON is an error (see the type comment).
func (t *TransactionID) UnmarshalJSON(raw []byte) error {
	if !json.Valid(raw) {
		return fmt.Errorf("transid: not valid JSON")
	}
	*t = parseTransactionID(raw, 0)
	t.raw = compact(raw)
	return nil
}

func parseTransactionID(raw []byte, depth int) TransactionID {
	unknown := TransactionID{ID: UnknownTransactionID, Malformed: true}
	if depth > 32 || jsonType(raw) != "array" {
		return unknown
	}
	items, err := splitArray(raw)
	if err != nil || len(items) < 2 || len(items) > 4 {
		return unknown
	}
	if jsonType(items[0]) != "string" || jsonType(items[1]) != "number" {
		return unknown
	}
	var t TransactionID
	if t.ID, err = unquote(items[0]); err != nil {
		return unknown
	}
	start, err := parseWhole(items[1])
	if err != nil {
		// Scala takes the integral part of any number; fractions are not worth more than that.
		f, ferr := strconv.ParseFloat(string(bytes.TrimSpace(items[1])), 64)
		if ferr != nil || f > 9.2e18 || f < -9.2e18 {
			return unknown
		}
		start = int64(f)
	}
	t.Start = start
	rest := items[2:]
	if len(rest) > 0 && jsonType(rest[0]) == "boolean" {
		t.ExtraLogging = string(bytes.TrimSpace(rest[0])) == "true"
		rest = rest[1:]
	}
	switch len(rest) {
	case 0:
	case 1:
		// The parent is read leniently, as upstream does: a bad parent is simply absent.
		if p := parseTransactionID(rest[0], depth+1); !p.Malformed {
			t.Parent = &p
		}
	default:
		return unknown
	}
	return t
}

// entityNamePattern is OpenWhisk's EntityName.REGEX: a word character, or a word character,
// up to 254 of [\w@ .&-], and a final [\w@.&-].
var entityNamePattern = regexp.MustCompile(`\A(?:\w|\w[\w@ .&-]{0,254}[\w@.&-])\z`)

// ValidEntityName reports whether s is a legal entity name (namespace, package or action).
func ValidEntityName(s string) bool { return entityNamePattern.MatchString(s) }

// parseEntityPath validates a path "ns" or "ns/pkg" (empty segments are dropped, as upstream)
// and returns it normalised.
func parseEntityPath(s string) (string, error) {
	var parts []string
	for _, p := range strings.Split(s, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("path is empty")
	}
	for _, p := range parts {
		if !ValidEntityName(p) {
			return "", fmt.Errorf("path contains the invalid part %q", p)
		}
	}
	return strings.Join(parts, "/"), nil
}

// SemVer is an entity version major.minor.patch. 0.0.0 and negative parts are invalid.
type SemVer struct{ Major, Minor, Patch int }

// ParseSemVer reads "1", "1.2" or "1.2.3" (missing parts are 0, parts after the third are
// ignored, as upstream).
func ParseSemVer(s string) (SemVer, error) {
	var v SemVer
	if s == "" {
		return v, fmt.Errorf("bad semantic version %q", s)
	}
	parts := strings.Split(s, ".")
	dst := []*int{&v.Major, &v.Minor, &v.Patch}
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 || n > 1<<31-1 {
			return SemVer{}, fmt.Errorf("bad semantic version %q", s)
		}
		*dst[i] = n
	}
	if v == (SemVer{}) {
		return SemVer{}, fmt.Errorf("bad semantic version %s: all-zero versions are not allowed", s)
	}
	return v, nil
}

// DefaultVersion is SemVer() upstream: 0.0.1.
var DefaultVersion = SemVer{0, 0, 1}

func (v SemVer) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// IsZero reports whether v is unset.
func (v SemVer) IsZero() bool { return v == SemVer{} }

// MarshalJSON writes the version string.
func (v SemVer) MarshalJSON() ([]byte, error) { return Marshal(v.String()) }

func (o obj) semver(name string, required bool) (SemVer, bool, error) {
	s, ok, err := o.str(name, required)
	if err != nil || !ok {
		return SemVer{}, false, err
	}
	v, err := ParseSemVer(s)
	if err != nil {
		return SemVer{}, false, o.r.fail(o.field(name), nil, "%v", err)
	}
	return v, true, nil
}

// FullyQualifiedEntityName names an action as the controller sends it: path ("ns" or
// "ns/pkg"), name, optional version and, when invoked through a package binding, the binding.
type FullyQualifiedEntityName struct {
	Path    string
	Name    string
	Version *SemVer
	Binding string // empty when not invoked through a binding
}

// String is the name without version, "ns[/pkg]/name": the document id and the "path" annotation.
func (f FullyQualifiedEntityName) String() string { return f.Path + "/" + f.Name }

// DocID is the action document's _id.
func (f FullyQualifiedEntityName) DocID() string { return f.String() }

// QualifiedName is "/ns[/pkg]/name", the form of __OW_ACTION_NAME and sequence components.
func (f FullyQualifiedEntityName) QualifiedName() string { return "/" + f.String() }

// Namespace is the first path segment.
func (f FullyQualifiedEntityName) Namespace() string {
	ns, _, _ := strings.Cut(f.Path, "/")
	return ns
}

// MarshalJSON writes the object form; version and binding only when set.
func (f FullyQualifiedEntityName) MarshalJSON() ([]byte, error) {
	type wire struct {
		Path    string  `json:"path"`
		Name    string  `json:"name"`
		Version *SemVer `json:"version,omitempty"`
		Binding string  `json:"binding,omitempty"`
	}
	return Marshal(wire{f.Path, f.Name, f.Version, f.Binding})
}

// parseQualifiedName reads "ns/pkg/name" or "/ns/name": at least two segments, the last is the name.
func parseQualifiedName(s string) (FullyQualifiedEntityName, error) {
	p, err := parseEntityPath(s)
	if err != nil {
		return FullyQualifiedEntityName{}, err
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return FullyQualifiedEntityName{}, fmt.Errorf("The fully qualified name of the entity must contain at least the namespace and the name of the entity.")
	}
	return FullyQualifiedEntityName{Path: p[:i], Name: p[i+1:]}, nil
}

func (o obj) fqName(name string) (FullyQualifiedEntityName, error) {
	v, ok := o.get(name)
	if !ok {
		return FullyQualifiedEntityName{}, o.missing(name)
	}
	return o.r.fqNameValue(v, o.field(name))
}

// fqNameValue reads a FullyQualifiedEntityName at field: an object {path, name[, version]
// [, binding]} or a string "ns[/pkg]/name".
func (r reader) fqNameValue(v json.RawMessage, field string) (FullyQualifiedEntityName, error) {
	switch jsonType(v) {
	case "string":
		var s string
		_ = json.Unmarshal(v, &s)
		f, err := parseQualifiedName(s)
		if err != nil {
			return f, r.fail(field, nil, "%v", err)
		}
		return f, nil
	case "object":
	default:
		return FullyQualifiedEntityName{}, r.fail(field, nil, "must be an object {path, name[, version][, binding]} or a string \"ns/name\", got %s", jsonType(v))
	}
	a, err := r.parseObject(v, field)
	if err != nil {
		return FullyQualifiedEntityName{}, err
	}
	var f FullyQualifiedEntityName
	path, err := a.reqString("path")
	if err != nil {
		return f, err
	}
	if f.Path, err = parseEntityPath(path); err != nil {
		return f, r.fail(a.field("path"), nil, "%v", err)
	}
	if f.Name, err = a.reqString("name"); err != nil {
		return f, err
	}
	if !ValidEntityName(f.Name) {
		return f, r.fail(a.field("name"), nil, "name %q does not match the entity name pattern (word characters, then [\\w@ .&-], ending in [\\w@.&-])", f.Name)
	}
	if v, ok, err := a.semver("version", false); err != nil {
		return f, err
	} else if ok {
		f.Version = &v
	}
	b, ok, err := a.optString("binding")
	if err != nil {
		return f, err
	}
	if ok {
		if f.Binding, err = parseEntityPath(b); err != nil {
			return f, r.fail(a.field("binding"), nil, "%v", err)
		}
	}
	return f, nil
}

// ControllerInstanceID names the controller that sent a message; acks go to topic
// "completed" + AsString.
type ControllerInstanceID struct {
	AsString string
}

var controllerIDPattern = regexp.MustCompile(`\A[a-zA-Z0-9._-]+\z`)

// Topic is the ack topic (without the deployment's topic prefix).
func (c ControllerInstanceID) Topic() string { return "completed" + c.AsString }

// MarshalJSON writes {"asString":…, "instanceType":"controller"}.
func (c ControllerInstanceID) MarshalJSON() ([]byte, error) {
	return Marshal(struct {
		AsString     string `json:"asString"`
		InstanceType string `json:"instanceType"`
	}{c.AsString, "controller"})
}

func (o obj) controllerID(name string) (ControllerInstanceID, error) {
	c, _, err := o.object(name, true)
	if err != nil {
		return ControllerInstanceID{}, err
	}
	s, err := c.reqString("asString")
	if err != nil {
		return ControllerInstanceID{}, err
	}
	if len(s) > 128 || !controllerIDPattern.MatchString(s) {
		return ControllerInstanceID{}, o.r.fail(c.field("asString"), nil,
			"controller instance id %q must match [a-zA-Z0-9._-]+ and have at most 128 characters (it becomes a Kafka topic name)", s)
	}
	t, ok, err := c.optString("instanceType")
	if err != nil {
		return ControllerInstanceID{}, err
	}
	if ok && t != "controller" {
		return ControllerInstanceID{}, o.r.fail(c.field("instanceType"), nil, "must be \"controller\", got %q", t)
	}
	return ControllerInstanceID{AsString: s}, nil
}
