package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/snapinvoker/snapinvoker/invoker/couch"
)

// The invoker reads actions and writes activation records through the same methods as its
// CouchDB client (invoker/couch.Actions.Get, invoker/couch.Store.Put); the types below give the
// standalone invoker this store instead, with the same errors, so the invoker runs unchanged.

// Actions reads action documents from the entities database for the invoker. The document of
// the current revision is kept, as CouchDB's client keeps it by (docid, revision): a warm
// invoke of an action with megabytes of code does not read and copy them again.
type Actions struct {
	s     *Store
	mu    sync.Mutex
	cache map[string]*couch.ActionDoc // docid → document at its current revision
}

// maxCachedActions bounds the cache; past it the cache starts over.
const maxCachedActions = 1024

// InvokerActions returns the invoker's view of the entities database.
func (s *Store) InvokerActions() *Actions {
	return &Actions{s: s, cache: map[string]*couch.ActionDoc{}}
}

// Get returns the current document docid. Only the latest revision is kept; like a CouchDB
// server that ignores If-Match, it is returned whatever rev asks for, and the caller compares.
// Code is always inline in documents the standalone controller writes, so Attachment is empty.
// Errors wrap couch.ErrNotFound or couch.ErrUnavailable.
func (a *Actions) Get(ctx context.Context, docid, rev string) (*couch.ActionDoc, error) {
	if cur, err := a.s.Whisks.Rev(docid); err == nil {
		a.mu.Lock()
		d := a.cache[docid]
		a.mu.Unlock()
		if d != nil && d.Rev == cur {
			return d, nil
		}
	}
	d, err := a.s.Whisks.Get(docid)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: action %s: %w", docid, couch.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: action %s: %v: %w", docid, err, couch.ErrUnavailable)
	}
	doc := &couch.ActionDoc{DocID: d.ID, Rev: d.Rev, JSON: d.JSON()}
	a.mu.Lock()
	if len(a.cache) >= maxCachedActions {
		a.cache = map[string]*couch.ActionDoc{}
	}
	a.cache[docid] = doc
	a.mu.Unlock()
	return doc, nil
}

// ActivationWriter writes activation records for the invoker.
type ActivationWriter struct{ s *Store }

// InvokerActivations returns the invoker's writer of activation records.
func (s *Store) InvokerActivations() *ActivationWriter { return &ActivationWriter{s} }

// Put stores doc (a complete activation document whose _id is id) and calls done once, before
// returning: with nil, or with an error wrapping couch.ErrConflict when the id exists or
// couch.ErrBadResponse when doc is not a JSON object.
func (w *ActivationWriter) Put(id string, doc json.RawMessage, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	_, err := w.s.Activations.Put(id, "", doc)
	switch {
	case err == nil:
		done(nil)
	case errors.Is(err, ErrConflict):
		done(fmt.Errorf("store: activation %s: %w", id, couch.ErrConflict))
	case errors.Is(err, ErrBadDocument):
		done(fmt.Errorf("store: activation %s: %v: %w", id, err, couch.ErrBadResponse))
	default:
		done(fmt.Errorf("store: activation %s: %v: %w", id, err, couch.ErrUnavailable))
	}
}

// Pending is always 0: records are written synchronously.
func (w *ActivationWriter) Pending() int { return 0 }

// Close flushes the activations database to disk; the store itself stays open.
func (w *ActivationWriter) Close(ctx context.Context) error { return w.s.Activations.Sync() }

// Exists reports whether an activation record is stored (the invoker's RecordChecker: it skips
// activations delivered again after a restart).
func (w *ActivationWriter) Exists(ctx context.Context, docid string) (bool, error) {
	_, err := w.s.Activations.Rev(docid)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
