package snapshotcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	sc "github.com/snapinvoker/snapinvoker/snapshotcache"
	"github.com/snapinvoker/snapinvoker/snapshotcache/cachetest"
)

// opsModel drives a Store with a sequence of operations decoded from bytes and checks, after
// each, what must hold whatever was evicted: every image equals its key's memory, and the
// snapshots held by handles are exactly those Stats counts in use.
type opsModel struct {
	t       testing.TB
	dir     string
	budgets cachetest.Budgets
	c       sc.Cache
	held    []sc.Snapshot
}

const opsPages = 6

func opsRootKey(i int) sc.Key { return sc.RuntimeKey("kind", fmt.Sprint(i%2)) }
func opsFnKey(i int) sc.Key   { return sc.FunctionKey("action", fmt.Sprint(i%4), "digest") }

func opsRootMem(i int) []byte { return pages(opsPages, byte(1+40*(i%2))) }
func opsFnMem(i int) []byte {
	m := bytes.Clone(opsRootMem(i % 2))
	m[(i%4)*sc.PageSize] ^= 0xff            // one page changed
	clear(m[5*sc.PageSize : 6*sc.PageSize]) // one page zeroed
	return append(m, pages(i%4, 9)...)      // and grown by i%4 pages
}

func (m *opsModel) build(key sc.Key) sc.BuildFunc {
	return func(ctx context.Context) (*sc.Image, error) {
		if key.Level() == sc.LevelRuntime {
			i := int(key.Fields()[1][0] - '0')
			return &sc.Image{Memory: sc.Bytes(opsRootMem(i)), Size: opsPages * sc.PageSize, State: []byte(key.String())}, nil
		}
		i := int(key.Fields()[1][0] - '0')
		p, err := m.c.Get(ctx, opsRootKey(i%2), m.build(opsRootKey(i%2)))
		if err != nil {
			return nil, err
		}
		mem := opsFnMem(i)
		return &sc.Image{Parent: p, Memory: sc.Bytes(mem), Size: int64(len(mem)), State: []byte(key.String())}, nil
	}
}

func (m *opsModel) want(key sc.Key) []byte {
	i := int(key.Fields()[1][0] - '0')
	if key.Level() == sc.LevelRuntime {
		return opsRootMem(i)
	}
	return opsFnMem(i)
}

func (m *opsModel) step(op, arg byte) {
	ctx := context.Background()
	t := m.t
	switch op % 7 {
	case 0, 1:
		key := opsRootKey(int(arg))
		if op%7 == 1 {
			key = opsFnKey(int(arg))
		}
		h, err := m.c.Get(ctx, key, m.build(key))
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		if h.Key() != key || string(h.State()) != key.String() {
			t.Fatalf("Get %s returned %s with state %q", key, h.Key(), h.State())
		}
		m.held = append(m.held, h)
	case 2:
		if len(m.held) > 0 {
			i := int(arg) % len(m.held)
			m.held[i].Release()
			m.held = append(m.held[:i], m.held[i+1:]...)
		}
	case 3:
		if len(m.held) > 0 {
			h := m.held[int(arg)%len(m.held)]
			f, err := h.Image(ctx)
			if err != nil {
				t.Fatalf("Image of %s: %v", h.Key(), err)
			}
			want := m.want(h.Key())
			got := make([]byte, len(want)+1)
			if n, _ := f.ReadAt(got, 0); n != len(want) || !bytes.Equal(got[:n], want) {
				t.Fatalf("image of %s differs from its memory (%d bytes read, want %d)", h.Key(), n, len(want))
			}
		}
	case 4:
		key := opsRootKey(int(arg))
		var err error
		if arg&4 == 0 {
			err = m.c.Pin(key)
		} else {
			err = m.c.Unpin(key)
		}
		if err != nil && !errors.Is(err, sc.ErrNotFound) {
			t.Fatalf("pin/unpin %s: %v", key, err)
		}
	case 5:
		key := opsFnKey(int(arg))
		if arg&4 != 0 {
			key = opsRootKey(int(arg))
		}
		if err := m.c.Remove(ctx, key); err != nil && !errors.Is(err, sc.ErrNotFound) && !errors.Is(err, sc.ErrInUse) {
			t.Fatalf("Remove %s: %v", key, err)
		}
	case 6:
		for _, h := range m.held {
			h.Release()
		}
		m.held = nil
		if err := m.c.Close(); err != nil {
			t.Fatal(err)
		}
		m.c = openStore(t, m.dir, m.budgets)
	}
	inUse := map[sc.Key]bool{}
	for _, h := range m.held {
		inUse[h.Key()] = true
	}
	if st := m.c.Stats(); st.InUse != len(inUse) || st.Snapshots < len(inUse) {
		t.Fatalf("after op %d: stats %+v, %d snapshots held", op%7, st, len(inUse))
	}
}

func runOps(t testing.TB, budgets cachetest.Budgets, ops []byte) {
	m := &opsModel{t: t, dir: t.TempDir(), budgets: budgets}
	m.c = openStore(t, m.dir, budgets)
	defer func() { m.c.Close() }()
	for i := 0; i+1 < len(ops); i += 2 {
		m.step(ops[i], ops[i+1])
	}
	for _, h := range m.held {
		h.Release()
	}
}

func TestStoreRandomOperations(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 99))
		ops := make([]byte, 120)
		for i := range ops {
			ops[i] = byte(r.IntN(256))
		}
		// Tight budgets force every eviction path; generous ones keep everything.
		for _, b := range []cachetest.Budgets{{Memory: 1, Disk: 1}, {Memory: 3 * sc.PageSize, Disk: 12 * sc.PageSize}, {}} {
			runOps(t, b, ops)
		}
	}
}

func FuzzStoreOperations(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 3, 0, 3, 1, 2, 0, 6, 0, 1, 1, 3, 0}, int64(1))
	f.Add([]byte{1, 2, 1, 3, 5, 4, 2, 0, 2, 0, 5, 1, 1, 1, 3, 0}, int64(12*sc.PageSize))
	f.Fuzz(func(t *testing.T, ops []byte, disk int64) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		if disk < 0 {
			disk = -disk
		}
		runOps(t, cachetest.Budgets{Memory: 2 * sc.PageSize, Disk: disk%(64*sc.PageSize) + 1}, ops)
	})
}
