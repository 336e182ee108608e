package snapshotcache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	sc "github.com/snapinvoker/snapinvoker/snapshotcache"
	"github.com/snapinvoker/snapinvoker/snapshotcache/cachetest"
)

func pages(n int, fill byte) []byte {
	b := make([]byte, n*sc.PageSize)
	for i := range b {
		b[i] = fill + byte(i/sc.PageSize)
	}
	return b
}

func root(mem []byte) sc.BuildFunc {
	return func(context.Context) (*sc.Image, error) {
		return &sc.Image{Memory: sc.Bytes(mem), Size: int64(len(mem)), State: []byte("s")}, nil
	}
}

func get(t *testing.T, c sc.Cache, k sc.Key, b sc.BuildFunc) sc.Snapshot {
	t.Helper()
	h, err := c.Get(context.Background(), k, b)
	if err != nil {
		t.Fatalf("Get %s: %v", k, err)
	}
	return h
}

func present(c sc.Cache, k sc.Key) bool {
	h, err := c.Lookup(context.Background(), k)
	if err == nil {
		h.Release()
	}
	return err == nil
}

// The least recently used snapshot goes first; a Lookup counts as a use.
func TestStoreEvictsLeastRecentlyUsed(t *testing.T) {
	probe := openStore(t, t.TempDir(), cachetest.Budgets{})
	get(t, probe, sc.RuntimeKey("k", "probe"), root(pages(4, 1))).Release()
	one := probe.Stats().DiskBytes
	probe.Close()

	c := openStore(t, t.TempDir(), cachetest.Budgets{Disk: 2*one + one/2})
	defer c.Close()
	a, b, d := sc.RuntimeKey("k", "a"), sc.RuntimeKey("k", "b"), sc.RuntimeKey("k", "d")
	get(t, c, a, root(pages(4, 10))).Release()
	get(t, c, b, root(pages(4, 20))).Release()
	if !present(c, a) { // a is now more recent than b
		t.Fatal("a evicted while within budget")
	}
	get(t, c, d, root(pages(4, 30))).Release()
	if present(c, b) || !present(c, a) || !present(c, d) {
		t.Fatalf("after adding d: a %v b %v d %v; want b (least recently used) evicted", present(c, a), present(c, b), present(c, d))
	}
	// Composed images go before snapshots: with room for two records and one image, composing
	// d's image evicts a's image, not a.
	c2 := openStore(t, t.TempDir(), cachetest.Budgets{Disk: 2*one + 4*sc.PageSize + 1000})
	defer c2.Close()
	for _, k := range []sc.Key{a, d} {
		h := get(t, c2, k, root(pages(4, 40)))
		if _, err := h.Image(context.Background()); err != nil {
			t.Fatal(err)
		}
		if k == d && (c2.Stats().ImageEvictions != 1 || !present(c2, a)) {
			t.Fatalf("stats %+v: want a's image evicted, a kept", c2.Stats())
		}
		h.Release()
	}
	if st := c2.Stats(); st.Evictions != 0 || st.Snapshots != 2 {
		t.Fatalf("stats %+v: want no snapshot evicted", st)
	}
}

// A record damaged while the store runs is detected when its pages are read back, dropped with
// its descendants, and rebuilt; its pages are never used.
func TestStoreCorruptionWhileRunning(t *testing.T) {
	dir := t.TempDir()
	c := openStore(t, dir, cachetest.Budgets{Memory: 1}) // pages leave memory as soon as unused
	defer c.Close()
	rk := sc.RuntimeKey("python:3.11", "b")
	mem := pages(8, 1)
	get(t, c, rk, root(mem)).Release()
	if c.Stats().MemoryBytes >= int64(len(mem)) {
		t.Fatal("the root's pages stayed in memory; the test needs them read back from disk")
	}
	flipByte(t, dir, rk)
	fk := sc.FunctionKey("a", "1", "d")
	_, err := c.Get(context.Background(), fk, func(ctx context.Context) (*sc.Image, error) {
		p, err := c.Lookup(ctx, rk)
		if err != nil {
			return nil, err
		}
		return &sc.Image{Parent: p, Memory: sc.Bytes(mem), Size: int64(len(mem))}, nil
	})
	if !errors.Is(err, sc.ErrCorrupt) {
		t.Fatalf("child of a corrupt parent: %v, want ErrCorrupt", err)
	}
	if present(c, rk) || present(c, fk) {
		t.Fatal("corrupt snapshot still cached")
	}
	if st := c.Stats(); st.Corrupt != 1 {
		t.Fatalf("Corrupt %d, want 1", st.Corrupt)
	}
	h := get(t, c, rk, root(mem))
	defer h.Release()
	f, err := h.Image(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(mem))
	f.ReadAt(got, 0)
	if !slices.Equal(got, mem) {
		t.Fatal("rebuilt image differs")
	}
}

// At Open, a child whose parent's record is gone is dropped, and leftovers are cleaned.
func TestStoreOpenDropsOrphansAndLeftovers(t *testing.T) {
	dir := t.TempDir()
	c := openStore(t, dir, cachetest.Budgets{})
	rk, fk := sc.RuntimeKey("k", "b"), sc.FunctionKey("a", "1", "d")
	mem := pages(4, 1)
	get(t, c, rk, root(mem)).Release()
	child := slices.Clone(mem)
	child[0] ^= 1
	h := get(t, c, fk, func(ctx context.Context) (*sc.Image, error) {
		p, err := c.Lookup(ctx, rk)
		if err != nil {
			return nil, err
		}
		return &sc.Image{Parent: p, Memory: sc.Bytes(child), Size: int64(len(child))}, nil
	})
	if _, err := h.Image(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Release()
	c.Close()
	leftovers := []string{filepath.Join(dir, "snap", "x.snap.123.tmp"), filepath.Join(dir, "img", "stale.img")}
	for _, p := range leftovers {
		os.WriteFile(p, []byte("x"), 0o600)
	}
	os.Remove(filepath.Join(dir, "snap", rk.ID()+".snap"))
	c = openStore(t, dir, cachetest.Budgets{})
	defer c.Close()
	if present(c, fk) {
		t.Fatal("orphan child restored without its parent")
	}
	for _, p := range append(leftovers, filepath.Join(dir, "snap", fk.ID()+".snap")) {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	if st := c.Stats(); st.Snapshots != 0 || st.DiskBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A record renamed to another snapshot's file name is not trusted.
func TestStoreOpenChecksFileName(t *testing.T) {
	dir := t.TempDir()
	c := openStore(t, dir, cachetest.Budgets{})
	a, b := sc.RuntimeKey("k", "a"), sc.RuntimeKey("k", "b")
	get(t, c, a, root(pages(2, 1))).Release()
	c.Close()
	if err := os.Rename(filepath.Join(dir, "snap", a.ID()+".snap"), filepath.Join(dir, "snap", b.ID()+".snap")); err != nil {
		t.Fatal(err)
	}
	c = openStore(t, dir, cachetest.Budgets{})
	defer c.Close()
	if present(c, a) || present(c, b) || c.Stats().Corrupt != 1 {
		t.Fatalf("misnamed record: a %v b %v stats %+v", present(c, a), present(c, b), c.Stats())
	}
}

// A header-then-memory snapshot file (the layout package kvm writes) goes in through
// ImageFromFile and comes back out of Image byte for byte, including after a child diff.
func TestImageFromFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, hdr, mem []byte) *os.File {
		p := filepath.Join(dir, name)
		b := append(append(slices.Clone(hdr), make([]byte, 2*sc.PageSize-len(hdr))...), mem...)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	mem := pages(32, 3)
	clear(mem[5*sc.PageSize : 9*sc.PageSize]) // holes
	child := slices.Clone(mem)
	child[20*sc.PageSize] ^= 0xff
	rf, cf := file("rt.snap", []byte("SNAPKVM1 runtime header"), mem), file("fn.snap", []byte("SNAPKVM1 function header"), child)

	c := openStore(t, filepath.Join(dir, "cache"), cachetest.Budgets{})
	defer c.Close()
	rk, fk := sc.RuntimeKey("blackbox", "b"), sc.FunctionKey("a", "1", "d")
	get(t, c, rk, func(context.Context) (*sc.Image, error) { return sc.ImageFromFile(rf, 2*sc.PageSize) }).Release()
	h := get(t, c, fk, func(ctx context.Context) (*sc.Image, error) {
		img, err := sc.ImageFromFile(cf, 2*sc.PageSize)
		if err != nil {
			return nil, err
		}
		if img.Parent, err = c.Lookup(ctx, rk); err != nil {
			return nil, err
		}
		return img, nil
	})
	defer h.Release()
	f, err := h.Image(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.Name())
	want, _ := os.ReadFile(cf.Name())
	if !slices.Equal(got, want) {
		t.Fatal("composed image is not the VMM's snapshot file")
	}
	if st := c.Stats(); st.BytesPrivate != (32-4+1)*sc.PageSize {
		t.Fatalf("BytesPrivate %d: want the runtime's 28 data pages and the function's 1", st.BytesPrivate)
	}
	for _, off := range []int64{-sc.PageSize, 100, 2 * sc.PageSize * 100} {
		if _, err := sc.ImageFromFile(rf, off); !errors.Is(err, sc.ErrInvalid) {
			t.Errorf("memOffset %d: %v, want ErrInvalid", off, err)
		}
	}
}

// Small records (function diffs) keep their pages in memory within the memory budget, least
// recently used leaving first; pages held for a handle stay.
func TestStoreMemoryBudgetLRU(t *testing.T) {
	const budget = 16 * sc.PageSize // keeps records of up to 8 pages
	c := openStore(t, t.TempDir(), cachetest.Budgets{Memory: budget})
	defer c.Close()
	held := get(t, c, sc.RuntimeKey("k", "held"), root(pages(2, 1)))
	defer held.Release()
	for i := range 10 {
		get(t, c, sc.RuntimeKey("k", string(rune('a'+i))), root(pages(2, byte(10+i)))).Release()
	}
	st := c.Stats()
	if st.MemoryEvictions == 0 || st.MemoryBytes > budget {
		t.Fatalf("stats %+v: want evictions down to %d bytes", st, budget)
	}
	// Everything still composes from disk.
	for i := range 10 {
		h, err := c.Lookup(context.Background(), sc.RuntimeKey("k", string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		f, err := h.Image(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2*sc.PageSize)
		f.ReadAt(got, 0)
		if !slices.Equal(got, pages(2, byte(10+i))) {
			t.Fatalf("image %d differs", i)
		}
		h.Release()
	}
}

// A three-level lineage whose middle snapshot shrank its memory: pages of the root beyond the
// middle's size read as zero in the leaf, which grew back, unless the leaf wrote them.
func TestStoreDeepLineageShrinkThenGrow(t *testing.T) {
	for _, mem := range []int64{0, 1} { // pages kept in memory, or read from files
		c := openStore(t, t.TempDir(), cachetest.Budgets{Memory: mem})
		rootMem := pages(8, 1)
		mid := slices.Clone(rootMem[:4*sc.PageSize])
		mid[0] ^= 1
		leaf := append(slices.Clone(mid), make([]byte, 4*sc.PageSize)...)
		leaf[6*sc.PageSize] = 7 // written again after the shrink
		keys := []sc.Key{sc.RuntimeKey("k", "b"), sc.FunctionKey("a", "1", "d"), sc.FunctionKey("a", "1", "d+invocation")}
		mems := [][]byte{rootMem, mid, leaf}
		for i, k := range keys {
			h := get(t, c, k, func(ctx context.Context) (*sc.Image, error) {
				img := &sc.Image{Memory: sc.Bytes(mems[i]), Size: int64(len(mems[i]))}
				if i > 0 {
					p, err := c.Lookup(ctx, keys[i-1])
					if err != nil {
						return nil, err
					}
					img.Parent = p
				}
				return img, nil
			})
			f, err := h.Image(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(f.Name())
			if !slices.Equal(got, mems[i]) {
				t.Fatalf("memory budget %d: image of %s differs from its memory", mem, k)
			}
			h.Release()
		}
		if st := c.Stats(); st.BytesPrivate != (8+1+1)*sc.PageSize {
			t.Fatalf("BytesPrivate %d: want 8 root pages, 1 for the middle, 1 for the leaf", st.BytesPrivate)
		}
		c.Close()
	}
}
