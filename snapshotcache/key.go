package snapshotcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Level says where in a lineage a snapshot sits.
type Level uint8

const (
	// LevelRuntime is a runtime snapshot: the launcher of one kind, booted until it blocks for
	// its init line. It is the root of a lineage.
	LevelRuntime Level = 1
	// LevelFunction is a function snapshot: a runtime snapshot after /init of one action's code,
	// stored as the pages that differ from its parent.
	LevelFunction Level = 2
)

func (l Level) String() string {
	switch l {
	case LevelRuntime:
		return "runtime"
	case LevelFunction:
		return "function"
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// MaxKeyField bounds each field of a Key, in bytes.
const MaxKeyField = 1024

// Key names one snapshot. It is comparable and usable as a map key. Build keys with RuntimeKey or
// FunctionKey; the zero Key names nothing (it is the Parent of a root snapshot).
type Key struct {
	level   Level
	a, b, c string
}

// RuntimeKey names the runtime snapshot of an exec kind ("python:3.11") for one build of its
// runtime (for example a digest of the interpreter binary, its file tree and the launcher).
func RuntimeKey(kind, buildID string) Key {
	return Key{level: LevelRuntime, a: kind, b: buildID}
}

// FunctionKey names the function snapshot of one action document revision with one code digest
// (backend.Action's DocID, Revision and CodeDigest).
func FunctionKey(docID, revision, codeDigest string) Key {
	return Key{level: LevelFunction, a: docID, b: revision, c: codeDigest}
}

// Level is the key's lineage level; 0 for the zero Key.
func (k Key) Level() Level { return k.level }

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k == Key{} }

// Fields returns the key's fields: (kind, build id) for a runtime key, (docid, revision, code
// digest) for a function key.
func (k Key) Fields() []string {
	switch k.level {
	case LevelRuntime:
		return []string{k.a, k.b}
	case LevelFunction:
		return []string{k.a, k.b, k.c}
	}
	return nil
}

func (k Key) fieldNames() []string {
	if k.level == LevelRuntime {
		return []string{"kind", "build id"}
	}
	return []string{"docid", "revision", "code digest"}
}

// String is for logs: "runtime python:3.11@b1" or "function guest/hello@1-abc#sha256:…".
func (k Key) String() string {
	switch k.level {
	case LevelRuntime:
		return fmt.Sprintf("runtime %s@%s", k.a, k.b)
	case LevelFunction:
		return fmt.Sprintf("function %s@%s#%s", k.a, k.b, k.c)
	case 0:
		if k.IsZero() {
			return "none"
		}
	}
	return fmt.Sprintf("invalid key (level %d)", uint8(k.level))
}

// Validate reports, as an error wrapping ErrInvalid and naming the field, why k cannot name a
// snapshot: an unknown level, or a field that is empty, longer than MaxKeyField, not UTF-8 or
// holding a control character.
func (k Key) Validate() error {
	switch k.level {
	case LevelRuntime:
		if k.c != "" {
			return fmt.Errorf("snapshotcache: runtime key has a third field: %w", ErrInvalid)
		}
	case LevelFunction:
	default:
		return fmt.Errorf("snapshotcache: key level %d: not runtime or function: %w", uint8(k.level), ErrInvalid)
	}
	names := k.fieldNames()
	for i, f := range k.Fields() {
		switch {
		case f == "":
			return fmt.Errorf("snapshotcache: %s key: %s is empty: %w", k.level, names[i], ErrInvalid)
		case len(f) > MaxKeyField:
			return fmt.Errorf("snapshotcache: %s key: %s is %d bytes, more than %d: %w", k.level, names[i], len(f), MaxKeyField, ErrInvalid)
		case !utf8.ValidString(f):
			return fmt.Errorf("snapshotcache: %s key: %s is not UTF-8: %w", k.level, names[i], ErrInvalid)
		case strings.IndexFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
			return fmt.Errorf("snapshotcache: %s key: %s holds a control character: %w", k.level, names[i], ErrInvalid)
		}
	}
	return nil
}

// ID is the key's file-name-safe identity: the first 32 hex digits of the SHA-256 of its
// canonical encoding. Files of a snapshot are named by it.
func (k Key) ID() string {
	sum := sha256.Sum256(k.encode())
	return hex.EncodeToString(sum[:16])
}

// encode is the canonical binary form stored in records: the level byte, then each field as a
// uvarint length and its bytes. The zero Key encodes to nothing.
func (k Key) encode() []byte {
	if k.IsZero() {
		return nil
	}
	out := []byte{byte(k.level)}
	for _, f := range []string{k.a, k.b, k.c} {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// decodeKey parses encode's output; an empty input is the zero Key. The result is validated.
func decodeKey(b []byte) (Key, error) {
	if len(b) == 0 {
		return Key{}, nil
	}
	k := Key{level: Level(b[0])}
	b = b[1:]
	var fields [3]string
	for i := range fields {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return Key{}, fmt.Errorf("snapshotcache: key field %d: bad length: %w", i, ErrCorrupt)
		}
		fields[i] = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	if len(b) != 0 {
		return Key{}, fmt.Errorf("snapshotcache: key: %d trailing bytes: %w", len(b), ErrCorrupt)
	}
	k.a, k.b, k.c = fields[0], fields[1], fields[2]
	if err := k.Validate(); err != nil {
		return Key{}, fmt.Errorf("%w (%w)", err, ErrCorrupt)
	}
	return k, nil
}
