// Package couch is the invoker's CouchDB edge, in plain net/http: reading action documents and
// their code attachments by (docid, revision), and storing activation records in batches with
// _bulk_docs, retrying while the database is unreachable so that no record is lost.
//
// It moves bytes; decoding documents is package activation's job.
package couch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sentinel errors.
var (
	// ErrNotFound: the document or attachment does not exist (HTTP 404).
	ErrNotFound = errors.New("couch: not found")
	// ErrUnavailable: CouchDB could not be reached or answered 5xx; retrying may help.
	ErrUnavailable = errors.New("couch: unavailable")
	// ErrBadResponse: CouchDB answered with a status or body the client cannot use.
	ErrBadResponse = errors.New("couch: unexpected response")
	// ErrConflict: a document with that id and another revision exists (HTTP 409).
	ErrConflict = errors.New("couch: conflict")
)

// maxBody bounds what the client reads from one response: an action document with its inline
// code, or an attachment (action code is at most a few tens of MB upstream).
const maxBody = 64 << 20

// Client talks to one CouchDB server. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	user, pass string
	hc         *http.Client
}

// New returns a client for baseURL (protocol://host:port). Empty user means no authentication.
func New(baseURL, user, pass string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("couch: base URL %q is not http(s)://host:port", baseURL)
	}
	return &Client{base: u, user: user, pass: pass, hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     60 * time.Second,
		},
	}}, nil
}

// docURL builds /db/docid[/attachment]; the docid ("guest/hello") is one path segment, so its
// slashes are escaped.
func (c *Client) docURL(db string, segs []string, query url.Values) string {
	var b strings.Builder
	b.WriteString(c.base.String())
	b.WriteString("/")
	b.WriteString(url.PathEscape(db))
	for _, s := range segs {
		b.WriteString("/")
		b.WriteString(url.PathEscape(s))
	}
	if len(query) > 0 {
		b.WriteString("?")
		b.WriteString(query.Encode())
	}
	return b.String()
}

func (c *Client) do(ctx context.Context, method, u string, body []byte, hdr http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s: %v", ErrBadResponse, method, u, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, redact(u), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s: reading body: %v", ErrUnavailable, method, redact(u), err)
	}
	if len(data) > maxBody {
		return nil, nil, fmt.Errorf("%w: %s %s: body larger than %d bytes", ErrBadResponse, method, redact(u), maxBody)
	}
	return resp, data, nil
}

func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// statusErr maps a non-2xx status to a sentinel.
func statusErr(method, u string, code int, body []byte) error {
	var sentinel error
	switch {
	case code == http.StatusNotFound:
		sentinel = ErrNotFound
	case code == http.StatusConflict:
		sentinel = ErrConflict
	case code >= 500:
		sentinel = ErrUnavailable
	default:
		sentinel = ErrBadResponse
	}
	return fmt.Errorf("%w: %s %s: HTTP %d: %s", sentinel, method, redact(u), code, truncate(body, 200))
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// GetDoc returns the JSON of document docid. With rev non-empty it asks for that revision (the
// If-Match header CouchDB honours, and ?rev= for servers that ignore If-Match); the caller checks
// the returned _rev (see Actions).
func (c *Client) GetDoc(ctx context.Context, db, docid, rev string) ([]byte, error) {
	var q url.Values
	hdr := http.Header{}
	if rev != "" {
		q = url.Values{"rev": {rev}}
		hdr.Set("If-Match", rev)
	}
	u := c.docURL(db, []string{docid}, q)
	resp, data, err := c.do(ctx, http.MethodGet, u, nil, hdr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusErr("GET", u, resp.StatusCode, data)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: GET %s: body is not JSON", ErrBadResponse, redact(u))
	}
	return data, nil
}

// GetAttachment returns attachment name of docid at rev, and its content type.
func (c *Client) GetAttachment(ctx context.Context, db, docid, rev, name string) ([]byte, string, error) {
	var q url.Values
	hdr := http.Header{}
	if rev != "" {
		q = url.Values{"rev": {rev}}
		hdr.Set("If-Match", rev)
	}
	u := c.docURL(db, []string{docid, name}, q)
	resp, data, err := c.do(ctx, http.MethodGet, u, nil, hdr)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", statusErr("GET", u, resp.StatusCode, data)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// Exists reports whether document docid exists.
func (c *Client) Exists(ctx context.Context, db, docid string) (bool, error) {
	u := c.docURL(db, []string{docid}, nil)
	resp, data, err := c.do(ctx, http.MethodHead, u, nil, nil)
	if err != nil {
		return false, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return true, nil
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	}
	return false, statusErr("HEAD", u, resp.StatusCode, data)
}

// CreateDB creates db; an existing db is not an error.
func (c *Client) CreateDB(ctx context.Context, db string) error {
	u := c.docURL(db, nil, nil)
	resp, data, err := c.do(ctx, http.MethodPut, u, nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPreconditionFailed {
		return nil
	}
	return statusErr("PUT", u, resp.StatusCode, data)
}

// PutDoc writes doc (which carries _rev when it updates) as docid and returns the new revision.
func (c *Client) PutDoc(ctx context.Context, db, docid string, doc []byte) (string, error) {
	return c.putRev(ctx, c.docURL(db, []string{docid}, nil), doc, nil)
}

// PutAttachment adds attachment name to docid at rev and returns the new revision.
func (c *Client) PutAttachment(ctx context.Context, db, docid, rev, name, contentType string, body []byte) (string, error) {
	u := c.docURL(db, []string{docid, name}, url.Values{"rev": {rev}})
	return c.putRev(ctx, u, body, http.Header{"Content-Type": {contentType}})
}

// putRev PUTs body to u and returns the revision CouchDB answers with. An error names u without
// its query (redact), which for attachments carries the revision.
func (c *Client) putRev(ctx context.Context, u string, body []byte, h http.Header) (string, error) {
	resp, data, err := c.do(ctx, http.MethodPut, u, body, h)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return "", statusErr("PUT", u, resp.StatusCode, data)
	}
	var r struct {
		Rev string `json:"rev"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Rev == "" {
		return "", fmt.Errorf("%w: PUT %s: no rev in %s", ErrBadResponse, redact(u), truncate(data, 200))
	}
	return r.Rev, nil
}

// BulkResult is one entry of a _bulk_docs answer.
type BulkResult struct {
	ID     string `json:"id"`
	Rev    string `json:"rev,omitempty"`
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// BulkDocs writes docs with one POST /db/_bulk_docs and returns the per-document results in order.
func (c *Client) BulkDocs(ctx context.Context, db string, docs []json.RawMessage) ([]BulkResult, error) {
	body, err := json.Marshal(struct {
		Docs []json.RawMessage `json:"docs"`
	}{docs})
	if err != nil {
		return nil, fmt.Errorf("%w: encoding _bulk_docs: %v", ErrBadResponse, err)
	}
	u := c.docURL(db, []string{"_bulk_docs"}, nil)
	resp, data, err := c.do(ctx, http.MethodPost, u, body, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return nil, statusErr("POST", u, resp.StatusCode, data)
	}
	var res []BulkResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("%w: POST %s: %v", ErrBadResponse, u, err)
	}
	if len(res) != len(docs) {
		return nil, fmt.Errorf("%w: POST %s: %d results for %d documents", ErrBadResponse, u, len(res), len(docs))
	}
	return res, nil
}

// ViewKeys returns the string keys of the rows of view ddoc/view in db (stale=update_after, as
// upstream reads the blacklist: an answer now, the index updated afterwards). Rows whose key is
// not a string are skipped.
func (c *Client) ViewKeys(ctx context.Context, db, ddoc, view string) ([]string, error) {
	u := c.docURL(db, []string{"_design", ddoc, "_view", view}, url.Values{"stale": {"update_after"}})
	// The design document's name is a path segment of its own: "_design/<ddoc>" must not be
	// escaped as one segment.
	resp, data, err := c.do(ctx, http.MethodGet, u, nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusErr("GET", u, resp.StatusCode, data)
	}
	var res struct {
		Rows []struct {
			Key json.RawMessage `json:"key"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrBadResponse, redact(u), err)
	}
	keys := make([]string, 0, len(res.Rows))
	for _, r := range res.Rows {
		var k string
		if json.Unmarshal(r.Key, &k) == nil {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
