package activation

import (
	"encoding/json"
	"math"
)

// Activation status codes (response.statusCode).
const (
	StatusSuccess          = 0 // the action ran and produced a result
	StatusApplicationError = 1 // the action returned {"error": …}, or its result was truncated
	StatusDeveloperError   = 2 // init failure, timeout, bad response, crash, OOM
	StatusWhiskError       = 3 // the platform failed
)

// StatusText is the extended API form's response.status for a status code.
func StatusText(code int) string {
	switch code {
	case StatusSuccess:
		return "success"
	case StatusApplicationError:
		return "application error"
	case StatusDeveloperError:
		return "action developer error"
	case StatusWhiskError:
		return "whisk internal error"
	}
	return ""
}

func statusCodeOf(text string) (int, bool) {
	for c := StatusSuccess; c <= StatusWhiskError; c++ {
		if StatusText(c) == text {
			return c, true
		}
	}
	return 0, false
}

// ActivationResponse is an activation's outcome: the status code, the result (for errors
// always {"error": …}) and the size of the runtime's response in UTF-16 code units, when known.
type ActivationResponse struct {
	StatusCode int
	Result     json.RawMessage // nil when absent
	Size       *int
}

// IsSuccess, IsApplicationError, IsDeveloperError and IsWhiskError test the status code.
func (r ActivationResponse) IsSuccess() bool { return r.StatusCode == StatusSuccess }

// IsApplicationError reports status 1.
func (r ActivationResponse) IsApplicationError() bool { return r.StatusCode == StatusApplicationError }

// IsDeveloperError reports status 2.
func (r ActivationResponse) IsDeveloperError() bool { return r.StatusCode == StatusDeveloperError }

// IsWhiskError reports status 3 (an ack's isSystemError).
func (r ActivationResponse) IsWhiskError() bool { return r.StatusCode == StatusWhiskError }

// ErrorValue returns result.error when the result is an object carrying one.
func (r ActivationResponse) ErrorValue() (json.RawMessage, bool) {
	if jsonType(r.Result) != "object" {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(r.Result, &m) != nil {
		return nil, false
	}
	v, ok := m["error"]
	return v, ok
}

func intPtr(n int) *int { return &n }

func errorResponse(code int, value json.RawMessage, size *int) ActivationResponse {
	return ActivationResponse{StatusCode: code, Result: append(append([]byte(`{"error":`), value...), '}'), Size: size}
}

// SuccessResponse is a success with the given result and size.
func SuccessResponse(result json.RawMessage, size *int) ActivationResponse {
	return ActivationResponse{StatusCode: StatusSuccess, Result: result, Size: size}
}

// ApplicationError is status 1 with {"error": msg}.
func ApplicationError(msg string) ActivationResponse {
	return errorResponse(StatusApplicationError, mustJSON(msg), nil)
}

// DeveloperError is status 2 with {"error": msg}.
func DeveloperError(msg string) ActivationResponse {
	return errorResponse(StatusDeveloperError, mustJSON(msg), nil)
}

// WhiskError is status 3 with {"error": msg}.
func WhiskError(msg string) ActivationResponse {
	return errorResponse(StatusWhiskError, mustJSON(msg), nil)
}

// MarshalJSON writes {statusCode, result?, size?}.
func (r ActivationResponse) MarshalJSON() ([]byte, error) { return r.appendJSON(nil), nil }

// extended is the REST API form: statusCode replaced by success and status.
func (r ActivationResponse) extended() any {
	return struct {
		Result  json.RawMessage `json:"result,omitempty"`
		Size    *int            `json:"size,omitempty"`
		Success bool            `json:"success"`
		Status  string          `json:"status"`
	}{r.Result, r.Size, r.IsSuccess(), StatusText(r.StatusCode)}
}

// Annotation keys written on activation records.
const (
	AnnotationPath      = "path"
	AnnotationKind      = "kind"
	AnnotationLimits    = "limits"
	AnnotationTimeout   = "timeout"
	AnnotationInitTime  = "initTime"
	AnnotationWaitTime  = "waitTime"
	AnnotationCausedBy  = "causedBy"
	AnnotationBinding   = "binding"
	AnnotationConductor = "conductor"
	// KindUnknown is the kind annotation of fallback activations (the action could not be read).
	KindUnknown = "unknown"
)

// WhiskActivation is an activation record (protocol §5). Its JSON (MarshalJSON) is the form
// carried in acks; Stored adds the CouchDB document fields; ExtendedJSON is the REST form.
type WhiskActivation struct {
	Namespace    string // the invoking namespace
	Name         string // the action's name
	Subject      string // the invoking subject
	ActivationID ActivationID
	Start, End   int64 // epoch milliseconds
	Cause        ActivationID
	Response     ActivationResponse
	Logs         []string // written as [] when empty
	Version      SemVer
	Publish      bool
	Annotations  Parameters
	Duration     *int64 // milliseconds
}

type activationWire struct {
	Namespace    string             `json:"namespace"`
	Name         string             `json:"name"`
	Subject      string             `json:"subject"`
	ActivationID ActivationID       `json:"activationId"`
	Start        int64              `json:"start"`
	End          int64              `json:"end"`
	Cause        ActivationID       `json:"cause,omitempty"`
	Response     ActivationResponse `json:"response"`
	Logs         []string           `json:"logs"`
	Version      SemVer             `json:"version"`
	Publish      bool               `json:"publish"`
	Annotations  Parameters         `json:"annotations"`
	Duration     *int64             `json:"duration,omitempty"`
}

func (a WhiskActivation) wire() activationWire {
	logs := a.Logs
	if logs == nil {
		logs = []string{}
	}
	v := a.Version
	if v.IsZero() {
		v = DefaultVersion
	}
	return activationWire{a.Namespace, a.Name, a.Subject, a.ActivationID, a.Start, a.End, a.Cause,
		a.Response, logs, v, a.Publish, a.Annotations, a.Duration}
}

// MarshalJSON writes the record as carried in acks (no document fields).
func (a WhiskActivation) MarshalJSON() ([]byte, error) {
	return a.appendJSON(make([]byte, 0, 1024)), nil
}

// WithoutLogs returns a copy with logs [] (the form of a ResultMessage sent before log collection).
func (a WhiskActivation) WithoutLogs() WhiskActivation {
	a.Logs = []string{}
	return a
}

// DocID is the record's CouchDB _id: "<invoking namespace>/<activation id>".
func (a WhiskActivation) DocID() string { return a.Namespace + "/" + string(a.ActivationID) }

// StoredActivation is the record as a CouchDB document in the activations database.
type StoredActivation struct {
	ID         string // _id, "<namespace>/<activationId>"
	Rev        string // _rev, empty when not yet stored
	EntityType string // "activation"
	Updated    int64  // epoch milliseconds
	WhiskActivation
}

// Stored returns the document form with the given update time.
func (a WhiskActivation) Stored(updated int64) StoredActivation {
	return StoredActivation{ID: a.DocID(), EntityType: "activation", Updated: updated, WhiskActivation: a}
}

// MarshalJSON writes the document: _id, _rev (if set), entityType, updated and the record.
func (s StoredActivation) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 1024)
	b = append(b, `{"_id":`...)
	b = appendString(b, s.ID)
	if s.Rev != "" {
		b = append(b, `,"_rev":`...)
		b = appendString(b, s.Rev)
	}
	b = append(b, `,"entityType":`...)
	b = appendString(b, s.EntityType)
	b = append(b, `,"updated":`...)
	b = appendInt(b, s.Updated)
	b = append(b, ',')
	b = s.WhiskActivation.appendMembers(b)
	return append(b, '}'), nil
}

// ExtendedJSON is the REST API form (GET /activations/{id}, blocking invoke): no document
// fields, response.statusCode replaced by success/status, duration always present when end
// is set (end − start if the record has none) and end dropped when it is 0.
func (a WhiskActivation) ExtendedJSON() ([]byte, error) {
	w := a.wire()
	type ext struct {
		Namespace    string       `json:"namespace"`
		Name         string       `json:"name"`
		Subject      string       `json:"subject"`
		ActivationID ActivationID `json:"activationId"`
		Start        int64        `json:"start"`
		End          *int64       `json:"end,omitempty"`
		Cause        ActivationID `json:"cause,omitempty"`
		Response     any          `json:"response"`
		Logs         []string     `json:"logs"`
		Version      SemVer       `json:"version"`
		Publish      bool         `json:"publish"`
		Annotations  Parameters   `json:"annotations"`
		Duration     *int64       `json:"duration,omitempty"`
	}
	e := ext{Namespace: w.Namespace, Name: w.Name, Subject: w.Subject, ActivationID: w.ActivationID, Start: w.Start,
		Cause: w.Cause, Response: a.Response.extended(), Logs: w.Logs, Version: w.Version, Publish: w.Publish,
		Annotations: w.Annotations}
	if a.End != 0 {
		end := a.End
		e.End = &end
		d := a.End - a.Start
		if a.Duration != nil {
			d = *a.Duration
		}
		e.Duration = &d
	}
	return Marshal(e)
}

// DecodeWhiskActivation reads a record in its ack form (document fields, if any, are ignored).
// Errors are *FieldError wrapping ErrInvalidRecord.
func DecodeWhiskActivation(data []byte) (*WhiskActivation, error) {
	r := reader{doc: "WhiskActivation", kind: ErrInvalidRecord}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	return o.activation(false)
}

// DecodeStoredActivation reads an activation document from the activations database.
func DecodeStoredActivation(data []byte) (*StoredActivation, error) {
	r := reader{doc: "WhiskActivation", kind: ErrInvalidRecord}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	a, err := o.activation(false)
	if err != nil {
		return nil, err
	}
	s := &StoredActivation{WhiskActivation: *a}
	if s.ID, _, err = o.optString("_id"); err != nil {
		return nil, err
	}
	if s.Rev, _, err = o.optString("_rev"); err != nil {
		return nil, err
	}
	if s.EntityType, _, err = o.optString("entityType"); err != nil {
		return nil, err
	}
	if s.EntityType != "" && s.EntityType != "activation" {
		return nil, r.fail("entityType", nil, "document type %s did not match expected type activation", s.EntityType)
	}
	if u, err := o.optInt("updated", math.MinInt64, math.MaxInt64); err != nil {
		return nil, err
	} else if u != nil {
		s.Updated = *u
	}
	return s, nil
}

// DecodeExtendedActivation reads the REST API form (response.status instead of statusCode).
func DecodeExtendedActivation(data []byte) (*WhiskActivation, error) {
	r := reader{doc: "WhiskActivation (API form)", kind: ErrInvalidRecord}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	return o.activation(true)
}

func (o obj) activation(extended bool) (*WhiskActivation, error) {
	a := &WhiskActivation{}
	var err error
	if a.Namespace, err = o.reqString("namespace"); err != nil {
		return nil, err
	}
	if _, err := parseEntityPath(a.Namespace); err != nil {
		return nil, o.r.fail("namespace", nil, "%v", err)
	}
	if a.Name, err = o.reqString("name"); err != nil {
		return nil, err
	}
	if !ValidEntityName(a.Name) {
		return nil, o.r.fail(o.field("name"), nil, "name %q does not match the entity name pattern", a.Name)
	}
	if a.Subject, err = o.reqString("subject"); err != nil {
		return nil, err
	}
	if a.ActivationID, err = o.activationID("activationId", true); err != nil {
		return nil, err
	}
	if a.Start, err = o.reqInt("start", math.MinInt64, math.MaxInt64); err != nil {
		return nil, err
	}
	if extended {
		if e, err := o.optInt("end", math.MinInt64, math.MaxInt64); err != nil {
			return nil, err
		} else if e != nil {
			a.End = *e
		}
	} else if a.End, err = o.reqInt("end", math.MinInt64, math.MaxInt64); err != nil {
		return nil, err
	}
	if a.Cause, err = o.activationID("cause", false); err != nil {
		return nil, err
	}
	if a.Response, err = o.response("response", extended); err != nil {
		return nil, err
	}
	if a.Logs, err = o.strings("logs", true); err != nil {
		return nil, err
	}
	if a.Version, _, err = o.semver("version", true); err != nil {
		return nil, err
	}
	if a.Publish, err = o.reqBool("publish"); err != nil {
		return nil, err
	}
	if a.Annotations, err = o.parameters("annotations", true); err != nil {
		return nil, err
	}
	if a.Duration, err = o.optInt("duration", math.MinInt64, math.MaxInt64); err != nil {
		return nil, err
	}
	return a, nil
}

func (o obj) response(name string, extended bool) (ActivationResponse, error) {
	p, _, err := o.object(name, true)
	if err != nil {
		return ActivationResponse{}, err
	}
	var r ActivationResponse
	if extended {
		st, err := p.reqString("status")
		if err != nil {
			return r, err
		}
		code, ok := statusCodeOf(st)
		if !ok {
			return r, o.r.fail(p.field("status"), nil, "unknown status %q", st)
		}
		r.StatusCode = code
		if _, _, err := p.boolean("success", true); err != nil {
			return r, err
		}
	} else {
		c, err := p.reqInt("statusCode", 0, 3)
		if err != nil {
			return r, err
		}
		r.StatusCode = int(c)
	}
	if v, ok := p.get("result"); ok {
		r.Result = compact(v)
	}
	if s, err := p.optInt("size", 0, math.MaxInt32); err != nil {
		return r, err
	} else if s != nil {
		r.Size = intPtr(int(*s))
	}
	return r, nil
}
