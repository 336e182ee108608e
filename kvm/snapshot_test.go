package kvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// echoSnapshot boots echo, runs it to its first stdin read and writes a snapshot.
func echoSnapshot(t testing.TB, h *Host) *Snapshot {
	t.Helper()
	var c captured
	return snapshotOf(t, h, startEcho(t, h, &c), "echo.snap")
}

func TestSnapshotRestoreManyInParallel(t *testing.T) {
	h := openHost(t)
	snap := echoSnapshot(t, h)
	pool := h.NewPool(context.Background(), 4, snap)
	defer pool.Close()
	const n = 16
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var c captured
			restore := h.Restore
			if i%2 == 1 {
				restore = pool.Restore
			}
			g, err := restore(context.Background(), snap, c.config(Config{}))
			if err != nil {
				errs[i] = err
				return
			}
			defer g.Close()
			g.Feed([]byte(`{"value":{"same":true}}` + "\n"))
			ex, err := g.Run(context.Background())
			if err != nil || ex.Reason != BlockedOnRead {
				errs[i] = fmt.Errorf("run: %v %v %v", ex.Reason, ex.Err, err)
				return
			}
			results[i] = c.result.String()
		}(i)
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		if want := `{"echo":{"value":{"same":true}}}` + "\n"; results[i] != want {
			t.Fatalf("instance %d result %q, want %q", i, results[i], want)
		}
	}
}

func TestResetRestoresSnapshotStateExactly(t *testing.T) {
	h := openHost(t)
	snap := echoSnapshot(t, h)
	var c captured
	g := restored(t, h, snap, c.config(Config{}))
	for i := 0; i < 5; i++ {
		line := fmt.Sprintf(`{"value":{"i":%d}}`, i)
		if got, want := activate(t, g, &c, line), `{"echo":`+line+"}\n"; got != want {
			t.Fatalf("activation %d: %q, want %q", i, got, want)
		}
		if err := g.Reset(); err != nil {
			t.Fatal(err)
		}
		// After a reset, every page of guest memory equals the snapshot's.
		for off := 0; off < len(g.mem.b); off += pageSize {
			if string(g.mem.b[off:off+pageSize]) != string(snap.image[off:off+pageSize]) {
				t.Fatalf("after reset %d page %#x differs from the snapshot", i, off)
			}
		}
	}
	// A stdin line left half-read by the program is gone after a reset: fresh state each time.
	if got := activate(t, g, &c, `"x"`); got != `{"echo":"x"}`+"\n" {
		t.Fatalf("after resets: %q", got)
	}
}

func TestResetAfterFault(t *testing.T) {
	h := openHost(t)
	snap := echoSnapshot(t, h)
	var c captured
	g := restored(t, h, snap, c.config(Config{}))
	// Corrupt the program's memory so the next activation crashes, then reset.
	page := g.regs.RCX &^ (pageSize - 1) // the code the read returns to
	clear(g.mem.b[page : page+pageSize])
	g.Feed([]byte("1\n"))
	ex, err := g.Run(context.Background())
	if err != nil || ex.Reason != Fault {
		t.Fatalf("corrupted guest: %v %v", ex.Reason, err)
	}
	g.mem.markDirty(page, pageSize) // the test wrote behind the VMM's back
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := activate(t, g, &c, "2"); got != `{"echo":2}`+"\n" {
		t.Fatalf("after reset from a fault: %q", got)
	}
}

func TestSnapshotRefusesBadFilesAndOtherHosts(t *testing.T) {
	h := openHost(t)
	snap := echoSnapshot(t, h)
	data, err := os.ReadFile(snap.path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := h.fingerprint
	h2 := *h
	h2.fingerprint = "vmx/OtherVendor/0000000000000000"
	if _, err := h2.OpenSnapshot(snap.path); !errors.Is(err, ErrIncompatibleSnapshot) {
		t.Errorf("other host: %v, want ErrIncompatibleSnapshot", err)
	}
	_ = other
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     []byte("NOTASNAPSHOT...."),
		"truncated": data[:len(data)/3],
		"header":    append(append([]byte{}, data[:12]...), []byte("{not json")...),
	} {
		if _, err := h.OpenSnapshot(write(name, b)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
	// A snapshot requested while the guest runs is refused.
	g, err := h.New(context.Background(), Config{Memory: 32 << 20}, build(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.WriteSnapshot(filepath.Join(dir, "x")); !errors.Is(err, ErrNotParked) {
		t.Errorf("snapshot of an unparked guest: %v", err)
	}
}

// TestSnapshotOfARestoredGuest takes a lineage snapshot: restore, serve an activation that
// changes state, snapshot again, and check the child carries that state.
func TestSnapshotOfARestoredGuest(t *testing.T) {
	h := openHost(t)
	parent := echoSnapshot(t, h)
	pool := h.NewPool(t.Context(), 1, nil) // sized for other snapshots: restore must still work
	defer pool.Close()
	var c captured
	g, err := pool.Restore(t.Context(), parent, c.config(Config{}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	activate(t, g, &c, `"first"`)
	childPath := filepath.Join(t.TempDir(), "child.snap")
	if err := g.WriteSnapshot(childPath); err != nil {
		t.Fatal(err)
	}
	child, err := h.OpenSnapshot(childPath)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	// The child's image equals the parent guest's memory at the moment of the snapshot, except
	// the clock page, which a snapshot never carries.
	for off := 0; off < len(g.mem.b); off += pageSize {
		if off == vvarAddr {
			continue
		}
		if !bytes.Equal(child.image[off:off+pageSize], g.mem.b[off:off+pageSize]) {
			t.Fatalf("child snapshot page %#x differs from the guest's memory", off)
		}
	}
	var c2 captured
	g2 := restored(t, h, child, c2.config(Config{}))
	if got := activate(t, g2, &c2, `"second"`); got != `{"echo":"second"}`+"\n" {
		t.Fatalf("child result %q", got)
	}
	// Resetting the parent-restored guest still returns it to the parent snapshot.
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(g.mem.b); off += pageSize {
		if !bytes.Equal(g.mem.b[off:off+pageSize], parent.image[off:off+pageSize]) {
			t.Fatalf("after reset page %#x differs from the parent snapshot", off)
		}
	}
}
