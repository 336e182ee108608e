// Package store is the persistent embedded document store of `snapinvoker standalone`: the
// three OpenWhisk databases (entities, activations, subjects) as append-only logs under one data
// directory. It stands in for CouchDB on one machine: documents are JSON objects keyed by id
// with CouchDB-style revisions, and activations can be listed the way the controller's
// activation views list them.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrLocked: another process holds the data directory.
var ErrLocked = errors.New("data directory in use by another process")

// Database names, the same as the OpenWhisk CouchDB defaults of the Helm chart without prefix.
const (
	WhisksDB      = "whisks"
	ActivationsDB = "activations"
	SubjectsDB    = "subjects"
)

// Options tune a Store.
type Options struct {
	// SyncInterval is how often written records are flushed to stable storage; 0 means one
	// second. A write is in the operating system when it returns whatever this is.
	SyncInterval time.Duration
}

// Store is the set of databases under one data directory. It is safe for concurrent use.
type Store struct {
	dir  string
	lock *os.File

	Whisks      *DB // actions (and any other entity), id "namespace[/package]/name"
	Activations *DB // activation records, id "namespace/activationId"
	Subjects    *DB // auth records, id = subject

	actIdx *activationIndex

	stop     chan struct{}
	done     chan struct{}
	closeErr error
	once     sync.Once
}

// Open opens or creates the store in dir. Only one process may hold a data directory at a
// time; a second Open fails with ErrLocked.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: %s: %w (%v)", dir, ErrLocked, err)
	}
	s := &Store{dir: dir, lock: lock, actIdx: newActivationIndex(), stop: make(chan struct{}), done: make(chan struct{})}
	open := func(name string, idx indexer) (*DB, error) {
		return openDB(filepath.Join(dir, name+".log"), idx)
	}
	if s.Whisks, err = open(WhisksDB, nil); err == nil {
		if s.Activations, err = open(ActivationsDB, s.actIdx); err == nil {
			s.Subjects, err = open(SubjectsDB, nil)
		}
	}
	if err != nil {
		s.closeDBs()
		lock.Close()
		return nil, err
	}
	interval := opts.SyncInterval
	if interval <= 0 {
		interval = time.Second
	}
	go s.syncLoop(interval)
	return s, nil
}

// Clean removes the store's files from dir (what `standalone --clean` does). The directory
// must not be open.
func Clean(dir string) error {
	for _, name := range []string{WhisksDB, ActivationsDB, SubjectsDB} {
		for _, suffix := range []string{".log", ".log.compact"} {
			if err := os.Remove(filepath.Join(dir, name+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("store: clean %s: %w", dir, err)
			}
		}
	}
	return nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) syncLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sync()
		}
	}
}

// Sync flushes every database to stable storage.
func (s *Store) Sync() error {
	var errs []error
	for _, db := range []*DB{s.Whisks, s.Activations, s.Subjects} {
		if err := db.Sync(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) closeDBs() error {
	var errs []error
	for _, db := range []*DB{s.Whisks, s.Activations, s.Subjects} {
		if db != nil {
			if err := db.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Close flushes and closes every database and releases the directory. Safe to call twice.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.closeDBs()
		s.lock.Close()
	})
	return s.closeErr
}

// QueryActivations returns the activation records of namespace ns that match q, newest first,
// and how many matched before Skip and Limit.
func (s *Store) QueryActivations(ns string, q ActivationQuery) ([]Doc, int, error) {
	ids, total := s.actIdx.query(ns, q)
	docs := make([]Doc, 0, len(ids))
	for _, id := range ids {
		d, err := s.Activations.Get(id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between the index query and the read
		}
		if err != nil {
			return nil, 0, err
		}
		docs = append(docs, d)
	}
	return docs, total, nil
}
