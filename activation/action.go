package activation

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Exec kinds that are not runtimes.
const (
	KindSequence = "sequence"
	KindBlackbox = "blackbox"
)

// AnnotationProvideAPIKey is the annotation that, when present and falsy, withholds the
// invoking identity's api key from the action.
const AnnotationProvideAPIKey = "provide-api-key"

// ActionDocument is an action as stored in the whisks database (protocol §5, user side §1.3).
type ActionDocument struct {
	ID         string // _id, "ns[/pkg]/name"
	Rev        string // _rev
	EntityType string // "action" (empty when the document did not say)
	Namespace  string
	Name       string
	Version    SemVer
	Publish    bool
	Updated    int64 // epoch milliseconds
	Exec       Exec
	Parameters Parameters
	Limits     ActionLimits
	// Annotations include "exec" and "provide-api-key".
	Annotations Parameters
	// Attachments is the CouchDB _attachments stub map, kept as read.
	Attachments map[string]json.RawMessage
}

// FullyQualifiedName is the action's name without version.
func (d *ActionDocument) FullyQualifiedName() FullyQualifiedEntityName {
	return FullyQualifiedEntityName{Path: d.Namespace, Name: d.Name}
}

// ProvideAPIKey applies the provide-api-key rule: the key is given to the action unless the
// annotation is present and falsy (an absent annotation provides the key).
func (d *ActionDocument) ProvideAPIKey() bool {
	return d.Annotations.IsTruthy(AnnotationProvideAPIKey, true)
}

// Exec is an action's executable part.
type Exec struct {
	// Kind is lower-cased on read and, when decoded against a manifest, "<family>:default"
	// is resolved to the family's default kind.
	Kind string
	// Code is nil when there is none (blackbox without code, sequence).
	Code *Code
	// Binary says the code is base64 text (plain string) or raw bytes (attachment) of a zip/jar.
	Binary bool
	// Main is the entry point, "" when not given (the runtimes then use "main").
	Main string
	// Image is the blackbox image "[registry/][prefix/]name[:tag]".
	Image string
	// Components are a sequence's actions.
	Components []FullyQualifiedEntityName

	legacyJar bool // code was read from "jar" (old Java documents)
}

// EntryPoint is Main or "main".
func (e Exec) EntryPoint() string {
	if e.Main != "" {
		return e.Main
	}
	return "main"
}

// CodeForm says where an action's code is.
type CodeForm int

// The forms of exec.code.
const (
	// CodePlain: exec.code is a plain JSON string (old documents, kinds without "attached").
	CodePlain CodeForm = iota + 1
	// CodeInline: an attachment object whose name is "mem:<base64url(bytes)>", stored in the document.
	CodeInline
	// CodeCouch: an attachment object whose name is "couch:<uuid>", a CouchDB attachment of the document.
	CodeCouch
	// CodeLegacyAttachment: an attachment object with a bare name ("jarfile", "codefile"), also a
	// CouchDB attachment of the document.
	CodeLegacyAttachment
)

// Code is exec.code: a plain string or an attachment reference.
type Code struct {
	Text       string      // the code, for CodePlain
	Attachment *Attachment // nil for CodePlain
}

// Attachment is an attachment reference {attachmentName, attachmentType, length?, digest?}.
type Attachment struct {
	Name   string `json:"attachmentName"`
	Type   string `json:"attachmentType"`
	Length *int64 `json:"length,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// Form says which kind of code reference c is.
func (c *Code) Form() CodeForm {
	switch {
	case c.Attachment == nil:
		return CodePlain
	case strings.HasPrefix(c.Attachment.Name, "mem:"):
		return CodeInline
	case strings.HasPrefix(c.Attachment.Name, "couch:"):
		return CodeCouch
	}
	return CodeLegacyAttachment
}

// AttachmentName is the CouchDB attachment to fetch (GET /<db>/<docid>/<name>) for CodeCouch
// and CodeLegacyAttachment; "" otherwise.
func (c *Code) AttachmentName() string {
	switch c.Form() {
	case CodeCouch:
		return strings.TrimPrefix(c.Attachment.Name, "couch:")
	case CodeLegacyAttachment:
		return c.Attachment.Name
	}
	return ""
}

// InlineBytes decodes a "mem:" attachment (base64url, padded or not).
func (c *Code) InlineBytes() ([]byte, error) {
	if c.Form() != CodeInline {
		return nil, fmt.Errorf("%w: code is not an inline attachment", ErrNotRunnable)
	}
	s := strings.TrimPrefix(c.Attachment.Name, "mem:")
	b, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawURLEncoding.DecodeString(s); err2 == nil {
			return b2, nil
		}
		return nil, fmt.Errorf("%w: inline attachment is not base64url: %v", ErrNotRunnable, err)
	}
	return b, nil
}

// MarshalJSON writes the string or the attachment object.
func (c Code) MarshalJSON() ([]byte, error) {
	if c.Attachment == nil {
		return Marshal(c.Text)
	}
	return Marshal(c.Attachment)
}

// ActionLimits are an action's limits: timeout (ms) and memory (MB) are required; logs (MB),
// concurrency and instances are optional and written only when they were given.
type ActionLimits struct {
	Timeout     int64
	Memory      int64
	Logs        *int64
	Concurrency *int64
	Instances   *int64
}

// LogsMB is the log limit in MB, or std when absent.
func (l ActionLimits) LogsMB(std int64) int64 {
	if l.Logs != nil {
		return *l.Logs
	}
	return std
}

// MaxConcurrent is the per-container concurrency, or std when absent.
func (l ActionLimits) MaxConcurrent(std int64) int64 {
	if l.Concurrency != nil {
		return *l.Concurrency
	}
	return std
}

// MarshalJSON writes the limits as stored.
func (l ActionLimits) MarshalJSON() ([]byte, error) {
	return Marshal(struct {
		Timeout     int64  `json:"timeout"`
		Memory      int64  `json:"memory"`
		Logs        *int64 `json:"logs,omitempty"`
		Concurrency *int64 `json:"concurrency,omitempty"`
		Instances   *int64 `json:"instances,omitempty"`
	}{l.Timeout, l.Memory, l.Logs, l.Concurrency, l.Instances})
}

// Annotation is the "limits" annotation of an activation record: every limit written, the
// optional ones with the system's standard values when the action has none.
func (l ActionLimits) Annotation(sys SystemLimits) json.RawMessage {
	logs, conc := l.LogsMB(sys.StdLogs), l.MaxConcurrent(sys.StdConcurrency)
	return mustJSON(ActionLimits{Timeout: l.Timeout, Memory: l.Memory, Logs: &logs, Concurrency: &conc, Instances: l.Instances})
}

// MarshalJSON writes exec in the form of its kind.
func (e Exec) MarshalJSON() ([]byte, error) {
	switch e.Kind {
	case KindSequence:
		comps := make([]string, len(e.Components))
		for i, c := range e.Components {
			comps[i] = c.QualifiedName()
		}
		return Marshal(struct {
			Kind       string   `json:"kind"`
			Components []string `json:"components"`
		}{e.Kind, comps})
	case KindBlackbox:
		return Marshal(struct {
			Kind   string `json:"kind"`
			Image  string `json:"image"`
			Binary bool   `json:"binary"`
			Code   *Code  `json:"code,omitempty"`
			Main   string `json:"main,omitempty"`
		}{e.Kind, e.Image, e.Binary, e.Code, e.Main})
	}
	var b bytes.Buffer
	b.WriteString(`{"kind":`)
	b.Write(mustJSON(e.Kind))
	key := "code"
	if e.legacyJar {
		key = "jar"
	}
	if e.Code != nil {
		b.WriteString(`,"` + key + `":`)
		b.Write(mustJSON(e.Code))
	}
	b.WriteString(`,"binary":`)
	b.Write(mustJSON(e.Binary))
	if e.Main != "" {
		b.WriteString(`,"main":`)
		b.Write(mustJSON(e.Main))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON writes the document.
func (d ActionDocument) MarshalJSON() ([]byte, error) {
	return Marshal(struct {
		ID          string                     `json:"_id,omitempty"`
		Rev         string                     `json:"_rev,omitempty"`
		EntityType  string                     `json:"entityType,omitempty"`
		Namespace   string                     `json:"namespace"`
		Name        string                     `json:"name"`
		Version     SemVer                     `json:"version"`
		Publish     bool                       `json:"publish"`
		Updated     int64                      `json:"updated"`
		Exec        Exec                       `json:"exec"`
		Parameters  Parameters                 `json:"parameters"`
		Limits      ActionLimits               `json:"limits"`
		Annotations Parameters                 `json:"annotations"`
		Attachments map[string]json.RawMessage `json:"_attachments,omitempty"`
	}{d.ID, d.Rev, d.EntityType, d.Namespace, d.Name, d.Version, d.Publish, d.Updated, d.Exec,
		d.Parameters, d.Limits, d.Annotations, d.Attachments})
}

var base64Pattern = regexp.MustCompile(`\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)\z`)

// IsBinaryCode is OpenWhisk's rule for plain-string code: non-empty base64 (length a multiple
// of 4) means a zip or jar.
func IsBinaryCode(code string) bool {
	t := strings.TrimSpace(code)
	return len(t) > 0 && len(t)%4 == 0 && base64Pattern.MatchString(t)
}

// DecodeAction reads an action document. With a manifest, exec.kind must be a known kind
// (or "<family>:default", resolved), "main" is required for kinds with requireMain, and code
// must have the form the kind stores; without one, only the document's own structure is
// checked. Errors are *FieldError wrapping ErrInvalidAction.
func DecodeAction(data []byte, m *Manifest) (*ActionDocument, error) {
	r := reader{doc: "action document", kind: ErrInvalidAction}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	d := &ActionDocument{}
	if d.ID, _, err = o.optString("_id"); err != nil {
		return nil, err
	}
	if d.Rev, _, err = o.optString("_rev"); err != nil {
		return nil, err
	}
	if d.EntityType, _, err = o.optString("entityType"); err != nil {
		return nil, err
	}
	if d.EntityType != "" && d.EntityType != "action" {
		return nil, r.fail("entityType", nil, "document type %s did not match expected type action", d.EntityType)
	}
	if d.Namespace, err = o.reqString("namespace"); err != nil {
		return nil, err
	}
	if d.Namespace, err = parseEntityPath(d.Namespace); err != nil {
		return nil, r.fail("namespace", nil, "%v", err)
	}
	if d.Name, err = o.reqString("name"); err != nil {
		return nil, err
	}
	if !ValidEntityName(d.Name) {
		return nil, r.fail("name", nil, "name %q does not match the entity name pattern", d.Name)
	}
	if d.Version, _, err = o.semver("version", true); err != nil {
		return nil, err
	}
	if d.Publish, err = o.reqBool("publish"); err != nil {
		return nil, err
	}
	if u, err := o.optInt("updated", math.MinInt64, math.MaxInt64); err != nil {
		return nil, err
	} else if u != nil {
		d.Updated = *u
	}
	eo, _, err := o.object("exec", true)
	if err != nil {
		return nil, err
	}
	if d.Exec, err = eo.exec(m); err != nil {
		return nil, err
	}
	if d.Parameters, err = o.parameters("parameters", true); err != nil {
		return nil, err
	}
	lo, _, err := o.object("limits", true)
	if err != nil {
		return nil, err
	}
	if d.Limits, err = lo.actionLimits(); err != nil {
		return nil, err
	}
	if d.Annotations, err = o.parameters("annotations", true); err != nil {
		return nil, err
	}
	if ao, ok, err := o.object("_attachments", false); err != nil {
		return nil, err
	} else if ok {
		d.Attachments = make(map[string]json.RawMessage, len(ao.m))
		for k, v := range ao.m {
			d.Attachments[k] = compact(v)
		}
	}
	return d, nil
}

func (o obj) actionLimits() (ActionLimits, error) {
	var l ActionLimits
	var err error
	if l.Timeout, err = o.reqInt("timeout", 0, math.MaxInt32); err != nil {
		return l, err
	}
	if l.Memory, err = o.reqInt("memory", 0, math.MaxInt32); err != nil {
		return l, err
	}
	if l.Logs, err = o.optInt("logs", 0, math.MaxInt32); err != nil {
		return l, err
	}
	if l.Concurrency, err = o.optInt("concurrency", 0, math.MaxInt32); err != nil {
		return l, err
	}
	if l.Instances, err = o.optInt("instances", 0, math.MaxInt32); err != nil {
		return l, err
	}
	return l, nil
}

var imagePattern = regexp.MustCompile(`\A[^\s]+\z`)

func (o obj) exec(m *Manifest) (Exec, error) {
	var e Exec
	kind, err := o.reqString("kind")
	if err != nil {
		return e, o.r.fail(o.field("kind"), nil, "'kind' must be a string defined in 'exec'")
	}
	e.Kind = strings.ToLower(strings.TrimSpace(kind))
	if e.Main, _, err = o.optString("main"); err != nil {
		return e, o.r.fail(o.field("main"), nil, "if defined, 'main' be a string in 'exec' for '%s' actions", e.Kind)
	}
	switch e.Kind {
	case KindSequence:
		items, _, err := o.array("components", true)
		if err != nil {
			if o.present("components") {
				return e, o.r.fail(o.field("components"), nil, "'components' must be an array")
			}
			return e, o.r.fail(o.field("components"), nil, "'components' must be defined for sequence kind")
		}
		for i, it := range items {
			f, err := o.r.fqNameValue(it, index(o.field("components"), i))
			if err != nil {
				return e, err
			}
			e.Components = append(e.Components, f)
		}
		return e, nil
	case KindBlackbox:
		img, ok, err := o.optString("image")
		if err != nil || !ok {
			return e, o.r.fail(o.field("image"), nil, "'image' must be a string defined in 'exec' for 'blackbox' actions")
		}
		if !imagePattern.MatchString(img) {
			return e, o.r.fail(o.field("image"), nil, "could not parse image name %.80q", img)
		}
		e.Image = img
		if v, ok := o.get("code"); ok {
			if jsonType(v) == "string" {
				var s string
				_ = json.Unmarshal(v, &s)
				if strings.TrimSpace(s) == "" {
					return e, nil
				}
			}
			if e.Code, e.Binary, err = o.code("code", v); err != nil {
				return e, err
			}
		}
		return e, nil
	}
	var rk *RuntimeKind
	if m != nil {
		k, ok := m.Resolve(e.Kind)
		if !ok {
			return e, o.r.fail(o.field("kind"), nil, "The specified runtime '%s' is not supported by this platform. Valid values are: '%s'.",
				e.Kind, strings.Join(append(m.Kinds(), KindSequence, KindBlackbox), "', '"))
		}
		e.Kind, rk = k.Kind, &k
	}
	key := "code"
	v, ok := o.get("code")
	if !ok {
		if v, ok = o.get("jar"); ok {
			key, e.legacyJar = "jar", true
		}
	}
	if !ok {
		return e, o.r.fail(o.field("code"), nil, "'code' must be a string or attachment object defined in 'exec' for '%s' actions", e.Kind)
	}
	if rk != nil && rk.Attached == nil && jsonType(v) != "string" {
		return e, o.r.fail(o.field(key), nil, "'code' must be a string defined in 'exec' for '%s' actions", e.Kind)
	}
	if e.Code, e.Binary, err = o.code(key, v); err != nil {
		return e, err
	}
	if rk != nil && rk.RequiresMain() && e.Main == "" {
		return e, o.r.fail(o.field("main"), nil, "'main' must be a string defined in 'exec' for '%s' actions", e.Kind)
	}
	return e, nil
}

// code reads a plain string (binary computed from its text) or an attachment object (binary
// from exec.binary).
func (o obj) code(key string, v json.RawMessage) (*Code, bool, error) {
	switch jsonType(v) {
	case "string":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, false, o.r.fail(o.field(key), err, "malformed string")
		}
		return &Code{Text: s}, IsBinaryCode(s), nil
	case "object":
		ao, err := o.r.parseObject(v, o.field(key))
		if err != nil {
			return nil, false, err
		}
		a := &Attachment{}
		if a.Name, err = ao.reqString("attachmentName"); err != nil {
			return nil, false, err
		}
		if a.Name == "" {
			return nil, false, o.r.fail(ao.field("attachmentName"), nil, "must not be empty")
		}
		if a.Type, err = ao.reqString("attachmentType"); err != nil {
			return nil, false, err
		}
		if a.Length, err = ao.optInt("length", 0, math.MaxInt64); err != nil {
			return nil, false, err
		}
		if a.Digest, _, err = ao.optString("digest"); err != nil {
			return nil, false, err
		}
		bin, _, err := o.boolean("binary", false)
		if err != nil {
			return nil, false, err
		}
		return &Code{Attachment: a}, bin, nil
	}
	return nil, false, o.r.fail(o.field(key), nil, "must be a string or an attachment object, got %s", jsonType(v))
}
