// Package owclient is a small OpenWhisk REST client (the subset `wsk` uses), written for the
// end-to-end tests and benchmarks because openwhisk-client-go cannot be installed here. It
// speaks the wire format of the spec's §1: HTTP Basic with "uuid:key", the error envelope
// {"error", "code"}, and the invoke responses 200/202/502/500.
package owclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one API host as one subject.
type Client struct {
	// APIHost is the base URL, e.g. http://127.0.0.1:3233.
	APIHost string
	// AuthKey is "uuid:key"; empty sends no Authorization header.
	AuthKey string
	// Namespace defaults to "_" (the caller's own).
	Namespace string
	HTTP      *http.Client
}

// New returns a client with a pooled transport sized for concurrent benchmarks.
func New(apiHost, authKey string) *Client {
	return &Client{APIHost: strings.TrimRight(apiHost, "/"), AuthKey: authKey, Namespace: "_",
		HTTP: &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}}
}

// Error is a non-2xx answer. For controller errors Message and Code are the envelope's; an
// activation answered with 502/500 leaves Code empty and Body holds the activation or result.
type Error struct {
	Status    int
	Message   string
	Code      string
	RequestID string
	Body      []byte
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d: %s (code %s)", e.Status, e.Message, e.Code)
	}
	return fmt.Sprintf("%d: %s", e.Status, e.Body)
}

// StatusOf returns the HTTP status of an *Error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Response is one raw answer.
type Response struct {
	Status       int
	Header       http.Header
	Body         []byte
	RequestID    string
	ActivationID string
}

// Do sends one request; body may be nil, []byte, json.RawMessage or a value to encode. It
// returns the answer whatever its status; only transport failures are errors.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body any) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("owclient: encode body: %w", err)
		}
		rd = bytes.NewReader(enc)
	}
	u := c.APIHost + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("owclient: %w", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "OpenWhisk-CLI/1.0 (snapinvoker-e2e)")
	if c.AuthKey != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.AuthKey)))
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("owclient: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("owclient: %s %s: read: %w", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data,
		RequestID: resp.Header.Get("X-Request-ID"), ActivationID: resp.Header.Get("x-openwhisk-activation-id")}, nil
}

// call sends a request and decodes a 2xx answer into out (when non-nil); other statuses become
// an *Error.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) (*Response, error) {
	r, err := c.Do(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	if r.Status/100 != 2 {
		return r, asError(r)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			return r, fmt.Errorf("owclient: %s %s: decode %d answer: %w: %s", method, path, r.Status, err, r.Body)
		}
	}
	return r, nil
}

func asError(r *Response) *Error {
	e := &Error{Status: r.Status, RequestID: r.RequestID, Body: r.Body}
	var env struct {
		Error json.RawMessage `json:"error"`
		Code  json.RawMessage `json:"code"`
	}
	if json.Unmarshal(r.Body, &env) == nil && env.Code != nil {
		_ = json.Unmarshal(env.Error, &e.Message)
		_ = json.Unmarshal(env.Code, &e.Code)
	}
	return e
}

func (c *Client) ns() string {
	if c.Namespace == "" {
		return "_"
	}
	return url.PathEscape(c.Namespace)
}

func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// KeyValue is one parameter or annotation.
type KeyValue struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
	Init  bool   `json:"init,omitempty"`
}

// Exec is an action's exec.
type Exec struct {
	Kind       string   `json:"kind"`
	Code       *string  `json:"code,omitempty"`
	Image      string   `json:"image,omitempty"`
	Main       string   `json:"main,omitempty"`
	Binary     *bool    `json:"binary,omitempty"`
	Components []string `json:"components,omitempty"`
}

// Limits are an action's limits.
type Limits struct {
	Timeout     int `json:"timeout,omitempty"`
	Memory      int `json:"memory,omitempty"`
	Logs        int `json:"logs,omitempty"`
	Concurrency int `json:"concurrency,omitempty"`
}

// Action is an action as the API returns it and (with the zero fields left out) as it is put.
type Action struct {
	Namespace   string     `json:"namespace,omitempty"`
	Name        string     `json:"name,omitempty"`
	Version     string     `json:"version,omitempty"`
	Exec        *Exec      `json:"exec,omitempty"`
	Parameters  []KeyValue `json:"parameters,omitempty"`
	Limits      *Limits    `json:"limits,omitempty"`
	Publish     *bool      `json:"publish,omitempty"`
	Annotations []KeyValue `json:"annotations,omitempty"`
	Updated     int64      `json:"updated,omitempty"`
}

// Code returns a pointer to s, for Exec.Code.
func Code(s string) *string { return &s }

// PutAction creates (overwrite false) or updates an action.
func (c *Client) PutAction(ctx context.Context, name string, a Action, overwrite bool) (*Action, error) {
	var out Action
	q := url.Values{"overwrite": {strconv.FormatBool(overwrite)}}
	_, err := c.call(ctx, http.MethodPut, "/api/v1/namespaces/"+c.ns()+"/actions/"+escapeName(name), q, a, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAction reads an action; withCode false is what `wsk action get` sends.
func (c *Client) GetAction(ctx context.Context, name string, withCode bool) (*Action, error) {
	var out Action
	q := url.Values{"code": {strconv.FormatBool(withCode)}}
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/actions/"+escapeName(name), q, nil, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAction deletes an action and returns it.
func (c *Client) DeleteAction(ctx context.Context, name string) (*Action, error) {
	var out Action
	_, err := c.call(ctx, http.MethodDelete, "/api/v1/namespaces/"+c.ns()+"/actions/"+escapeName(name), nil, nil, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListActions lists action summaries, newest first.
func (c *Client) ListActions(ctx context.Context, skip, limit int) ([]Action, error) {
	var out []Action
	q := url.Values{"skip": {strconv.Itoa(skip)}, "limit": {strconv.Itoa(limit)}}
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/actions", q, nil, &out)
	return out, err
}

// ActivationResponse is an activation's response in the API form.
type ActivationResponse struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Size    *int            `json:"size,omitempty"`
	Status  string          `json:"status"`
	Success bool            `json:"success"`
}

// Activation is an activation record in the API form.
type Activation struct {
	Namespace    string             `json:"namespace"`
	Name         string             `json:"name"`
	Version      string             `json:"version"`
	Subject      string             `json:"subject"`
	ActivationID string             `json:"activationId"`
	Start        int64              `json:"start"`
	End          int64              `json:"end"`
	Duration     int64              `json:"duration"`
	Cause        string             `json:"cause,omitempty"`
	Response     ActivationResponse `json:"response"`
	Logs         []string           `json:"logs"`
	Annotations  []KeyValue         `json:"annotations"`
	Publish      bool               `json:"publish"`
	StatusCode   *int               `json:"statusCode,omitempty"` // list summaries only
}

// Annotation returns the value of an annotation.
func (a *Activation) Annotation(key string) (any, bool) {
	for _, kv := range a.Annotations {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// InvokeOptions are the invoke query flags.
type InvokeOptions struct {
	Blocking, Result bool
	// Timeout is the blocking wait; 0 sends none (the server's 60 s).
	Timeout time.Duration
}

// Invocation is an invoke's answer.
type Invocation struct {
	Status       int
	ActivationID string // from x-openwhisk-activation-id
	// Activation is set for a blocking answer with a record (200/502/500 without result=true).
	Activation *Activation
	// Body is the raw answer (the result with result=true, the record, or {"activationId"}).
	Body   []byte
	Header http.Header
}

// Invoke invokes an action. 200, 202, 502 and a 500 carrying an activation are answers, not
// errors; controller errors (with the envelope) are *Error.
func (c *Client) Invoke(ctx context.Context, name string, params any, o InvokeOptions) (*Invocation, error) {
	q := url.Values{"blocking": {strconv.FormatBool(o.Blocking)}, "result": {strconv.FormatBool(o.Result)}}
	if o.Timeout > 0 {
		q.Set("timeout", strconv.FormatInt(o.Timeout.Milliseconds(), 10))
	}
	if params == nil {
		params = json.RawMessage(`{}`)
	}
	r, err := c.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+c.ns()+"/actions/"+escapeName(name), q, params)
	if err != nil {
		return nil, err
	}
	inv := &Invocation{Status: r.Status, ActivationID: r.ActivationID, Body: r.Body, Header: r.Header}
	switch r.Status {
	case http.StatusOK, http.StatusAccepted, http.StatusBadGateway, http.StatusInternalServerError:
		if r.Status == http.StatusInternalServerError && asError(r).Code != "" {
			return nil, asError(r)
		}
		if o.Blocking && !o.Result && r.Status != http.StatusAccepted && bytes.HasPrefix(bytes.TrimSpace(r.Body), []byte("{")) {
			var a Activation
			if err := json.Unmarshal(r.Body, &a); err != nil {
				return nil, fmt.Errorf("owclient: invoke %s: decode activation: %w", name, err)
			}
			inv.Activation = &a
		}
		return inv, nil
	}
	return nil, asError(r)
}

// GetActivation reads one activation record.
func (c *Client) GetActivation(ctx context.Context, id string) (*Activation, error) {
	var out Activation
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/activations/"+url.PathEscape(id), nil, nil, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitActivation polls until the record exists (the invoker writes it after the ack).
func (c *Client) WaitActivation(ctx context.Context, id string) (*Activation, error) {
	delay := 10 * time.Millisecond
	for {
		a, err := c.GetActivation(ctx, id)
		if err == nil {
			return a, nil
		}
		if StatusOf(err) != http.StatusNotFound {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("owclient: activation %s never appeared: %w", id, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// ActivationLogs returns the record's log lines.
func (c *Client) ActivationLogs(ctx context.Context, id string) ([]string, error) {
	var out struct {
		Logs []string `json:"logs"`
	}
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/activations/"+url.PathEscape(id)+"/logs", nil, nil, &out)
	return out.Logs, err
}

// ActivationResult returns the record's response.
func (c *Client) ActivationResult(ctx context.Context, id string) (*ActivationResponse, error) {
	var out ActivationResponse
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/activations/"+url.PathEscape(id)+"/result", nil, nil, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ActivationQuery filters the activations list.
type ActivationQuery struct {
	Name        string
	Since, Upto int64
	Skip, Limit int
	Docs        bool
}

func (q ActivationQuery) values() url.Values {
	v := url.Values{}
	if q.Name != "" {
		v.Set("name", q.Name)
	}
	if q.Since > 0 {
		v.Set("since", strconv.FormatInt(q.Since, 10))
	}
	if q.Upto > 0 {
		v.Set("upto", strconv.FormatInt(q.Upto, 10))
	}
	v.Set("skip", strconv.Itoa(q.Skip))
	v.Set("limit", strconv.Itoa(q.Limit))
	if q.Docs {
		v.Set("docs", "true")
	}
	return v
}

// ListActivations lists activations newest first.
func (c *Client) ListActivations(ctx context.Context, q ActivationQuery) ([]Activation, error) {
	var out []Activation
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/activations", q.values(), nil, &out)
	return out, err
}

// CountActivations counts activations matching q's name and time window.
func (c *Client) CountActivations(ctx context.Context, q ActivationQuery) (int, error) {
	v := q.values()
	v.Del("limit")
	v.Set("count", "true")
	var out struct {
		N int `json:"activations"`
	}
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns()+"/activations", v, nil, &out)
	return out.N, err
}

// Namespaces lists the caller's namespaces.
func (c *Client) Namespaces(ctx context.Context) ([]string, error) {
	var out []string
	_, err := c.call(ctx, http.MethodGet, "/api/v1/namespaces", nil, nil, &out)
	return out, err
}
