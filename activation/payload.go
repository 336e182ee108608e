package activation

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// InitRequest is the body of POST /init: {"value": {name, main, binary, code?, env}}.
type InitRequest struct {
	Name   string
	Main   string
	Binary bool
	// Code is the source text, or base64 of the bytes for binary actions; nil when the action
	// has none (a blackbox without code).
	Code *string
	// Env holds the init parameters and the __OW_* context, all as strings.
	Env map[string]string
}

// MarshalJSON writes the /init body.
func (r InitRequest) MarshalJSON() ([]byte, error) {
	type value struct {
		Name   string            `json:"name"`
		Main   string            `json:"main"`
		Binary bool              `json:"binary"`
		Code   *string           `json:"code,omitempty"`
		Env    map[string]string `json:"env,omitempty"`
	}
	return Marshal(struct {
		Value value `json:"value"`
	}{value{r.Name, r.Main, r.Binary, r.Code, r.Env}})
}

// RunRequest is the body of POST /run: {"value": …, <context keys>}.
type RunRequest struct {
	// Value is the content minus init parameters, locked parameters decrypted; {} without content.
	Value json.RawMessage
	// Context holds api_key (unless withheld, and any other authkey members), namespace,
	// action_name, action_version (null without version), activation_id, transaction_id and
	// deadline (a string of epoch milliseconds).
	Context map[string]json.RawMessage
}

// MarshalJSON writes the /run body.
func (r RunRequest) MarshalJSON() ([]byte, error) {
	m := make(map[string]json.RawMessage, len(r.Context)+1)
	for k, v := range r.Context {
		m[k] = v
	}
	m["value"] = r.Value
	return Marshal(m)
}

// Invocation is what both bodies are built from.
type Invocation struct {
	Msg    *ActivationMessage
	Action *ActionDocument
	// Keys decrypt the message's lockedArgs.
	Keys ParameterKeys
	// Deadline is "now + limits.timeout" in epoch milliseconds at the time of the call
	// (computed separately for /init and /run).
	Deadline int64
	// Code is the attachment's bytes, fetched by the caller, when the action's code is a
	// CouchDB attachment (CodeCouch, CodeLegacyAttachment); ignored otherwise.
	Code []byte
}

// contextFields are the activation context (without "__OW_" and upper-casing), in the order
// upstream merges them: authkey members first, then the fixed keys, which win.
func (in Invocation) contextFields() map[string]json.RawMessage {
	ctx := map[string]json.RawMessage{}
	if in.Action.ProvideAPIKey() {
		for k, v := range in.Msg.User.AuthKey {
			ctx[k] = v
		}
	}
	ctx["namespace"] = mustJSON(in.Msg.User.Namespace.Name)
	ctx["action_name"] = mustJSON(in.Msg.Action.QualifiedName())
	if in.Msg.Action.Version != nil {
		ctx["action_version"] = mustJSON(in.Msg.Action.Version.String())
	} else {
		ctx["action_version"] = json.RawMessage("null")
	}
	ctx["activation_id"] = mustJSON(string(in.Msg.ActivationID))
	ctx["transaction_id"] = mustJSON(in.Msg.TransID.ID)
	ctx["deadline"] = mustJSON(strconv.FormatInt(in.Deadline, 10))
	return ctx
}

// arguments decrypts the locked arguments and splits the content into init parameters and
// run value (ContainerProxy.unlockArguments and partitionArguments).
func (in Invocation) arguments() (initEnv map[string]json.RawMessage, value json.RawMessage, err error) {
	c := in.Msg.Content
	switch jsonType(c) {
	case "nothing", "null":
		return nil, json.RawMessage("{}"), nil
	case "array":
		return nil, c, nil
	case "object":
	default:
		return nil, nil, fmt.Errorf("%w: content is a JSON %s; it must be an object or an array", ErrNotRunnable, jsonType(c))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(c, &fields); err != nil {
		return nil, nil, fmt.Errorf("%w: content: %v", ErrNotRunnable, err)
	}
	for name, scheme := range in.Msg.LockedArgs {
		v, ok := fields[name]
		if !ok || jsonType(v) != "string" {
			continue // overridden by a plain value in the payload, or absent
		}
		var s string
		_ = json.Unmarshal(v, &s)
		plain, err := in.Keys.Decrypt(scheme, s)
		if err != nil {
			return nil, nil, fmt.Errorf("parameter %q: %w", name, err)
		}
		fields[name] = plain
	}
	if len(in.Msg.InitArgs) > 0 {
		initEnv = map[string]json.RawMessage{}
		for _, name := range in.Msg.InitArgs {
			if v, ok := fields[name]; ok {
				initEnv[name] = v
				delete(fields, name)
			}
		}
	}
	value, err = Marshal(fields)
	return initEnv, value, err
}

// envString stringifies an environment value the way the invoker does: strings as they are,
// null as "", numbers and booleans as their text, objects and arrays as compact JSON.
func envString(v json.RawMessage) string {
	switch jsonType(v) {
	case "string":
		var s string
		_ = json.Unmarshal(v, &s)
		return s
	case "null":
		return ""
	}
	return string(compact(v))
}

// initCode returns the /init code: text, or base64 of raw bytes for binary attachments.
func (in Invocation) initCode() (*string, error) {
	e := in.Action.Exec
	if e.Code == nil {
		return nil, nil
	}
	var raw []byte
	switch e.Code.Form() {
	case CodePlain:
		s := e.Code.Text
		return &s, nil
	case CodeInline:
		b, err := e.Code.InlineBytes()
		if err != nil {
			return nil, err
		}
		raw = b
	default:
		if in.Code == nil {
			return nil, fmt.Errorf("%w: code is the CouchDB attachment %q; fetch it and pass it as Invocation.Code", ErrNotRunnable, e.Code.AttachmentName())
		}
		raw = in.Code
	}
	var s string
	if e.Binary {
		s = base64.StdEncoding.EncodeToString(raw)
	} else {
		s = string(raw)
	}
	return &s, nil
}

// BuildInit makes the /init body (protocol §6): name = action name, main = exec.main or
// "main", binary, code, and env = the init parameters (decrypted, stringified) plus the
// __OW_* context (__OW_API_KEY unless the action withholds it, __OW_NAMESPACE,
// __OW_ACTION_NAME, __OW_ACTION_VERSION ("" without version), __OW_ACTIVATION_ID,
// __OW_TRANSACTION_ID, __OW_DEADLINE); __OW_* keys win on collision.
func BuildInit(in Invocation) (InitRequest, error) {
	if in.Action.Exec.Kind == KindSequence {
		return InitRequest{}, fmt.Errorf("%w: a sequence is not executable by the invoker", ErrNotRunnable)
	}
	initEnv, _, err := in.arguments()
	if err != nil {
		return InitRequest{}, err
	}
	code, err := in.initCode()
	if err != nil {
		return InitRequest{}, err
	}
	env := make(map[string]string, len(initEnv)+8)
	for k, v := range initEnv {
		env[k] = envString(v)
	}
	for k, v := range in.contextFields() {
		env["__OW_"+strings.ToUpper(k)] = envString(v)
	}
	return InitRequest{Name: in.Action.Name, Main: in.Action.Exec.EntryPoint(), Binary: in.Action.Exec.Binary, Code: code, Env: env}, nil
}

// BuildRun makes the /run body (protocol §6): value = content without the init parameters,
// locked parameters decrypted ({} without content, arrays passed through), plus the context
// keys unprefixed (api_key omitted when withheld, action_version null without version,
// deadline a string).
func BuildRun(in Invocation) (RunRequest, error) {
	if in.Action.Exec.Kind == KindSequence {
		return RunRequest{}, fmt.Errorf("%w: a sequence is not executable by the invoker", ErrNotRunnable)
	}
	_, value, err := in.arguments()
	if err != nil {
		return RunRequest{}, err
	}
	return RunRequest{Value: value, Context: in.contextFields()}, nil
}
