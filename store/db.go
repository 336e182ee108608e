package store

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Sentinel errors of the store. Every error returned wraps one of them or an I/O error.
var (
	// ErrNotFound: no document has this id.
	ErrNotFound = errors.New("document not found")
	// ErrConflict: the revision given does not match the stored one (or the document exists
	// when a create was asked for). CouchDB answers 409 in the same cases.
	ErrConflict = errors.New("document update conflict")
	// ErrBadDocument: the id or body cannot be stored (empty id, body not a JSON object).
	ErrBadDocument = errors.New("bad document")
	// ErrClosed: the database was closed.
	ErrClosed = errors.New("store closed")
)

// Doc is one stored document. Body is the document's JSON object without the CouchDB fields
// _id and _rev, which are carried in ID and Rev.
type Doc struct {
	ID, Rev string
	Body    json.RawMessage
}

// JSON returns the document the way CouchDB serves it: Body with "_id" and "_rev" as its
// first two fields.
func (d Doc) JSON() []byte {
	id, _ := json.Marshal(d.ID)
	rev, _ := json.Marshal(d.Rev)
	rest := bytes.TrimSpace(d.Body)
	out := make([]byte, 0, len(rest)+len(id)+len(rev)+20)
	out = append(out, `{"_id":`...)
	out = append(out, id...)
	out = append(out, `,"_rev":`...)
	out = append(out, rev...)
	if len(rest) > 2 { // more than "{}"
		out = append(out, ',')
		out = append(out, bytes.TrimSpace(rest[1:])...)
	} else {
		out = append(out, '}')
	}
	return out
}

// indexer is told, under the database's write lock, about every document that becomes
// current (put) or stops existing (delete), including during replay at open.
type indexer interface {
	put(id string, body []byte)
	remove(id string)
}

type entry struct {
	rev       string
	off, size int64 // where the body is in the file
	recSize   int64 // the whole record, for garbage accounting
}

// DB is one database: documents keyed by id, persisted as an append-only log file.
//
// A DB is safe for concurrent use. Writes are ordered; a write returns once the record is in
// the operating system (it survives a crash of this process); Sync makes it survive a crash of
// the machine. Reads never block on each other.
type DB struct {
	name string
	path string

	mu      sync.RWMutex
	f       *os.File
	end     int64
	live    map[string]entry
	garbage int64
	dirty   bool
	closed  bool
	idx     indexer
	buf     []byte
}

// openDB opens (creating if needed) the log at path, replays it, cuts off a torn tail and
// compacts it when more than half of it is garbage.
func openDB(path string, idx indexer) (*DB, error) {
	db := &DB{name: strings.TrimSuffix(filepath.Base(path), ".log"), path: path, live: map[string]entry{}, idx: idx}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	end, err := replay(f, func(r record) error {
		db.apply(r)
		return nil
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: replay %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: stat %s: %w", path, err)
	}
	if st.Size() != end {
		// A torn write from a crash: drop it so the next append starts on a record boundary.
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: cut torn tail of %s at %d: %w", path, end, err)
		}
	}
	db.f, db.end = f, end
	if db.garbage > 1<<20 && db.garbage > end/2 {
		if err := db.compact(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return db, nil
}

// apply makes a replayed or freshly written record current. Caller holds mu (or is opening).
func (db *DB) apply(r record) {
	if old, ok := db.live[r.id]; ok {
		db.garbage += old.recSize
		delete(db.live, r.id)
		if db.idx != nil {
			db.idx.remove(r.id)
		}
	}
	switch r.op {
	case opPut:
		db.live[r.id] = entry{rev: r.rev, off: r.bodyOff, size: r.bodySize, recSize: r.size}
		if db.idx != nil {
			db.idx.put(r.id, r.body)
		}
	case opDelete:
		db.garbage += r.size // a tombstone is garbage once applied
	}
}

// compact rewrites the live documents into a new file and swaps it in atomically.
func (db *DB) compact() error {
	tmp := db.path + ".compact"
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: compact %s: %w", db.path, err)
	}
	ids := make([]string, 0, len(db.live))
	for id := range db.live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	live := make(map[string]entry, len(ids))
	var (
		off int64
		buf []byte
	)
	for _, id := range ids {
		e := db.live[id]
		body := make([]byte, e.size)
		if _, err := db.f.ReadAt(body, e.off); err != nil {
			out.Close()
			os.Remove(tmp)
			return fmt.Errorf("store: compact %s: read %q: %w", db.path, id, err)
		}
		var bodyAt int
		buf, bodyAt = encodeRecord(buf[:0], opPut, id, e.rev, body)
		if _, err := out.Write(buf); err != nil {
			out.Close()
			os.Remove(tmp)
			return fmt.Errorf("store: compact %s: %w", db.path, err)
		}
		live[id] = entry{rev: e.rev, off: off + int64(bodyAt), size: e.size, recSize: int64(len(buf))}
		off += int64(len(buf))
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compact %s: sync: %w", db.path, err)
	}
	if err := os.Rename(tmp, db.path); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compact %s: rename: %w", db.path, err)
	}
	syncDir(filepath.Dir(db.path))
	db.f.Close()
	db.f, db.end, db.live, db.garbage = out, off, live, 0
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Name is the database's name (the log file's base name).
func (db *DB) Name() string { return db.name }

// Get returns the current document with this id, or an error wrapping ErrNotFound.
func (db *DB) Get(id string) (Doc, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return Doc{}, ErrClosed
	}
	e, ok := db.live[id]
	if !ok {
		return Doc{}, fmt.Errorf("store: %s/%s: %w", db.name, id, ErrNotFound)
	}
	body := make([]byte, e.size)
	if _, err := db.f.ReadAt(body, e.off); err != nil {
		return Doc{}, fmt.Errorf("store: %s/%s: read: %w", db.name, id, err)
	}
	return Doc{ID: id, Rev: e.rev, Body: body}, nil
}

// Rev returns the current revision of a document, or an error wrapping ErrNotFound.
func (db *DB) Rev(id string) (string, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return "", ErrClosed
	}
	e, ok := db.live[id]
	if !ok {
		return "", fmt.Errorf("store: %s/%s: %w", db.name, id, ErrNotFound)
	}
	return e.rev, nil
}

// Put stores body as the new current version of id and returns its revision. rev must be the
// current revision, or empty when the document must not exist yet; otherwise the error wraps
// ErrConflict. body must be a JSON object; "_id" and "_rev" fields in it are dropped.
func (db *DB) Put(id, rev string, body []byte) (string, error) {
	clean, err := cleanBody(id, body)
	if err != nil {
		return "", fmt.Errorf("store: %s/%s: %w", db.name, id, err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return "", ErrClosed
	}
	cur, exists := db.live[id]
	switch {
	case exists && cur.rev != rev:
		return "", fmt.Errorf("store: %s/%s: have revision %s, got %q: %w", db.name, id, cur.rev, rev, ErrConflict)
	case !exists && rev != "":
		return "", fmt.Errorf("store: %s/%s: revision %q given for a new document: %w", db.name, id, rev, ErrConflict)
	}
	newRev := nextRev(cur.rev, clean)
	if err := db.append(opPut, id, newRev, clean); err != nil {
		return "", err
	}
	return newRev, nil
}

// Delete removes id. rev must be its current revision; an empty rev deletes whatever version
// is current. The error wraps ErrNotFound or ErrConflict.
func (db *DB) Delete(id, rev string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return ErrClosed
	}
	cur, exists := db.live[id]
	if !exists {
		return fmt.Errorf("store: %s/%s: %w", db.name, id, ErrNotFound)
	}
	if rev != "" && cur.rev != rev {
		return fmt.Errorf("store: %s/%s: have revision %s, got %q: %w", db.name, id, cur.rev, rev, ErrConflict)
	}
	return db.append(opDelete, id, nextRev(cur.rev, nil), nil)
}

// append writes one record and applies it. Caller holds mu for writing.
func (db *DB) append(op byte, id, rev string, body []byte) error {
	var bodyAt int
	db.buf, bodyAt = encodeRecord(db.buf[:0], op, id, rev, body)
	if len(db.buf) > maxRecord {
		return fmt.Errorf("store: %s/%s: document of %d bytes exceeds %d: %w", db.name, id, len(db.buf), maxRecord, ErrBadDocument)
	}
	n, err := db.f.WriteAt(db.buf, db.end)
	if err != nil {
		// Leave end where it was: the partial record is overwritten by the next append and
		// would be cut off as a torn tail on the next open.
		return fmt.Errorf("store: %s/%s: write: %w", db.name, id, err)
	}
	r := record{op: op, id: id, rev: rev, body: body, offset: db.end, size: int64(n),
		bodyOff: db.end + int64(bodyAt), bodySize: int64(len(body))}
	db.end += int64(n)
	db.dirty = true
	db.apply(r)
	return nil
}

// Scan calls fn with every current document whose id starts with prefix, in id order, until
// fn returns false. fn must not call back into the DB.
func (db *DB) Scan(prefix string, fn func(d Doc) bool) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	ids := make([]string, 0, 16)
	for id := range db.live {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := db.live[id]
		body := make([]byte, e.size)
		if _, err := db.f.ReadAt(body, e.off); err != nil {
			return fmt.Errorf("store: %s/%s: read: %w", db.name, id, err)
		}
		if !fn(Doc{ID: id, Rev: e.rev, Body: body}) {
			return nil
		}
	}
	return nil
}

// Len is the number of current documents.
func (db *DB) Len() int {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return len(db.live)
}

// Sync flushes written records to stable storage.
func (db *DB) Sync() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.syncLocked()
}

func (db *DB) syncLocked() error {
	if db.closed || !db.dirty {
		return nil
	}
	if err := db.f.Sync(); err != nil {
		return fmt.Errorf("store: %s: sync: %w", db.name, err)
	}
	db.dirty = false
	return nil
}

// Close syncs and closes the file. It is safe to call more than once.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	err := db.syncLocked()
	if cerr := db.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: %s: close: %w", db.name, cerr)
	}
	db.closed = true
	return err
}

// cleanBody checks that body is a JSON object and drops CouchDB's _id and _rev from it.
func cleanBody(id string, body []byte) ([]byte, error) {
	if id == "" {
		return nil, fmt.Errorf("empty document id: %w", ErrBadDocument)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("body is not a JSON object: %w", ErrBadDocument)
	}
	_, hasID := obj["_id"]
	_, hasRev := obj["_rev"]
	if !hasID && !hasRev {
		return bytes.TrimSpace(body), nil
	}
	// Re-encoding loses the original key order; acceptable because JSON objects are unordered
	// and only documents that carried CouchDB fields take this path.
	delete(obj, "_id")
	delete(obj, "_rev")
	return json.Marshal(obj)
}

// nextRev returns CouchDB's style of revision: generation-md5(body).
func nextRev(cur string, body []byte) string {
	gen := 0
	if i := strings.IndexByte(cur, '-'); i > 0 {
		gen, _ = strconv.Atoi(cur[:i])
	}
	sum := md5.Sum(body)
	return strconv.Itoa(gen+1) + "-" + hex.EncodeToString(sum[:])
}
