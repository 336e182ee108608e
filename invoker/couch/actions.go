package couch

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// ActionDoc is an action document as fetched: its JSON and, when its code is stored as a CouchDB
// attachment, the attachment's bytes. Inline code ("mem:" attachments, plain strings) stays in
// the JSON for package activation to decode.
type ActionDoc struct {
	DocID, Rev string
	JSON       []byte
	// Attachment holds the code attachment's bytes and AttachmentType its content type, when
	// exec.code (or legacy exec.jar) names a CouchDB attachment.
	Attachment     []byte
	AttachmentType string
	// AttachmentName is the attachment's name in the document ("couch:" stripped).
	AttachmentName string
}

// Actions reads action documents from the entities database and caches them by
// (docid, revision). A cached document never changes: a new revision is a new key, which is why
// the invoker needs no cache invalidation.
type Actions struct {
	c     *Client
	db    string
	cache *lru

	mu       sync.Mutex
	inflight map[string]*fetching // concurrent misses of one (docid, rev) share a fetch
}

type fetching struct {
	done chan struct{}
	doc  *ActionDoc
	err  error
}

// NewActions returns a reader for database db caching up to entries documents.
func NewActions(c *Client, db string, entries int) *Actions {
	return &Actions{c: c, db: db, cache: newLRU(entries), inflight: map[string]*fetching{}}
}

// Get returns document docid at revision rev. rev "" means the latest revision and bypasses the
// cache (the health test action is sent with revision null so it is always read fresh). When
// the server returns another revision than asked for (a server ignoring If-Match), the latest is
// read once more, as upstream does. Errors wrap ErrNotFound, ErrUnavailable or ErrBadResponse.
func (a *Actions) Get(ctx context.Context, docid, rev string) (*ActionDoc, error) {
	if rev == "" {
		return a.get(ctx, docid, rev)
	}
	key := docid + "\x00" + rev
	if d, ok := a.cache.get(key); ok {
		return d, nil
	}
	a.mu.Lock()
	if f, ok := a.inflight[key]; ok {
		a.mu.Unlock()
		select {
		case <-f.done:
			return f.doc, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &fetching{done: make(chan struct{})}
	a.inflight[key] = f
	a.mu.Unlock()
	f.doc, f.err = a.get(ctx, docid, rev)
	a.mu.Lock()
	delete(a.inflight, key)
	a.mu.Unlock()
	close(f.done)
	return f.doc, f.err
}

func (a *Actions) get(ctx context.Context, docid, rev string) (*ActionDoc, error) {
	d, err := a.fetch(ctx, docid, rev)
	if err != nil {
		return nil, err
	}
	if rev != "" && d.Rev != rev {
		if d, err = a.fetch(ctx, docid, ""); err != nil {
			return nil, err
		}
	}
	if rev != "" {
		a.cache.put(docid+"\x00"+d.Rev, d)
	}
	return d, nil
}

// codeRef is the part of an action document that says where the code is.
type codeRef struct {
	Rev  string `json:"_rev"`
	Exec *struct {
		Code json.RawMessage `json:"code"`
		Jar  json.RawMessage `json:"jar"`
	} `json:"exec"`
}

func (a *Actions) fetch(ctx context.Context, docid, rev string) (*ActionDoc, error) {
	data, err := a.c.GetDoc(ctx, a.db, docid, rev)
	if err != nil {
		return nil, err
	}
	var ref codeRef
	if err := json.Unmarshal(data, &ref); err != nil {
		return nil, fmt.Errorf("%w: action document %s: %v", ErrBadResponse, docid, err)
	}
	if ref.Rev == "" {
		return nil, fmt.Errorf("%w: action document %s has no _rev", ErrBadResponse, docid)
	}
	d := &ActionDoc{DocID: docid, Rev: ref.Rev, JSON: data}
	if ref.Exec == nil {
		return d, nil
	}
	name := attachmentName(ref.Exec.Code)
	if name == "" {
		name = attachmentName(ref.Exec.Jar)
	}
	if name == "" {
		return d, nil
	}
	body, ctype, err := a.c.GetAttachment(ctx, a.db, docid, ref.Rev, name)
	if err != nil {
		return nil, fmt.Errorf("code attachment %q of %s: %w", name, docid, err)
	}
	d.Attachment, d.AttachmentType, d.AttachmentName = body, ctype, name
	return d, nil
}

// attachmentName returns the CouchDB attachment a code field refers to: "couch:<name>" or a bare
// legacy name; "" for inline code ("mem:…" or a plain string).
func attachmentName(raw json.RawMessage) string {
	var att struct {
		AttachmentName string `json:"attachmentName"`
	}
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &att) != nil {
		return ""
	}
	n := att.AttachmentName
	if n == "" || strings.HasPrefix(n, "mem:") {
		return ""
	}
	return strings.TrimPrefix(n, "couch:")
}

// lru is a small least-recently-used cache of action documents.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recent; values are *lruEntry
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	doc *ActionDoc
}

func newLRU(max int) *lru {
	if max < 1 {
		max = 1
	}
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (l *lru) get(key string) (*ActionDoc, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.items[key]
	if !ok {
		return nil, false
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruEntry).doc, true
}

func (l *lru) put(key string, doc *ActionDoc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		e.Value.(*lruEntry).doc = doc
		l.order.MoveToFront(e)
		return
	}
	l.items[key] = l.order.PushFront(&lruEntry{key, doc})
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*lruEntry).key)
	}
}

// CacheLen is the number of cached documents.
func (a *Actions) CacheLen() int {
	a.cache.mu.Lock()
	defer a.cache.mu.Unlock()
	return a.cache.order.Len()
}
