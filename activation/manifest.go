package activation

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Manifest is the runtimes manifest (RUNTIMES_MANIFEST, protocol §8). Only "runtimes" and
// "blackboxes" are read; other members are ignored. A Manifest returned by DecodeManifest
// has been validated; its methods never fail.
type Manifest struct {
	// Families maps a family name ("nodejs") to its kinds, in manifest order.
	Families   map[string][]RuntimeKind
	Blackboxes []ImageName

	byKind   map[string]*RuntimeKind
	defaults map[string]string // family -> default kind
}

// RuntimeKind is one runtime of a family.
type RuntimeKind struct {
	Kind            string
	Image           ImageName
	Default         *bool
	Deprecated      *bool
	Attached        *AttachedSpec
	RequireMain     *bool
	SentinelledLogs *bool
	StemCells       []StemCell
}

// IsDefault, IsDeprecated, RequiresMain and Sentinelled read the optional flags with their defaults.
func (k RuntimeKind) IsDefault() bool { return k.Default != nil && *k.Default }

// IsDeprecated reports deprecated: true.
func (k RuntimeKind) IsDeprecated() bool { return k.Deprecated != nil && *k.Deprecated }

// RequiresMain reports requireMain: true (exec.main is then mandatory).
func (k RuntimeKind) RequiresMain() bool { return k.RequireMain != nil && *k.RequireMain }

// Sentinelled reports whether the runtime prints log sentinels (default true).
func (k RuntimeKind) Sentinelled() bool { return k.SentinelledLogs == nil || *k.SentinelledLogs }

// AttachedSpec says the kind's code is stored as an attachment.
type AttachedSpec struct {
	AttachmentName string `json:"attachmentName"`
	AttachmentType string `json:"attachmentType"`
}

// ImageName is a container image reference split the way the manifest writes it.
type ImageName struct {
	Registry string `json:"registry,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Name     string `json:"name"`
	Tag      string `json:"tag,omitempty"`
}

// String is "[registry/][prefix/]name[:tag]".
func (i ImageName) String() string {
	var b strings.Builder
	if i.Registry != "" {
		b.WriteString(i.Registry + "/")
	}
	if i.Prefix != "" {
		b.WriteString(i.Prefix + "/")
	}
	b.WriteString(i.Name)
	if i.Tag != "" {
		b.WriteString(":" + i.Tag)
	}
	return b.String()
}

// StemCell is a prewarm configuration: Count containers of Memory, optionally reactive.
type StemCell struct {
	Count    int
	Memory   ByteSize
	Reactive *ReactiveConfig
	// countKey is the member name it was read from ("initialCount" or its alias "count").
	countKey string
}

// MarshalJSON writes the stem cell, keeping the count's member name as read.
func (s StemCell) MarshalJSON() ([]byte, error) {
	m := map[string]any{"memory": s.Memory}
	key := s.countKey
	if key == "" {
		key = "initialCount"
	}
	m[key] = s.Count
	if s.Reactive != nil {
		m["reactive"] = s.Reactive
	}
	return Marshal(m)
}

// ReactiveConfig adjusts a stem cell's count to recent cold starts (protocol §7).
type ReactiveConfig struct {
	MinCount  int
	MaxCount  int
	TTL       time.Duration
	Threshold int
	Increment int
	ttlText   string
}

// MarshalJSON writes the config; ttl keeps its text ("2 minutes").
func (c ReactiveConfig) MarshalJSON() ([]byte, error) {
	ttl := c.ttlText
	if ttl == "" {
		ttl = strconv.FormatInt(c.TTL.Milliseconds(), 10) + " milliseconds"
	}
	return Marshal(struct {
		MinCount  int    `json:"minCount"`
		MaxCount  int    `json:"maxCount"`
		TTL       string `json:"ttl"`
		Threshold int    `json:"threshold"`
		Increment int    `json:"increment"`
	}{c.MinCount, c.MaxCount, ttl, c.Threshold, c.Increment})
}

// MarshalJSON writes one kind; optional flags only when they were given.
func (k RuntimeKind) MarshalJSON() ([]byte, error) {
	return Marshal(struct {
		Kind            string        `json:"kind"`
		Default         *bool         `json:"default,omitempty"`
		Image           ImageName     `json:"image"`
		Deprecated      *bool         `json:"deprecated,omitempty"`
		Attached        *AttachedSpec `json:"attached,omitempty"`
		RequireMain     *bool         `json:"requireMain,omitempty"`
		SentinelledLogs *bool         `json:"sentinelledLogs,omitempty"`
		StemCells       []StemCell    `json:"stemCells,omitempty"`
	}{k.Kind, k.Default, k.Image, k.Deprecated, k.Attached, k.RequireMain, k.SentinelledLogs, k.StemCells})
}

// MarshalJSON writes {"runtimes": …, "blackboxes": …}.
func (m *Manifest) MarshalJSON() ([]byte, error) {
	bb := m.Blackboxes
	if bb == nil {
		bb = []ImageName{}
	}
	return Marshal(struct {
		Runtimes   map[string][]RuntimeKind `json:"runtimes"`
		Blackboxes []ImageName              `json:"blackboxes"`
	}{m.Families, bb})
}

// Resolve returns the runtime for kind; "<family>:default" resolves to the family's default.
// Kinds are compared lower-cased, as exec.kind is read.
func (m *Manifest) Resolve(kind string) (RuntimeKind, bool) {
	kind = strings.ToLower(strings.TrimSpace(kind))
	if fam, ok := strings.CutSuffix(kind, ":default"); ok && defaultFamilyPattern.MatchString(fam) {
		k, ok := m.defaults[fam]
		if !ok {
			return RuntimeKind{}, false
		}
		kind = k
	}
	k, ok := m.byKind[strings.ToLower(kind)]
	if !ok {
		return RuntimeKind{}, false
	}
	return *k, true
}

var defaultFamilyPattern = regexp.MustCompile(`\A[a-z0-9]+\z`)

// DefaultKind returns the default kind of a family.
func (m *Manifest) DefaultKind(family string) (string, bool) {
	k, ok := m.defaults[strings.ToLower(family)]
	return k, ok
}

// Kinds lists every kind as the manifest writes it, sorted.
func (m *Manifest) Kinds() []string {
	out := make([]string, 0, len(m.byKind))
	for _, k := range m.byKind {
		out = append(out, k.Kind)
	}
	sort.Strings(out)
	return out
}

// StemCellSpec is one stem cell with the kind it prewarms.
type StemCellSpec struct {
	Kind string
	StemCell
}

// StemCells lists every stem cell, ordered by kind.
func (m *Manifest) StemCells() []StemCellSpec {
	var out []StemCellSpec
	for _, k := range m.Kinds() {
		for _, s := range m.byKind[strings.ToLower(k)].StemCells {
			out = append(out, StemCellSpec{Kind: k, StemCell: s})
		}
	}
	return out
}

// IsNativeBlackbox reports whether image (resolved form "[registry/][prefix/]name[:tag]") is
// listed in blackboxes: such images are not pulled and print log sentinels.
func (m *Manifest) IsNativeBlackbox(image string) bool {
	for _, b := range m.Blackboxes {
		if b.String() == image {
			return true
		}
	}
	return false
}

// DecodeManifest reads and validates a runtimes manifest: every kind needs kind and image.name;
// a family with more than one kind needs exactly one default; kinds are unique; stem cells need
// a positive initialCount (alias count) and a memory ByteSize; reactive needs
// 0 ≤ minCount ≤ maxCount, maxCount > 0, ttl > 0, threshold > 0 and 0 < increment ≤ maxCount.
// Errors are *FieldError wrapping ErrInvalidManifest.
func DecodeManifest(data []byte) (*Manifest, error) {
	r := reader{doc: "runtimes manifest", kind: ErrInvalidManifest}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	m := &Manifest{Families: map[string][]RuntimeKind{}, byKind: map[string]*RuntimeKind{}, defaults: map[string]string{}}
	rt, ok, err := o.object("runtimes", false)
	if err != nil {
		return nil, err
	}
	if ok {
		for _, fam := range sortedKeys(rt.m) {
			items, _, err := rt.array(fam, true)
			if err != nil {
				return nil, err
			}
			kinds := make([]RuntimeKind, 0, len(items))
			for i, it := range items {
				ko, err := r.parseObject(it, index(rt.field(fam), i))
				if err != nil {
					return nil, err
				}
				k, err := ko.runtimeKind()
				if err != nil {
					return nil, err
				}
				kinds = append(kinds, k)
			}
			m.Families[fam] = kinds
		}
		for _, fam := range sortedKeys(m.Families) {
			kinds := m.Families[fam]
			var defs []string
			for i := range kinds {
				k := &kinds[i]
				// Actions' kinds are lower-cased when read, so kinds are looked up lower-cased.
				key := strings.ToLower(k.Kind)
				if _, dup := m.byKind[key]; dup {
					return nil, r.fail(index(rt.field(fam), i)+".kind", nil, "kind %q is defined more than once", k.Kind)
				}
				m.byKind[key] = k
				if k.IsDefault() {
					defs = append(defs, k.Kind)
				}
			}
			switch {
			case len(defs) == 1:
				m.defaults[strings.ToLower(fam)] = defs[0]
			case len(defs) == 0 && len(kinds) == 1:
				m.defaults[strings.ToLower(fam)] = kinds[0].Kind
			case len(defs) == 0 && len(kinds) > 1:
				return nil, r.fail(rt.field(fam), nil, "%s has multiple versions, but no default.", fam)
			case len(defs) > 1:
				return nil, r.fail(rt.field(fam), nil, "Found more than one default for %s: %s.", fam, strings.Join(defs, ","))
			}
		}
	}
	bb, ok, err := o.array("blackboxes", false)
	if err != nil {
		return nil, err
	}
	if ok {
		for i, it := range bb {
			io, err := r.parseObject(it, index("blackboxes", i))
			if err != nil {
				return nil, err
			}
			img, err := io.imageName()
			if err != nil {
				return nil, err
			}
			m.Blackboxes = append(m.Blackboxes, img)
		}
	}
	return m, nil
}

func (o obj) imageName() (ImageName, error) {
	var img ImageName
	var err error
	if img.Name, err = o.reqString("name"); err != nil {
		return img, err
	}
	if img.Name == "" {
		return img, o.r.fail(o.field("name"), nil, "must not be empty")
	}
	for _, f := range []struct {
		n string
		d *string
	}{{"registry", &img.Registry}, {"prefix", &img.Prefix}, {"tag", &img.Tag}} {
		if *f.d, _, err = o.optString(f.n); err != nil {
			return img, err
		}
	}
	return img, nil
}

func (o obj) runtimeKind() (RuntimeKind, error) {
	var k RuntimeKind
	var err error
	if k.Kind, err = o.reqString("kind"); err != nil {
		return k, err
	}
	if k.Kind == "" || k.Kind == "blackbox" || k.Kind == "sequence" {
		return k, o.r.fail(o.field("kind"), nil, "%q cannot be a runtime kind", k.Kind)
	}
	io, _, err := o.object("image", true)
	if err != nil {
		return k, err
	}
	if k.Image, err = io.imageName(); err != nil {
		return k, err
	}
	for _, f := range []struct {
		n string
		d **bool
	}{{"default", &k.Default}, {"deprecated", &k.Deprecated}, {"requireMain", &k.RequireMain}, {"sentinelledLogs", &k.SentinelledLogs}} {
		if *f.d, err = o.optBool(f.n); err != nil {
			return k, err
		}
	}
	if ao, ok, err := o.object("attached", false); err != nil {
		return k, err
	} else if ok {
		a := &AttachedSpec{}
		if a.AttachmentName, err = ao.reqString("attachmentName"); err != nil {
			return k, err
		}
		if a.AttachmentType, err = ao.reqString("attachmentType"); err != nil {
			return k, err
		}
		k.Attached = a
	}
	cells, ok, err := o.array("stemCells", false)
	if err != nil || !ok {
		return k, err
	}
	for i, c := range cells {
		co, err := o.r.parseObject(c, index(o.field("stemCells"), i))
		if err != nil {
			return k, err
		}
		s, err := co.stemCell()
		if err != nil {
			return k, err
		}
		k.StemCells = append(k.StemCells, s)
	}
	return k, nil
}

func (o obj) stemCell() (StemCell, error) {
	var s StemCell
	s.countKey = "initialCount"
	if !o.present("initialCount") && o.present("count") {
		s.countKey = "count"
	}
	n, ok, err := o.integer(s.countKey, false, math.MinInt32, math.MaxInt32)
	if err != nil {
		return s, err
	}
	mem, memOK, err := o.byteSize("memory", false)
	if err != nil {
		return s, err
	}
	switch {
	case !ok && !memOK:
		return s, o.r.fail(o.path, nil, "both initialCount and memory are required")
	case !ok:
		return s, o.r.fail(o.field("initialCount"), nil, "initialCount is required, just provide memory: %s", mem)
	case !memOK:
		return s, o.r.fail(o.field("memory"), nil, "memory is required, just provide initialCount: %d", n)
	}
	if n <= 0 {
		return s, o.r.fail(o.field(s.countKey), nil, "initialCount must be positive, got %d", n)
	}
	s.Count, s.Memory = int(n), mem
	ro, ok, err := o.object("reactive", false)
	if err != nil || !ok {
		return s, err
	}
	var c ReactiveConfig
	ints := []struct {
		n string
		d *int
	}{{"minCount", &c.MinCount}, {"maxCount", &c.MaxCount}, {"threshold", &c.Threshold}, {"increment", &c.Increment}}
	for _, f := range ints {
		v, err := ro.reqInt(f.n, math.MinInt32, math.MaxInt32)
		if err != nil {
			return s, err
		}
		*f.d = int(v)
	}
	if c.ttlText, err = ro.reqString("ttl"); err != nil {
		return s, err
	}
	if c.TTL, err = ParseScalaDuration(c.ttlText); err != nil {
		return s, o.r.fail(ro.field("ttl"), nil, "%v", err)
	}
	switch {
	case c.MinCount < 0 || c.MinCount > c.MaxCount:
		return s, o.r.fail(ro.field("minCount"), nil, "minCount %d must be at least 0 and at most maxCount %d", c.MinCount, c.MaxCount)
	case c.MaxCount <= 0:
		return s, o.r.fail(ro.field("maxCount"), nil, "maxCount must be positive")
	case c.TTL <= 0:
		return s, o.r.fail(ro.field("ttl"), nil, "ttl must be positive")
	case c.Threshold <= 0:
		return s, o.r.fail(ro.field("threshold"), nil, "threshold must be positive")
	case c.Increment <= 0 || c.Increment > c.MaxCount:
		return s, o.r.fail(ro.field("increment"), nil, "increment must be positive and less than or equal to maxCount")
	}
	s.Reactive = &c
	return s, nil
}

var scalaDurationPattern = regexp.MustCompile(`\A\s*(\d+)\s*([a-zA-Z]+)\s*\z`)

// ParseScalaDuration reads a Scala duration string such as "2 minutes", "30s", "500 ms",
// "1 hour", "10 days" (the manifest's reactive ttl).
func ParseScalaDuration(s string) (time.Duration, error) {
	m := scalaDurationPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("duration %.40q is not \"<number> <unit>\"", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("duration %.40q: number out of range", s)
	}
	var unit time.Duration
	switch strings.ToLower(m[2]) {
	case "d", "day", "days":
		unit = 24 * time.Hour
	case "h", "hour", "hours":
		unit = time.Hour
	case "min", "mins", "minute", "minutes", "m":
		unit = time.Minute
	case "s", "sec", "secs", "second", "seconds":
		unit = time.Second
	case "ms", "milli", "millis", "millisecond", "milliseconds":
		unit = time.Millisecond
	case "µs", "us", "micro", "micros", "microsecond", "microseconds":
		unit = time.Microsecond
	case "ns", "nano", "nanos", "nanosecond", "nanoseconds":
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("duration %.40q: unknown unit (use milliseconds, seconds, minutes, hours or days)", s)
	}
	if n > int64(math.MaxInt64/unit) {
		return 0, fmt.Errorf("duration %.40q is too long", s)
	}
	return time.Duration(n) * unit, nil
}
