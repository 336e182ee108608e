package activation

import (
	"encoding/json"
	"math"
	"sort"
	"strings"
)

// MaxActivationLimit is MAX_ACTIVATION_LIMIT: payload.max (1 MiB) + serdes overhead (6068 B).
// It is the topics' max.message.bytes and the producer's max.request.size.
const MaxActivationLimit = 1048576 + 6068

// ActivationMessage is what the controller publishes on invoker<N> (protocol §2).
type ActivationMessage struct {
	TransID  TransactionID
	Action   FullyQualifiedEntityName
	Revision string // CouchDB _rev of the action document; "" is JSON null (health action)
	User     Identity
	// ActivationID is always written as a string, even if it was read from a JSON number.
	ActivationID        ActivationID
	RootControllerIndex ControllerInstanceID
	Blocking            bool
	// Content is the merged parameters: a JSON object, a JSON array (sequence components) or,
	// accepted but not runnable, a scalar; nil when absent or null.
	Content json.RawMessage
	// InitArgs names the parameters passed to /init as environment instead of to /run.
	InitArgs []string
	// LockedArgs maps an encrypted parameter name in Content to its scheme ("aes-128", "aes-256").
	LockedArgs map[string]string
	// Cause is set when the activation is a sequence or conductor component.
	Cause        ActivationID
	TraceContext map[string]string // nil when absent
}

// CausedBySequence reports whether the activation is a component of a sequence.
func (m *ActivationMessage) CausedBySequence() bool { return m.Cause != "" }

// Identity is the invoking subject (protocol §2 `user`).
type Identity struct {
	Subject   string
	Namespace Namespace
	// AuthKey holds the authkey object's members as raw JSON, e.g. {"api_key": "uuid:key"}.
	// Each member becomes one __OW_<KEY> variable unless the action withholds its key.
	AuthKey map[string]json.RawMessage
	Rights  []string
	Limits  UserLimits
}

// APIKey returns authkey.api_key when it is a string.
func (id Identity) APIKey() string {
	var s string
	if v, ok := id.AuthKey["api_key"]; ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

// Namespace is the invoking namespace and its uuid (the user events' userId).
type Namespace struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

// Rights an identity may hold.
var knownRights = map[string]bool{"READ": true, "PUT": true, "DELETE": true, "ACTIVATE": true, "REJECT": true}

// UserLimits are per-namespace overrides (protocol §2); nil means "use the system default".
// Memory and log sizes are megabytes, timeouts milliseconds.
type UserLimits struct {
	InvocationsPerMinute          *int64    `json:"invocationsPerMinute,omitempty"`
	ConcurrentInvocations         *int64    `json:"concurrentInvocations,omitempty"`
	FiresPerMinute                *int64    `json:"firesPerMinute,omitempty"`
	AllowedKinds                  []string  `json:"allowedKinds,omitempty"`
	StoreActivations              *bool     `json:"storeActivations,omitempty"`
	MinActionMemory               *int64    `json:"minActionMemory,omitempty"`
	MaxActionMemory               *int64    `json:"maxActionMemory,omitempty"`
	MinActionLogs                 *int64    `json:"minActionLogs,omitempty"`
	MaxActionLogs                 *int64    `json:"maxActionLogs,omitempty"`
	MinActionTimeout              *int64    `json:"minActionTimeout,omitempty"`
	MaxActionTimeout              *int64    `json:"maxActionTimeout,omitempty"`
	MinActionConcurrency          *int64    `json:"minActionConcurrency,omitempty"`
	MaxActionConcurrency          *int64    `json:"maxActionConcurrency,omitempty"`
	MaxParameterSize              *ByteSize `json:"maxParameterSize,omitempty"`
	MaxPayloadSize                *ByteSize `json:"maxPayloadSize,omitempty"`
	TruncationSize                *ByteSize `json:"truncationSize,omitempty"`
	WarmedContainerKeepingCount   *int64    `json:"warmedContainerKeepingCount,omitempty"`
	WarmedContainerKeepingTimeout *string   `json:"warmedContainerKeepingTimeout,omitempty"`
	MaxActionInstances            *int64    `json:"maxActionInstances,omitempty"`
}

// MarshalJSON writes the message with OpenWhisk's field names; empty optional fields
// (content, cause, traceContext, action version and binding) are omitted.
func (m ActivationMessage) MarshalJSON() ([]byte, error) {
	type wire struct {
		TransID             TransactionID            `json:"transid"`
		Action              FullyQualifiedEntityName `json:"action"`
		Revision            *string                  `json:"revision"`
		User                Identity                 `json:"user"`
		ActivationID        ActivationID             `json:"activationId"`
		RootControllerIndex ControllerInstanceID     `json:"rootControllerIndex"`
		Blocking            bool                     `json:"blocking"`
		Content             json.RawMessage          `json:"content,omitempty"`
		InitArgs            []string                 `json:"initArgs"`
		LockedArgs          map[string]string        `json:"lockedArgs"`
		Cause               ActivationID             `json:"cause,omitempty"`
		TraceContext        map[string]string        `json:"traceContext,omitempty"`
	}
	w := wire{TransID: m.TransID, Action: m.Action, User: m.User, ActivationID: m.ActivationID,
		RootControllerIndex: m.RootControllerIndex, Blocking: m.Blocking, Content: m.Content,
		InitArgs: m.InitArgs, LockedArgs: m.LockedArgs, Cause: m.Cause, TraceContext: m.TraceContext}
	if m.Revision != "" {
		w.Revision = &m.Revision
	}
	if w.InitArgs == nil {
		w.InitArgs = []string{}
	}
	if w.LockedArgs == nil {
		w.LockedArgs = map[string]string{}
	}
	return Marshal(w)
}

// MarshalJSON writes the identity.
func (id Identity) MarshalJSON() ([]byte, error) {
	type wire struct {
		Subject   string                     `json:"subject"`
		Namespace Namespace                  `json:"namespace"`
		AuthKey   map[string]json.RawMessage `json:"authkey"`
		Rights    []string                   `json:"rights"`
		Limits    UserLimits                 `json:"limits"`
	}
	w := wire{id.Subject, id.Namespace, id.AuthKey, id.Rights, id.Limits}
	if w.AuthKey == nil {
		w.AuthKey = map[string]json.RawMessage{}
	}
	if w.Rights == nil {
		w.Rights = []string{}
	}
	return Marshal(w)
}

// DecodeActivationMessage reads one Kafka record from invoker<N>.
//
// Required members (transid, action, revision — which may be null —, user with its limits,
// activationId, rootControllerIndex, blocking, initArgs, lockedArgs) must be present;
// unknown members are ignored; a record longer than MaxActivationLimit is refused with
// ErrTooLarge. Every error is a *FieldError wrapping ErrInvalidMessage that names the field.
func DecodeActivationMessage(data []byte) (*ActivationMessage, error) {
	r := reader{doc: "ActivationMessage", kind: ErrInvalidMessage}
	if len(data) > MaxActivationLimit {
		return nil, r.fail(largestMember(data), ErrTooLarge,
			"message is %d bytes, above MAX_ACTIVATION_LIMIT (%d bytes)", len(data), MaxActivationLimit)
	}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	m := &ActivationMessage{}
	tid, ok := o.m["transid"]
	if !ok {
		return nil, o.missing("transid")
	}
	if err := m.TransID.UnmarshalJSON(tid); err != nil {
		return nil, r.fail("transid", nil, "%v", err)
	}
	if m.Action, err = o.fqName("action"); err != nil {
		return nil, err
	}
	if !o.present("revision") {
		return nil, r.fail("revision", nil, "is required but missing (it may be null)")
	}
	if m.Revision, _, err = o.optString("revision"); err != nil {
		return nil, r.fail("revision", nil, "doc revision malformed: must be a string or null, got %s", jsonType(o.m["revision"]))
	}
	if m.User, err = o.identity("user"); err != nil {
		return nil, err
	}
	if m.ActivationID, err = o.activationID("activationId", true); err != nil {
		return nil, err
	}
	if m.RootControllerIndex, err = o.controllerID("rootControllerIndex"); err != nil {
		return nil, err
	}
	if m.Blocking, err = o.reqBool("blocking"); err != nil {
		return nil, err
	}
	if c, ok := o.get("content"); ok {
		m.Content = compact(c)
	}
	if m.InitArgs, err = o.strings("initArgs", true); err != nil {
		return nil, err
	}
	if m.LockedArgs, err = o.stringMap("lockedArgs", true); err != nil {
		return nil, err
	}
	if m.Cause, err = o.activationID("cause", false); err != nil {
		return nil, err
	}
	if m.TraceContext, err = o.stringMap("traceContext", false); err != nil {
		return nil, err
	}
	return m, nil
}

// largestMember names the biggest top-level member of an oversized record, so the error
// points at what made it too large (usually "content").
func largestMember(data []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	best, size := "", -1
	for k, v := range m {
		if len(v) > size || len(v) == size && k < best {
			best, size = k, len(v)
		}
	}
	return best
}

func (o obj) identity(name string) (Identity, error) {
	u, _, err := o.object(name, true)
	if err != nil {
		return Identity{}, err
	}
	var id Identity
	if id.Subject, err = u.reqString("subject"); err != nil {
		return id, err
	}
	if s := strings.TrimSpace(id.Subject); len(s) < 5 {
		return id, o.r.fail(u.field("subject"), nil, "subject must be at least 5 characters, got %d", len(s))
	}
	ns, _, err := u.object("namespace", true)
	if err != nil {
		return id, err
	}
	if id.Namespace.Name, err = ns.reqString("name"); err != nil {
		return id, err
	}
	if !ValidEntityName(id.Namespace.Name) {
		return id, o.r.fail(ns.field("name"), nil, "namespace %q does not match the entity name pattern", id.Namespace.Name)
	}
	if id.Namespace.UUID, err = ns.reqString("uuid"); err != nil {
		return id, err
	}
	ak, _, err := u.object("authkey", true)
	if err != nil {
		return id, err
	}
	id.AuthKey = make(map[string]json.RawMessage, len(ak.m))
	for k, v := range ak.m {
		id.AuthKey[k] = compact(v)
	}
	if id.Rights, err = u.strings("rights", true); err != nil {
		return id, err
	}
	for i, r := range id.Rights {
		if !knownRights[r] {
			return id, o.r.fail(index(u.field("rights"), i), nil, "%q is not one of READ, PUT, DELETE, ACTIVATE, REJECT", r)
		}
	}
	l, _, err := u.object("limits", true)
	if err != nil {
		return id, err
	}
	if id.Limits, err = l.userLimits(); err != nil {
		return id, err
	}
	return id, nil
}

func (o obj) userLimits() (UserLimits, error) {
	var l UserLimits
	ints := []struct {
		name string
		dst  **int64
	}{
		{"invocationsPerMinute", &l.InvocationsPerMinute}, {"concurrentInvocations", &l.ConcurrentInvocations},
		{"firesPerMinute", &l.FiresPerMinute}, {"minActionMemory", &l.MinActionMemory},
		{"maxActionMemory", &l.MaxActionMemory}, {"minActionLogs", &l.MinActionLogs},
		{"maxActionLogs", &l.MaxActionLogs}, {"minActionTimeout", &l.MinActionTimeout},
		{"maxActionTimeout", &l.MaxActionTimeout}, {"minActionConcurrency", &l.MinActionConcurrency},
		{"maxActionConcurrency", &l.MaxActionConcurrency}, {"warmedContainerKeepingCount", &l.WarmedContainerKeepingCount},
		{"maxActionInstances", &l.MaxActionInstances},
	}
	var err error
	for _, f := range ints {
		if *f.dst, err = o.optInt(f.name, math.MinInt32, math.MaxInt32); err != nil {
			return l, err
		}
	}
	sizes := []struct {
		name string
		dst  **ByteSize
	}{{"maxParameterSize", &l.MaxParameterSize}, {"maxPayloadSize", &l.MaxPayloadSize}, {"truncationSize", &l.TruncationSize}}
	for _, f := range sizes {
		if b, ok, err := o.byteSize(f.name, false); err != nil {
			return l, err
		} else if ok {
			*f.dst = &b
		}
	}
	if l.AllowedKinds, err = o.strings("allowedKinds", false); err != nil {
		return l, err
	}
	if l.StoreActivations, err = o.optBool("storeActivations"); err != nil {
		return l, err
	}
	if s, ok, err := o.optString("warmedContainerKeepingTimeout"); err != nil {
		return l, err
	} else if ok {
		l.WarmedContainerKeepingTimeout = &s
	}
	return l, nil
}

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
