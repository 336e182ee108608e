// Package cachetest is the conformance suite every snapshotcache.Cache implementation must pass,
// as containerd has for snapshotters. Call Run from a test of the implementation's package.
package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	sc "github.com/snapinvoker/snapinvoker/snapshotcache"
)

// Budgets configures the cache under test; 0 means the implementation's default.
type Budgets struct {
	Memory, Disk int64
}

// Harness tells the suite how to drive an implementation.
type Harness struct {
	// Open opens the cache kept in dir. Opening dir again after Close must find what was stored.
	Open func(t testing.TB, dir string, b Budgets) sc.Cache
	// Corrupt damages one byte of the persisted form of key in dir while the cache is closed.
	Corrupt func(t testing.TB, dir string, key sc.Key)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.Open == nil || h.Corrupt == nil {
		t.Fatal("cachetest: Harness.Open and Harness.Corrupt are required")
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"RootRoundTrip", testRootRoundTrip},
		{"ChildStoresOnlyDiff", testChildDiff},
		{"ChildDirtyHint", testChildDirtyHint},
		{"ChildResized", testChildResized},
		{"HitsAndMisses", testHitsAndMisses},
		{"SingleFlight100", testSingleFlight},
		{"BuildErrorShared", testBuildErrorShared},
		{"LeaderCancelledWaiterRebuilds", testLeaderCancelled},
		{"BuildPanic", testBuildPanic},
		{"InvalidInput", testInvalidInput},
		{"ReleaseTwiceAndUseAfterRelease", testRelease},
		{"EvictsUnusedNeverHeld", testEvictUnused},
		{"PinnedSurvives", testPinned},
		{"ParentKeptWhileChildCached", testParentKept},
		{"MemoryBudget", testMemoryBudget},
		{"PersistsAcrossRestart", testPersistence},
		{"CorruptParentRebuilt", testCorruptParent},
		{"CorruptChildRebuilt", testCorruptChild},
		{"Remove", testRemove},
		{"Closed", testClosed},
		{"MapPrivateIsolated", testMapPrivate},
		{"TouchedPages", testTouched},
		{"StateInImage", testStateInImage},
		{"ImageComposedOnce", testImageComposedOnce},
		{"ConcurrentMixed", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

const page = sc.PageSize

// memory returns n pages of deterministic content; every third page is zero.
func memory(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n*page)
	for p := 0; p < n; p++ {
		if p%3 == 2 {
			continue
		}
		for i := p * page; i < (p+1)*page; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	}
	return b
}

func nonZeroPages(b []byte) int64 {
	var n int64
	zero := make([]byte, page)
	for p := 0; p+page <= len(b); p += page {
		if !bytes.Equal(b[p:p+page], zero) {
			n++
		}
	}
	return n
}

func rootImage(mem []byte, state string) sc.BuildFunc {
	return func(context.Context) (*sc.Image, error) {
		return &sc.Image{State: []byte(state), Memory: sc.Bytes(mem), Size: int64(len(mem))}, nil
	}
}

// childImage builds a child of parentKey: the build takes its own handle on the parent and hands
// it to the cache with the image, as a VMM does.
func childImage(c sc.Cache, parentKey sc.Key, mem []byte, state string, dirty []uint64) sc.BuildFunc {
	return func(ctx context.Context) (*sc.Image, error) {
		p, err := c.Lookup(ctx, parentKey)
		if err != nil {
			return nil, err
		}
		return &sc.Image{Parent: p, State: []byte(state), Memory: sc.Bytes(mem), Size: int64(len(mem)), Dirty: dirty}, nil
	}
}

func mustGet(t testing.TB, c sc.Cache, k sc.Key, b sc.BuildFunc) sc.Snapshot {
	t.Helper()
	h, err := c.Get(context.Background(), k, b)
	if err != nil {
		t.Fatalf("Get %s: %v", k, err)
	}
	return h
}

func checkImage(t testing.TB, h sc.Snapshot, want []byte) {
	t.Helper()
	f, err := h.Image(context.Background())
	if err != nil {
		t.Fatalf("Image of %s: %v", h.Key(), err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	off := h.MemoryOffset()
	if st.Size() != off+int64(len(want)) || h.Size() != int64(len(want)) {
		t.Fatalf("image of %s: file %d bytes, Size %d, memory offset %d, want %d bytes of memory", h.Key(), st.Size(), h.Size(), off, len(want))
	}
	if off != 0 {
		prefix := make([]byte, off)
		if _, err := f.ReadAt(prefix, 0); err != nil {
			t.Fatal(err)
		}
		padded := append(slices.Clone(h.State()), make([]byte, off-int64(len(h.State())))...)
		if !bytes.Equal(prefix, padded) {
			t.Fatalf("image of %s: the %d bytes before memory are not the state zero-padded", h.Key(), off)
		}
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, off); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		for p := 0; p < len(want); p += page {
			if !bytes.Equal(got[p:p+page], want[p:p+page]) {
				t.Fatalf("image of %s differs from the memory stored, first at page %d", h.Key(), p/page)
			}
		}
	}
}

func open(t *testing.T, h Harness, b Budgets) (sc.Cache, string) {
	dir := t.TempDir()
	c := h.Open(t, dir, b)
	t.Cleanup(func() { c.Close() })
	return c, dir
}

var (
	rtKey = sc.RuntimeKey("python:3.11", "build-1")
	fnKey = sc.FunctionKey("guest/hello", "1-abc", "sha256:00ff")
)

func testRootRoundTrip(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(40, 1)
	s := mustGet(t, c, rtKey, rootImage(mem, "registers"))
	defer s.Release()
	if s.Key() != rtKey || !s.Parent().IsZero() || string(s.State()) != "registers" || s.MemoryOffset() != 0 {
		t.Fatalf("handle: key %s parent %s state %q", s.Key(), s.Parent(), s.State())
	}
	checkImage(t, s, mem)
	st := c.Stats()
	if want := nonZeroPages(mem) * page; st.BytesPrivate != want || st.BytesShared != 0 {
		t.Fatalf("root stats: private %d shared %d, want %d and 0 (a root stores its non-zero pages)", st.BytesPrivate, st.BytesShared, want)
	}
}

// derive returns a copy of mem with the listed pages rewritten, and one page zeroed.
func derive(mem []byte, changed []int, zeroed int) []byte {
	out := slices.Clone(mem)
	for _, p := range changed {
		for i := p * page; i < (p+1)*page; i++ {
			out[i] ^= 0x5a
		}
	}
	clear(out[zeroed*page : (zeroed+1)*page])
	return out
}

func testChildDiff(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(64, 2)
	rt := mustGet(t, c, rtKey, rootImage(mem, "rt"))
	rt.Release()
	child := derive(mem, []int{1, 5, 6, 40}, 9) // page 9 had data (9%3 != 2)
	f := mustGet(t, c, fnKey, childImage(c, rtKey, child, "fn", nil))
	defer f.Release()
	if f.Parent() != rtKey || string(f.State()) != "fn" {
		t.Fatalf("child: parent %s state %q", f.Parent(), f.State())
	}
	checkImage(t, f, child)
	st := c.Stats()
	rootPrivate := nonZeroPages(mem) * page
	if st.BytesPrivate != rootPrivate+5*page {
		t.Fatalf("BytesPrivate %d, want %d (root's non-zero pages) + 5 pages (4 changed, 1 zeroed)", st.BytesPrivate, rootPrivate)
	}
	if want := nonZeroPages(mem)*page - 4*page; st.BytesShared != want {
		t.Fatalf("BytesShared %d, want %d: the child's data pages not stored by it", st.BytesShared, want)
	}
	// The parent's image is unchanged by the child.
	p, err := c.Lookup(context.Background(), rtKey)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	checkImage(t, p, mem)
}

func testChildDirtyHint(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(32, 3)
	mustGet(t, c, rtKey, rootImage(mem, "rt")).Release()
	child := derive(mem, []int{3, 4}, 0)
	// The hint names the changed pages, plus one written back unchanged, in disorder with a
	// duplicate: only the 3 differing pages may be stored.
	dirty := []uint64{4, 10, 0, 3, 4}
	f := mustGet(t, c, fnKey, childImage(c, rtKey, child, "fn", dirty))
	defer f.Release()
	checkImage(t, f, child)
	if got, want := c.Stats().BytesPrivate, (nonZeroPages(mem)+3)*page; got != want {
		t.Fatalf("BytesPrivate %d, want %d", got, want)
	}
}

func testChildResized(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(16, 4)
	mustGet(t, c, rtKey, rootImage(mem, "rt")).Release()
	// Grown: the new pages past the parent read as zero unless written.
	grown := append(slices.Clone(mem), memory(8, 5)...)
	g := mustGet(t, c, fnKey, childImage(c, rtKey, grown, "grown", nil))
	checkImage(t, g, grown)
	g.Release()
	// Shrunk.
	k2 := sc.FunctionKey("guest/small", "1-x", "d")
	small := slices.Clone(mem[:8*page])
	s := mustGet(t, c, k2, childImage(c, rtKey, small, "small", nil))
	checkImage(t, s, small)
	s.Release()
	if got, want := c.Stats().BytesPrivate, (nonZeroPages(mem)+nonZeroPages(memory(8, 5)))*page; got != want {
		t.Fatalf("BytesPrivate %d, want %d: a shrunk child stores nothing, a grown one its new pages", got, want)
	}
}

func testHitsAndMisses(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	builds := 0
	mem := memory(4, 6)
	b := func(ctx context.Context) (*sc.Image, error) { builds++; return rootImage(mem, "s")(ctx) }
	for i := 0; i < 3; i++ {
		mustGet(t, c, rtKey, b).Release()
	}
	if _, err := c.Lookup(context.Background(), fnKey); !errors.Is(err, sc.ErrNotFound) {
		t.Fatalf("Lookup of a missing key: %v, want ErrNotFound", err)
	}
	st := c.Stats()
	if builds != 1 || st.Builds != 1 || st.Hits != 2 || st.Misses != 2 || st.Snapshots != 1 || st.InUse != 0 {
		t.Fatalf("builds %d, stats %+v; want 1 build, 2 hits, 2 misses, 1 snapshot, none in use", builds, st)
	}
}

func testSingleFlight(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	const n = 100
	mem := memory(8, 7)
	var builds, returned atomic.Int64
	release := make(chan struct{})
	build := func(ctx context.Context) (*sc.Image, error) {
		builds.Add(1)
		<-release
		return rootImage(mem, "once")(ctx)
	}
	handles := make([]sc.Snapshot, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			handles[i], errs[i] = c.Get(context.Background(), rtKey, build)
			returned.Add(1)
		})
	}
	// The build is held until all other 99 callers wait on it: each has missed and joined. A
	// second build or an early return ends the wait too, and fails below.
	for c.Stats().Waits < n-1 && builds.Load() <= 1 && returned.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
	}
	st := c.Stats()
	if builds.Load() != 1 || st.Builds != 1 || st.Waits != n-1 || st.Misses != n || st.Hits != 0 {
		t.Fatalf("%d builds, stats %+v: want exactly one build for %d concurrent first requests", builds.Load(), st, n)
	}
	if st.InUse != 1 {
		t.Fatalf("InUse %d, want 1", st.InUse)
	}
	for _, hd := range handles {
		if string(hd.State()) != "once" {
			t.Fatalf("state %q", hd.State())
		}
	}
	checkImage(t, handles[n-1], mem)
	for _, hd := range handles {
		hd.Release()
	}
	if st := c.Stats(); st.InUse != 0 {
		t.Fatalf("after releasing all %d handles InUse is %d", n, st.InUse)
	}
}

func testBuildErrorShared(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	boom := errors.New("launcher crashed")
	release := make(chan struct{})
	var calls, returned atomic.Int64
	build := func(ctx context.Context) (*sc.Image, error) {
		calls.Add(1)
		<-release
		return nil, boom
	}
	const n = 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Get(context.Background(), rtKey, build)
			returned.Add(1)
		})
	}
	for c.Stats().Waits < n-1 && calls.Load() <= 1 && returned.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Fatalf("caller %d: %v, want the build's error", i, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d builds, want 1", calls.Load())
	}
	// Failures are not remembered.
	mem := memory(2, 8)
	s := mustGet(t, c, rtKey, rootImage(mem, "ok"))
	s.Release()
	if st := c.Stats(); st.Builds != 2 || st.BuildErrors != 1 {
		t.Fatalf("stats %+v: want 2 builds, 1 error", st)
	}
}

func testLeaderCancelled(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(2, 9)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, rtKey, func(ctx context.Context) (*sc.Image, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		leaderErr <- err
	}()
	<-started
	waiter := make(chan error, 1)
	var got sc.Snapshot
	go func() {
		var err error
		got, err = c.Get(context.Background(), rtKey, rootImage(mem, "second"))
		waiter <- err
	}()
	waiterBuilt := false
	for c.Stats().Waits < 1 && !waiterBuilt {
		select {
		case err := <-waiter: // did not wait: it must have built itself, which the stats check fails
			waiter <- err
			waiterBuilt = true
		default:
			runtime.Gosched()
		}
	}
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v, want context.Canceled", err)
	}
	if err := <-waiter; err != nil {
		t.Fatalf("waiter with a live context: %v, want it to run the build itself", err)
	}
	defer got.Release()
	if string(got.State()) != "second" {
		t.Fatalf("state %q", got.State())
	}
	if st := c.Stats(); st.Builds != 2 {
		t.Fatalf("Builds %d, want 2", st.Builds)
	}
}

func testBuildPanic(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	_, err := c.Get(context.Background(), rtKey, func(context.Context) (*sc.Image, error) { panic("vmm bug") })
	if !errors.Is(err, sc.ErrBuild) {
		t.Fatalf("panicking build: %v, want ErrBuild", err)
	}
	_, err = c.Get(context.Background(), rtKey, func(context.Context) (*sc.Image, error) { return nil, nil })
	if !errors.Is(err, sc.ErrBuild) {
		t.Fatalf("build returning nothing: %v, want ErrBuild", err)
	}
	mustGet(t, c, rtKey, rootImage(memory(1, 1), "x")).Release()
}

type foreign struct{ sc.Snapshot }

func testInvalidInput(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(4, 10)
	ctx := context.Background()
	for _, k := range []sc.Key{{}, sc.RuntimeKey("", "b"), sc.RuntimeKey("k", ""), sc.FunctionKey("d", "r", ""),
		sc.FunctionKey("d\n", "r", "c"), sc.FunctionKey(string(make([]byte, sc.MaxKeyField+1)), "r", "c"),
		sc.RuntimeKey("\xff", "b")} {
		if _, err := c.Get(ctx, k, rootImage(mem, "")); !errors.Is(err, sc.ErrInvalid) {
			t.Errorf("Get with key %q: %v, want ErrInvalid", k.Fields(), err)
		}
		if _, err := c.Lookup(ctx, k); !errors.Is(err, sc.ErrInvalid) {
			t.Errorf("Lookup with key %q: %v, want ErrInvalid", k.Fields(), err)
		}
	}
	if _, err := c.Get(ctx, rtKey, nil); !errors.Is(err, sc.ErrInvalid) {
		t.Errorf("nil build: %v", err)
	}
	parent := mustGet(t, c, rtKey, rootImage(mem, "p"))
	defer parent.Release()
	for i, img := range []*sc.Image{
		{Memory: sc.Bytes(mem), Size: 0},
		{Memory: sc.Bytes(mem), Size: page - 1},
		{Memory: sc.Bytes(mem), Size: -page},
		{Memory: nil, Size: page},
		{Memory: sc.Bytes(mem), Size: int64(len(mem)) + page},
		{Memory: sc.Bytes(mem), Size: int64(len(mem)), Dirty: []uint64{4}, Parent: nil},
		{Memory: sc.Bytes(mem), Size: int64(len(mem)), Parent: foreign{parent}},
	} {
		k := sc.FunctionKey("bad", fmt.Sprint(i), "d")
		_, err := c.Get(ctx, k, func(context.Context) (*sc.Image, error) { return img, nil })
		if !errors.Is(err, sc.ErrInvalid) {
			t.Errorf("image %d: %v, want ErrInvalid", i, err)
		}
		if _, err := c.Lookup(ctx, k); !errors.Is(err, sc.ErrNotFound) {
			t.Errorf("image %d was stored after all: %v", i, err)
		}
	}
	// A short *os.File is an I/O error, not a panic.
	f, err := os.CreateTemp(t.TempDir(), "mem")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(mem[:page])
	defer f.Close()
	if _, err := c.Get(ctx, fnKey, func(context.Context) (*sc.Image, error) {
		return &sc.Image{Memory: f, Size: 4 * page}, nil
	}); err == nil {
		t.Error("image.Memory shorter than Size was accepted")
	}
	// A released parent.
	p2 := mustGet(t, c, rtKey, rootImage(mem, "p"))
	p2.Release()
	if _, err := c.Get(ctx, fnKey, func(context.Context) (*sc.Image, error) {
		return &sc.Image{Parent: p2, Memory: sc.Bytes(mem), Size: int64(len(mem))}, nil
	}); !errors.Is(err, sc.ErrReleased) {
		t.Errorf("released parent: %v, want ErrReleased", err)
	}
}

func testRelease(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	s := mustGet(t, c, rtKey, rootImage(memory(2, 11), "s"))
	s2, err := c.Lookup(context.Background(), rtKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	s.Release()
	if st := c.Stats(); st.InUse != 1 {
		t.Fatalf("a second Release counted: InUse %d, want 1 (s2 still held)", st.InUse)
	}
	if _, err := s.Image(context.Background()); !errors.Is(err, sc.ErrReleased) {
		t.Fatalf("Image after Release: %v, want ErrReleased", err)
	}
	s2.Release()
	if st := c.Stats(); st.InUse != 0 {
		t.Fatalf("InUse %d, want 0", st.InUse)
	}
}

func testEvictUnused(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{Disk: 1})
	ctx := context.Background()
	memA := memory(8, 12)
	a := mustGet(t, c, rtKey, rootImage(memA, "a"))
	checkImage(t, a, memA)
	// Fill the cache past its budget while a is held: a stays, and its image stays intact.
	for i := 0; i < 4; i++ {
		k := sc.RuntimeKey("other", fmt.Sprint(i))
		o := mustGet(t, c, k, rootImage(memory(8, uint64(20+i)), "o"))
		checkImage(t, o, memory(8, uint64(20+i)))
		o.Release()
		if _, err := c.Lookup(ctx, k); !errors.Is(err, sc.ErrNotFound) {
			t.Fatalf("unused %s over a 1-byte budget not evicted: %v", k, err)
		}
	}
	b, err := c.Lookup(ctx, rtKey)
	if err != nil {
		t.Fatalf("held snapshot was evicted: %v", err)
	}
	checkImage(t, b, memA)
	a.Release()
	b.Release()
	if _, err := c.Lookup(ctx, rtKey); !errors.Is(err, sc.ErrNotFound) {
		t.Fatalf("released snapshot over budget not evicted: %v", err)
	}
	if st := c.Stats(); st.Evictions != 5 || st.Snapshots != 0 {
		t.Fatalf("stats %+v: want 5 evictions, nothing cached", st)
	}
}

func testPinned(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{Disk: 1})
	ctx := context.Background()
	if err := c.Pin(rtKey); !errors.Is(err, sc.ErrNotFound) {
		t.Fatalf("Pin of a missing key: %v", err)
	}
	mem := memory(8, 13)
	s := mustGet(t, c, rtKey, rootImage(mem, "rt"))
	if err := c.Pin(rtKey); err != nil {
		t.Fatal(err)
	}
	checkImage(t, s, mem)
	s.Release()
	mustGet(t, c, fnKey, rootImage(memory(4, 14), "x")).Release()
	s, err := c.Lookup(ctx, rtKey)
	if err != nil {
		t.Fatalf("pinned snapshot evicted: %v", err)
	}
	checkImage(t, s, mem)
	s.Release()
	if st := c.Stats(); st.Pinned != 1 {
		t.Fatalf("Pinned %d", st.Pinned)
	}
	if err := c.Unpin(rtKey); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, rtKey); !errors.Is(err, sc.ErrNotFound) {
		t.Fatalf("unpinned snapshot over budget not evicted: %v", err)
	}
}

func testParentKept(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{Disk: 1})
	ctx := context.Background()
	mem := memory(16, 15)
	rt := mustGet(t, c, rtKey, rootImage(mem, "rt"))
	child := derive(mem, []int{2}, 3)
	f := mustGet(t, c, fnKey, childImage(c, rtKey, child, "fn", nil))
	rt.Release()
	if p, err := c.Lookup(ctx, rtKey); err != nil {
		t.Fatalf("parent of a held child was evicted: %v", err)
	} else {
		p.Release()
	}
	checkImage(t, f, child)
	f.Release()
	for _, k := range []sc.Key{fnKey, rtKey} {
		if _, err := c.Lookup(ctx, k); !errors.Is(err, sc.ErrNotFound) {
			t.Fatalf("%s still cached over budget with nothing held: %v", k, err)
		}
	}
}

func testMemoryBudget(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{Memory: 1})
	mem := memory(32, 16)
	mustGet(t, c, rtKey, rootImage(mem, "rt")).Release()
	// The parent's pages are not in memory; diffing a child and composing must still work.
	child := derive(mem, []int{7, 8}, 1)
	f := mustGet(t, c, fnKey, childImage(c, rtKey, child, "fn", nil))
	checkImage(t, f, child)
	f.Release()
	st := c.Stats()
	if st.MemoryBytes >= nonZeroPages(mem)*page || st.Snapshots != 2 {
		t.Fatalf("stats %+v: want both snapshots kept and their pages not held in memory over a 1-byte budget", st)
	}
	if st.BytesPrivate != (nonZeroPages(mem)+3)*page {
		t.Fatalf("BytesPrivate %d", st.BytesPrivate)
	}
}

func buildLineage(t *testing.T, c sc.Cache) (rtMem, fnMem []byte) {
	rtMem = memory(24, 17)
	fnMem = derive(rtMem, []int{0, 11}, 4)
	mustGet(t, c, rtKey, rootImage(rtMem, "rt-state")).Release()
	mustGet(t, c, fnKey, childImage(c, rtKey, fnMem, "fn-state", nil)).Release()
	return rtMem, fnMem
}

func failBuild(t testing.TB) sc.BuildFunc {
	return func(context.Context) (*sc.Image, error) {
		t.Error("build ran for a snapshot that should have been restored from disk")
		return nil, errors.New("unexpected build")
	}
}

func testPersistence(t *testing.T, h Harness) {
	dir := t.TempDir()
	c := h.Open(t, dir, Budgets{})
	rtMem, fnMem := buildLineage(t, c)
	if tr, ok := c.(sc.TouchRecorder); ok {
		if err := tr.RecordTouched(context.Background(), fnKey, []uint64{5, 1, 5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = h.Open(t, dir, Budgets{})
	defer c.Close()
	f := mustGet(t, c, fnKey, failBuild(t))
	defer f.Release()
	if string(f.State()) != "fn-state" || f.Parent() != rtKey {
		t.Fatalf("restored child: state %q parent %s", f.State(), f.Parent())
	}
	checkImage(t, f, fnMem)
	r := mustGet(t, c, rtKey, failBuild(t))
	defer r.Release()
	checkImage(t, r, rtMem)
	if tp, ok := f.(sc.TouchedPages); ok {
		if got := tp.Touched(); !slices.Equal(got, []uint64{1, 5}) {
			t.Fatalf("touched pages after restart: %v", got)
		}
	}
	st := c.Stats()
	if st.Builds != 0 || st.Snapshots != 2 || st.Corrupt != 0 {
		t.Fatalf("after restart: %+v", st)
	}
	if st.BytesPrivate != (nonZeroPages(rtMem)+3)*page {
		t.Fatalf("BytesPrivate after restart %d", st.BytesPrivate)
	}
}

func testCorruptParent(t *testing.T, h Harness) {
	dir := t.TempDir()
	c := h.Open(t, dir, Budgets{})
	buildLineage(t, c)
	c.Close()
	h.Corrupt(t, dir, rtKey)
	c = h.Open(t, dir, Budgets{})
	defer c.Close()
	ctx := context.Background()
	for _, k := range []sc.Key{rtKey, fnKey} {
		if s, err := c.Lookup(ctx, k); !errors.Is(err, sc.ErrNotFound) {
			if err == nil {
				s.Release()
			}
			t.Fatalf("%s restored from a lineage with a corrupt record: %v", k, err)
		}
	}
	if st := c.Stats(); st.Corrupt == 0 {
		t.Fatalf("Corrupt not counted: %+v", st)
	}
	rtMem, fnMem := buildLineage(t, c)
	f := mustGet(t, c, fnKey, failBuild(t))
	defer f.Release()
	checkImage(t, f, fnMem)
	r := mustGet(t, c, rtKey, failBuild(t))
	defer r.Release()
	checkImage(t, r, rtMem)
}

func testCorruptChild(t *testing.T, h Harness) {
	dir := t.TempDir()
	c := h.Open(t, dir, Budgets{})
	rtMem, _ := buildLineage(t, c)
	c.Close()
	h.Corrupt(t, dir, fnKey)
	c = h.Open(t, dir, Budgets{})
	defer c.Close()
	r := mustGet(t, c, rtKey, failBuild(t))
	defer r.Release()
	checkImage(t, r, rtMem)
	rebuilt := derive(rtMem, []int{20}, 21)
	f := mustGet(t, c, fnKey, childImage(c, rtKey, rebuilt, "again", nil))
	defer f.Release()
	checkImage(t, f, rebuilt)
	if st := c.Stats(); st.Corrupt == 0 || st.Builds != 1 {
		t.Fatalf("stats %+v: want the corrupt child counted and rebuilt once", st)
	}
}

func testRemove(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	ctx := context.Background()
	if err := c.Remove(ctx, rtKey); !errors.Is(err, sc.ErrNotFound) {
		t.Fatalf("Remove of a missing key: %v", err)
	}
	buildLineage(t, c)
	if err := c.Remove(ctx, rtKey); !errors.Is(err, sc.ErrInUse) {
		t.Fatalf("Remove of a parent: %v, want ErrInUse", err)
	}
	f, err := c.Lookup(ctx, fnKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, fnKey); !errors.Is(err, sc.ErrInUse) {
		t.Fatalf("Remove of a held snapshot: %v, want ErrInUse", err)
	}
	f.Release()
	for _, k := range []sc.Key{fnKey, rtKey} {
		if err := c.Remove(ctx, k); err != nil {
			t.Fatalf("Remove %s: %v", k, err)
		}
		if _, err := c.Lookup(ctx, k); !errors.Is(err, sc.ErrNotFound) {
			t.Fatalf("%s after Remove: %v", k, err)
		}
	}
}

func testClosed(t *testing.T, h Harness) {
	c := h.Open(t, t.TempDir(), Budgets{})
	s := mustGet(t, c, rtKey, rootImage(memory(2, 18), "s"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(context.Background()); !errors.Is(err, sc.ErrClosed) {
		t.Fatalf("Image after Close: %v", err)
	}
	s.Release()
	if _, err := c.Get(context.Background(), rtKey, rootImage(memory(2, 18), "s")); !errors.Is(err, sc.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := c.Lookup(context.Background(), rtKey); !errors.Is(err, sc.ErrClosed) {
		t.Fatalf("Lookup after Close: %v", err)
	}
}

func testMapPrivate(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(8, 19)
	s := mustGet(t, c, rtKey, rootImage(mem, "s"))
	defer s.Release()
	f, err := s.Image(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m1, err := unix.Mmap(int(f.Fd()), 0, len(mem), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap MAP_PRIVATE of the image: %v", err)
	}
	defer unix.Munmap(m1)
	if !bytes.Equal(m1, mem) {
		t.Fatal("mapped image differs from the memory stored")
	}
	for i := range m1 { // a guest writing every page
		m1[i] = 0xee
	}
	m2, err := unix.Mmap(int(f.Fd()), 0, len(mem), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m2)
	if !bytes.Equal(m2, mem) {
		t.Fatal("a guest's private writes reached the shared image")
	}
	checkImage(t, s, mem)
}

func testTouched(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	tr, ok := c.(sc.TouchRecorder)
	if !ok {
		return // optional capability
	}
	ctx := context.Background()
	if err := tr.RecordTouched(ctx, rtKey, []uint64{1}); !errors.Is(err, sc.ErrNotFound) {
		t.Fatalf("RecordTouched of a missing key: %v", err)
	}
	s := mustGet(t, c, rtKey, rootImage(memory(4, 20), "s"))
	defer s.Release()
	if err := tr.RecordTouched(ctx, rtKey, []uint64{4}); !errors.Is(err, sc.ErrInvalid) {
		t.Fatalf("page past the image: %v, want ErrInvalid", err)
	}
	if err := tr.RecordTouched(ctx, rtKey, []uint64{3, 0, 3}); err != nil {
		t.Fatal(err)
	}
	tp, ok := s.(sc.TouchedPages)
	if !ok {
		t.Fatal("a TouchRecorder's handles must implement TouchedPages")
	}
	if got := tp.Touched(); !slices.Equal(got, []uint64{0, 3}) {
		t.Fatalf("Touched %v, want [0 3]", got)
	}
}

// testConcurrent mixes Gets, images and releases of lineages over a small budget; every image
// must match its key's memory whatever was evicted meanwhile.
func testConcurrent(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{Disk: 64 * page, Memory: 16 * page})
	base := memory(8, 21)
	want := func(i int) []byte { return derive(base, []int{i % 8}, (i+3)%8) }
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for it := 0; it < 40; it++ {
				i := r.IntN(6)
				k := sc.FunctionKey("guest/f", fmt.Sprint(i), "d")
				rk := sc.RuntimeKey("python:3.11", fmt.Sprint(i%2))
				s, err := c.Get(context.Background(), k, func(ctx context.Context) (*sc.Image, error) {
					p, err := c.Get(ctx, rk, rootImage(base, "rt"))
					if err != nil {
						return nil, err
					}
					return &sc.Image{Parent: p, State: []byte(fmt.Sprint(i)), Memory: sc.Bytes(want(i)), Size: int64(len(base))}, nil
				})
				if err != nil {
					errs <- fmt.Errorf("Get %s: %w", k, err)
					return
				}
				f, err := s.Image(context.Background())
				if err != nil {
					errs <- err
					return
				}
				got := make([]byte, len(base))
				f.ReadAt(got, 0)
				if !bytes.Equal(got, want(i)) || string(s.State()) != fmt.Sprint(i) {
					errs <- fmt.Errorf("image of %s differs", k)
					return
				}
				s.Release()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := c.Stats(); st.InUse != 0 {
		t.Fatalf("InUse %d after all released", st.InUse)
	}
}

// testStateInImage stores images whose composed file is a VMM snapshot file: the state (its
// header) padded to a page, then memory. The layout survives a restart.
func testStateInImage(t *testing.T, h Harness) {
	dir := t.TempDir()
	c := h.Open(t, dir, Budgets{})
	mem := memory(16, 22)
	hdr := bytes.Repeat([]byte("HDR"), 40)
	mustGet(t, c, rtKey, func(context.Context) (*sc.Image, error) {
		return &sc.Image{State: hdr, Memory: sc.Bytes(mem), Size: int64(len(mem)), StateInImage: true}, nil
	}).Release()
	child := derive(mem, []int{6}, 7)
	big := bytes.Repeat([]byte{0xab}, page+1) // a header longer than a page
	f := mustGet(t, c, fnKey, func(ctx context.Context) (*sc.Image, error) {
		p, err := c.Lookup(ctx, rtKey)
		if err != nil {
			return nil, err
		}
		return &sc.Image{Parent: p, State: big, Memory: sc.Bytes(child), Size: int64(len(child)), StateInImage: true}, nil
	})
	if f.MemoryOffset() != 2*page {
		t.Fatalf("MemoryOffset %d for a %d-byte state, want %d", f.MemoryOffset(), len(big), 2*page)
	}
	checkImage(t, f, child)
	f.Release()
	c.Close()
	c = h.Open(t, dir, Budgets{})
	defer c.Close()
	for _, tc := range []struct {
		k   sc.Key
		mem []byte
		off int64
	}{{rtKey, mem, page}, {fnKey, child, 2 * page}} {
		s := mustGet(t, c, tc.k, failBuild(t))
		if s.MemoryOffset() != tc.off {
			t.Fatalf("%s after restart: MemoryOffset %d, want %d", tc.k, s.MemoryOffset(), tc.off)
		}
		checkImage(t, s, tc.mem)
		s.Release()
	}
}

// testImageComposedOnce: concurrent first Image calls on one snapshot compose it once and all get
// the same file; a later handle reuses it.
func testImageComposedOnce(t *testing.T, h Harness) {
	c, _ := open(t, h, Budgets{})
	mem := memory(64, 23)
	mustGet(t, c, rtKey, rootImage(mem, "rt")).Release()
	child := derive(mem, []int{9, 10, 11}, 12)
	mustGet(t, c, fnKey, childImage(c, rtKey, child, "fn", nil)).Release()
	const n = 10
	names := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := c.Lookup(context.Background(), fnKey)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Release()
			f, err := s.Image(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			names[i] = f.Name()
			got := make([]byte, len(child))
			if _, err := f.ReadAt(got, s.MemoryOffset()); err != nil && err != io.EOF {
				t.Error(err)
			} else if !bytes.Equal(got, child) {
				t.Error("concurrently composed image differs from the memory stored")
			}
		})
	}
	wg.Wait()
	for _, name := range names[1:] {
		if name != names[0] {
			t.Fatalf("concurrent Image calls got different files: %q and %q", names[0], name)
		}
	}
	if st := c.Stats(); st.Composes != 1 {
		t.Fatalf("Composes %d, want 1 for one snapshot's image", st.Composes)
	}
}
