package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/snapinvoker/snapinvoker/invoker/couch"
)

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestPutGetRevisionsAndConflicts(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	db := s.Whisks

	rev1, err := db.Put("guest/hello", "", []byte(`{"name":"hello","version":"0.0.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rev1, "1-") || len(rev1) != 34 {
		t.Fatalf("first revision %q, want 1-<32 hex>", rev1)
	}
	if _, err := db.Put("guest/hello", "", []byte(`{}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over existing: err %v, want ErrConflict", err)
	}
	if _, err := db.Put("guest/hello", "1-bogus", []byte(`{}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("update with stale rev: err %v, want ErrConflict", err)
	}
	if _, err := db.Put("guest/other", rev1, []byte(`{}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("rev for new doc: err %v, want ErrConflict", err)
	}
	rev2, err := db.Put("guest/hello", rev1, []byte(`{"_id":"x","_rev":"y","name":"hello","version":"0.0.2"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rev2, "2-") {
		t.Fatalf("second revision %q, want 2-…", rev2)
	}
	d, err := db.Get("guest/hello")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(d.JSON(), &got); err != nil {
		t.Fatalf("Doc.JSON not JSON: %v: %s", err, d.JSON())
	}
	if got["_id"] != "guest/hello" || got["_rev"] != rev2 || got["version"] != "0.0.2" {
		t.Fatalf("document %s: want _id guest/hello, _rev %s, version 0.0.2", d.JSON(), rev2)
	}
	if err := db.Delete("guest/hello", rev1); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete with stale rev: %v", err)
	}
	if err := db.Delete("guest/hello", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get("guest/hello"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := db.Delete("guest/hello", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestBadDocuments(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	for _, tc := range []struct{ id, body string }{
		{"", `{}`},
		{"a", `[1,2]`},
		{"a", `"x"`},
		{"a", `{"a":`},
		{"a", `null`},
	} {
		if _, err := s.Whisks.Put(tc.id, "", []byte(tc.body)); !errors.Is(err, ErrBadDocument) {
			t.Errorf("Put(%q, %s): err %v, want ErrBadDocument", tc.id, tc.body, err)
		}
	}
}

func TestDocJSONEmptyBody(t *testing.T) {
	d := Doc{ID: "a/b", Rev: "1-x", Body: json.RawMessage(`{}`)}
	if got := string(d.JSON()); got != `{"_id":"a/b","_rev":"1-x"}` {
		t.Fatalf("JSON() = %s", got)
	}
}

func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	rev, _ := s.Whisks.Put("guest/a", "", []byte(`{"v":1}`))
	rev, _ = s.Whisks.Put("guest/a", rev, []byte(`{"v":2}`))
	s.Whisks.Put("guest/b", "", []byte(`{"v":3}`))
	s.Whisks.Delete("guest/b", "")
	putActivation(t, s, "guest", "a1", "hello", 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openT(t, dir)
	defer s.Close()
	d, err := s.Whisks.Get("guest/a")
	if err != nil || string(d.Body) != `{"v":2}` || d.Rev != rev {
		t.Fatalf("after reopen: %+v %v, want v 2 at %s", d, err, rev)
	}
	if _, err := s.Whisks.Get("guest/b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted doc came back: %v", err)
	}
	docs, total, err := s.QueryActivations("guest", ActivationQuery{})
	if err != nil || total != 1 || len(docs) != 1 || docs[0].ID != "guest/a1" {
		t.Fatalf("activations after reopen: %v total %d err %v", docs, total, err)
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	s.Whisks.Put("guest/a", "", []byte(`{"v":1}`))
	s.Whisks.Put("guest/b", "", []byte(`{"v":2}`))
	s.Close()

	path := filepath.Join(dir, WhisksDB+".log")
	info, _ := os.Stat(path)
	full := info.Size()
	// Chop the last record in half, as a crash in the middle of a write would.
	if err := os.Truncate(path, full-5); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if _, err := s.Whisks.Get("guest/a"); err != nil {
		t.Fatalf("intact record lost: %v", err)
	}
	if _, err := s.Whisks.Get("guest/b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("torn record survived: %v", err)
	}
	if _, err := s.Whisks.Put("guest/c", "", []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Garbage after the last record (a corrupted checksum) is cut off too.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 9, 1, 2, 3, 4, 'P', 1, 'x', 0, '{'})
	f.Close()
	s = openT(t, dir)
	defer s.Close()
	for _, id := range []string{"guest/a", "guest/c"} {
		if _, err := s.Whisks.Get(id); err != nil {
			t.Fatalf("%s lost after corrupt tail: %v", id, err)
		}
	}
	if s.Whisks.Len() != 2 {
		t.Fatalf("Len %d, want 2", s.Whisks.Len())
	}
}

func TestCompactionKeepsLiveDocuments(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	big := `{"pad":"` + strings.Repeat("x", 64<<10) + `"}`
	rev := ""
	var err error
	for i := 0; i < 40; i++ { // 40 × 64 KiB of history for one document
		if rev, err = s.Whisks.Put("guest/churn", rev, []byte(big)); err != nil {
			t.Fatal(err)
		}
	}
	s.Whisks.Put("guest/keep", "", []byte(`{"keep":true}`))
	s.Close()
	path := filepath.Join(dir, WhisksDB+".log")
	before, _ := os.Stat(path)

	s = openT(t, dir)
	after, _ := os.Stat(path)
	if after.Size() >= before.Size()/4 {
		t.Fatalf("log not compacted: %d bytes before, %d after", before.Size(), after.Size())
	}
	d, err := s.Whisks.Get("guest/churn")
	if err != nil || d.Rev != rev || string(d.Body) != big {
		t.Fatalf("churned document after compaction: rev %s err %v", d.Rev, err)
	}
	if _, err := s.Whisks.Put("guest/keep2", "", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, dir)
	defer s.Close()
	if s.Whisks.Len() != 3 {
		t.Fatalf("after compaction and reopen Len = %d, want 3", s.Whisks.Len())
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	defer s.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestClean(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	s.Whisks.Put("guest/a", "", []byte(`{}`))
	s.Close()
	if err := Clean(dir); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	defer s.Close()
	if s.Whisks.Len() != 0 {
		t.Fatal("Clean left documents behind")
	}
}

func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				putActivation(t, s, "guest", fmt.Sprintf("w%di%d", w, i), "hello", int64(w*1000+i))
				s.QueryActivations("guest", ActivationQuery{Limit: 5})
			}
		}(w)
	}
	// Contending updaters of one document: exactly one wins each round.
	rev, _ := s.Whisks.Put("guest/shared", "", []byte(`{}`))
	wins := make(chan string, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if r, err := s.Whisks.Put("guest/shared", rev, []byte(fmt.Sprintf(`{"w":%d}`, w))); err == nil {
				wins <- r
			} else if !errors.Is(err, ErrConflict) {
				t.Errorf("update: %v", err)
			}
		}(w)
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d concurrent updates from the same revision won, want 1", n)
	}
	s.Close()
	s = openT(t, dir)
	defer s.Close()
	if _, total, _ := s.QueryActivations("guest", ActivationQuery{}); total != 400 {
		t.Fatalf("total %d activations after reopen, want 400", total)
	}
}

func putActivation(t *testing.T, s *Store, ns, id, path string, start int64) {
	t.Helper()
	body := fmt.Sprintf(`{"namespace":%q,"name":%q,"activationId":%q,"start":%d,"annotations":[{"key":"path","value":%q}]}`,
		ns, path[strings.LastIndex(path, "/")+1:], id, start, ns+"/"+path)
	if _, err := s.Activations.Put(ns+"/"+id, "", []byte(body)); err != nil {
		t.Error(err)
	}
}

func TestQueryActivations(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	putActivation(t, s, "guest", "a", "hello", 10)
	putActivation(t, s, "guest", "b", "pkg/hello", 20)
	putActivation(t, s, "guest", "c", "hello", 30)
	putActivation(t, s, "guest", "d", "echo", 40)
	putActivation(t, s, "other", "e", "hello", 50)
	putActivation(t, s, "guest", "f", "hello", 30) // same start as c: ordered by id

	ids := func(docs []Doc) string {
		var out []string
		for _, d := range docs {
			out = append(out, strings.TrimPrefix(d.ID, "guest/"))
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name  string
		q     ActivationQuery
		want  string
		total int
	}{
		{"all newest first", ActivationQuery{}, "d,f,c,b,a", 5},
		{"limit", ActivationQuery{Limit: 2}, "d,f", 5},
		{"skip", ActivationQuery{Skip: 3}, "b,a", 5},
		{"skip past end", ActivationQuery{Skip: 9}, "", 5},
		{"name", ActivationQuery{Name: "hello"}, "f,c,a", 3},
		{"package name", ActivationQuery{Name: "pkg/hello"}, "b", 1},
		{"since", ActivationQuery{Since: 30}, "d,f,c", 3},
		{"upto", ActivationQuery{Upto: 20}, "b,a", 2},
		{"window", ActivationQuery{Since: 20, Upto: 30, Limit: 2}, "f,c", 3},
		{"name and window", ActivationQuery{Name: "hello", Since: 11, Upto: 40}, "f,c", 2},
	} {
		docs, total, err := s.QueryActivations("guest", tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(docs); got != tc.want || total != tc.total {
			t.Errorf("%s: got %q total %d, want %q total %d", tc.name, got, total, tc.want, tc.total)
		}
	}
	s.Activations.Delete("guest/c", "")
	if docs, _, _ := s.QueryActivations("guest", ActivationQuery{Name: "hello"}); ids(docs) != "f,a" {
		t.Errorf("after delete: %q", ids(docs))
	}
	if docs, _, _ := s.QueryActivations("nobody", ActivationQuery{}); len(docs) != 0 {
		t.Errorf("unknown namespace returned %d", len(docs))
	}
}

// FuzzOpenLog feeds arbitrary bytes as a log file: opening must never panic, and the store
// must accept writes afterwards and keep them across a reopen.
func FuzzOpenLog(f *testing.F) {
	good, _ := encodeRecord(nil, opPut, "guest/a", "1-x", []byte(`{"a":1}`))
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good[:7]...))
	f.Add([]byte{0, 0, 0, 3, 0, 0, 0, 0, 'P', 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, WhisksDB+".log"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open on arbitrary log: %v", err)
		}
		if _, err := s.Whisks.Put("fuzz/new", "", []byte(`{"ok":true}`)); err != nil && !errors.Is(err, ErrConflict) {
			t.Fatalf("Put after open: %v", err)
		}
		n := s.Whisks.Len()
		s.Close()
		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Whisks.Len() != n {
			t.Fatalf("reopen changed Len %d → %d", n, s.Whisks.Len())
		}
		if _, err := s.Whisks.Get("fuzz/new"); err != nil {
			t.Fatalf("written document lost: %v", err)
		}
	})
}

func TestInvokerAdapters(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if _, err := s.InvokerActions().Get(ctx, "guest/none", ""); !errors.Is(err, couch.ErrNotFound) {
		t.Fatalf("missing action: %v, want couch.ErrNotFound", err)
	}
	rev, _ := s.Whisks.Put("guest/hello", "", []byte(`{"name":"hello","exec":{"kind":"nodejs:20","code":"x"}}`))
	d, err := s.InvokerActions().Get(ctx, "guest/hello", "1-other")
	if err != nil || d.Rev != rev || d.DocID != "guest/hello" {
		t.Fatalf("Get = %+v, %v", d, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(d.JSON, &doc); err != nil || doc["_id"] != "guest/hello" || doc["_rev"] != rev {
		t.Fatalf("document JSON %s: %v", d.JSON, err)
	}
	w := s.InvokerActivations()
	var got []error
	w.Put("guest/a1", json.RawMessage(`{"_id":"guest/a1","namespace":"guest","start":5}`), func(err error) { got = append(got, err) })
	w.Put("guest/a1", json.RawMessage(`{"_id":"guest/a1"}`), func(err error) { got = append(got, err) })
	w.Put("guest/a2", json.RawMessage(`[]`), func(err error) { got = append(got, err) })
	if len(got) != 3 || got[0] != nil || !errors.Is(got[1], couch.ErrConflict) || !errors.Is(got[2], couch.ErrBadResponse) {
		t.Fatalf("Put results %v, want nil, ErrConflict, ErrBadResponse", got)
	}
	if docs, _, _ := s.QueryActivations("guest", ActivationQuery{}); len(docs) != 1 {
		t.Fatalf("%d activations listed, want 1", len(docs))
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestInvokerActionsFollowRevisions(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	a := s.InvokerActions()
	rev1, _ := s.Whisks.Put("guest/x", "", []byte(`{"v":1}`))
	d1, err := a.Get(ctx, "guest/x", rev1)
	if err != nil || d1.Rev != rev1 {
		t.Fatal(d1, err)
	}
	if again, _ := a.Get(ctx, "guest/x", rev1); again != d1 {
		t.Fatal("the current revision was read again instead of reused")
	}
	rev2, _ := s.Whisks.Put("guest/x", rev1, []byte(`{"v":2}`))
	d2, err := a.Get(ctx, "guest/x", rev2)
	if err != nil || d2.Rev != rev2 || !strings.Contains(string(d2.JSON), `"v":2`) {
		t.Fatalf("after an update: %+v %v", d2, err)
	}
	s.Whisks.Delete("guest/x", "")
	if _, err := a.Get(ctx, "guest/x", rev2); !errors.Is(err, couch.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
