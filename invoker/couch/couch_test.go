package couch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/invoker/internal/testenv"
	"go.uber.org/zap/zaptest"
)

// fixture loads a document from testdata without its _rev and _attachments (a new database
// assigns its own revisions).
func fixture(t *testing.T, name string) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "_rev")
	delete(doc, "_attachments")
	out, _ := json.Marshal(doc)
	return doc["_id"].(string), out
}

func setup(t *testing.T, persistent bool) (*testenv.Couch, *Client) {
	t.Helper()
	srv := testenv.StartCouch(t, persistent)
	c, err := New(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"test_whisks", "test_activations"} {
		if err := c.CreateDB(context.Background(), db); err != nil {
			t.Fatal(err)
		}
	}
	return srv, c
}

func TestActionsInlineRevisionsAndCache(t *testing.T) {
	srv, c := setup(t, false)
	ctx := context.Background()
	id, doc := fixture(t, "action-doc-nodejs-inline.json")
	rev1, err := c.PutDoc(ctx, "test_whisks", id, doc)
	if err != nil {
		t.Fatal(err)
	}
	// A second revision with other limits.
	var m map[string]any
	json.Unmarshal(doc, &m)
	m["_rev"] = rev1
	m["version"] = "0.0.4"
	doc2, _ := json.Marshal(m)
	rev2, err := c.PutDoc(ctx, "test_whisks", id, doc2)
	if err != nil {
		t.Fatal(err)
	}

	a := NewActions(c, "test_whisks", 8)
	cases := []struct {
		rev, wantRev, wantVersion string
	}{
		{rev2, rev2, "0.0.4"},
		{rev1, rev1, "0.0.3"}, // an older revision is still readable until compaction
		{"", rev2, "0.0.4"},   // no revision: the latest
	}
	for _, tc := range cases {
		d, err := a.Get(ctx, id, tc.rev)
		if err != nil {
			t.Fatalf("Get(%q): %v", tc.rev, err)
		}
		var got struct{ Version, Rev string }
		var raw map[string]any
		json.Unmarshal(d.JSON, &raw)
		got.Version, _ = raw["version"].(string)
		if d.Rev != tc.wantRev || got.Version != tc.wantVersion || d.Attachment != nil {
			t.Fatalf("Get(%q) = rev %s version %s attachment %v; want %s %s none", tc.rev, d.Rev, got.Version, d.Attachment != nil, tc.wantRev, tc.wantVersion)
		}
	}
	if a.CacheLen() != 2 {
		t.Fatalf("cache holds %d documents, want 2 (the two revisions asked for by name)", a.CacheLen())
	}
	// With the server gone, cached (docid, rev) pairs still answer; the latest cannot.
	srv.Stop()
	if _, err := a.Get(ctx, id, rev1); err != nil {
		t.Fatalf("cached Get with the server down: %v", err)
	}
	if _, err := a.Get(ctx, id, ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("uncached Get with the server down = %v, want ErrUnavailable", err)
	}
}

func TestActionsMissing(t *testing.T) {
	_, c := setup(t, false)
	ctx := context.Background()
	id, doc := fixture(t, "action-doc-nodejs-inline.json")
	if _, err := c.PutDoc(ctx, "test_whisks", id, doc); err != nil {
		t.Fatal(err)
	}
	a := NewActions(c, "test_whisks", 8)
	for _, tc := range []struct{ id, rev string }{
		{"guest/nosuch", ""},
		{"guest/nosuch", "1-8f1c2d3e4b5a69788796a5b4c3d2e1f0"},
		{id, "7-00000000000000000000000000000000"}, // a revision that never existed
	} {
		if _, err := a.Get(ctx, tc.id, tc.rev); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s, %s) = %v, want ErrNotFound", tc.id, tc.rev, err)
		}
	}
	if _, err := a.Get(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
}

func TestActionsAttachment(t *testing.T) {
	_, c := setup(t, false)
	ctx := context.Background()
	id, doc := fixture(t, "action-doc-java-attachment.json")
	rev, err := c.PutDoc(ctx, "test_whisks", id, doc)
	if err != nil {
		t.Fatal(err)
	}
	jar := bytes.Repeat([]byte("PK\x03\x04jar bytes "), 4000)
	rev, err = c.PutAttachment(ctx, "test_whisks", id, rev, "8d0a8f3e-1b7c-4c3e-9a51-5e6f2b7d9c10", "application/octet-stream", jar)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewActions(c, "test_whisks", 8).Get(ctx, id, rev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Attachment, jar) || d.AttachmentType != "application/octet-stream" || d.AttachmentName != "8d0a8f3e-1b7c-4c3e-9a51-5e6f2b7d9c10" {
		t.Fatalf("attachment = %d bytes %q %q, want the %d bytes put", len(d.Attachment), d.AttachmentType, d.AttachmentName, len(jar))
	}
	// A document naming an attachment that is not there is an error naming it.
	var m map[string]any
	json.Unmarshal(doc, &m)
	m["_id"] = "guest/broken"
	bad, _ := json.Marshal(m)
	brev, err := c.PutDoc(ctx, "test_whisks", "guest/broken", bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewActions(c, "test_whisks", 8).Get(ctx, "guest/broken", brev); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing attachment = %v, want ErrNotFound", err)
	}
}

func activationDoc(i int) (string, json.RawMessage) {
	id := fmt.Sprintf("guest/%032x", i)
	return id, json.RawMessage(fmt.Sprintf(`{"_id":%q,"entityType":"activation","namespace":"guest","activationId":"%032x","response":{"statusCode":0,"result":{}}}`, id, i))
}

func TestStoreBatchesAndConflicts(t *testing.T) {
	_, c := setup(t, false)
	s := NewStore(c, "test_activations", 7, zaptest.NewLogger(t))
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		id, doc := activationDoc(i)
		s.Put(id, doc, func(err error) { errs[i] = err; wg.Done() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	ctx := context.Background()
	for i := range 50 {
		id, _ := activationDoc(i)
		if ok, err := c.Exists(ctx, "test_activations", id); err != nil || !ok {
			t.Fatalf("record %s stored = %v, %v", id, ok, err)
		}
	}
	// The same activation stored again (a redelivery) is not an error.
	id, doc := activationDoc(3)
	done := make(chan error, 1)
	s.Put(id, doc, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("storing an existing record: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.Put(id, doc, func(err error) { done <- err })
	if err := <-done; err == nil {
		t.Fatal("Put after Close succeeded")
	}
}

// TestStoreOutage: records put while CouchDB is down are written once it is back; none is lost.
func TestStoreOutage(t *testing.T) {
	srv, c := setup(t, true)
	s := NewStore(c, "test_activations", 500, zaptest.NewLogger(t))
	// One record written before the outage: pouchdb-server opens a new database lazily and
	// would forget an unused one across a restart.
	first := make(chan error, 1)
	fid, fdoc := activationDoc(999)
	s.Put(fid, fdoc, func(err error) { first <- err })
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	var mu sync.Mutex
	stored := 0
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		id, doc := activationDoc(i)
		s.Put(id, doc, func(err error) {
			if err != nil {
				t.Errorf("record %s: %v", id, err)
			}
			mu.Lock()
			stored++
			mu.Unlock()
			wg.Done()
		})
	}
	mu.Lock()
	if stored != 0 {
		t.Fatalf("%d records reported stored while CouchDB was down", stored)
	}
	mu.Unlock()
	srv.Start()
	wg.Wait()
	ctx := context.Background()
	for i := range 20 {
		id, _ := activationDoc(i)
		if ok, err := c.Exists(ctx, "test_activations", id); err != nil || !ok {
			t.Fatalf("record %s stored = %v, %v", id, ok, err)
		}
	}
	// Closing while CouchDB is down gives up when the context ends, reporting every record.
	srv.Stop()
	failed := make(chan error, 3)
	for i := 100; i < 103; i++ {
		id, doc := activationDoc(i)
		s.Put(id, doc, func(err error) { failed <- err })
	}
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := s.Close(cctx); err == nil {
		t.Fatal("Close with CouchDB down reported everything written")
	}
	for range 3 {
		if err := <-failed; err == nil {
			t.Fatal("a record was reported stored with CouchDB down")
		}
	}
}
