package snapshotcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const benchSize = 64 << 20

// benchImages returns a 64 MiB runtime image (every page holds data: the worst case for
// composing) and a function image in which 2% of the pages differ, with their page numbers.
func benchImages() (rt, fn []byte, dirty []uint64) {
	r := rand.New(rand.NewPCG(1, 2))
	rt = make([]byte, benchSize)
	for i := 0; i < len(rt); i += 8 {
		v := r.Uint64()
		rt[i], rt[i+1], rt[i+2], rt[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		rt[i+4], rt[i+5], rt[i+6], rt[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	fn = append([]byte(nil), rt...)
	n := benchSize / PageSize
	for _, p := range r.Perm(n)[:n*2/100] {
		fn[p*PageSize] ^= 0xff
		dirty = append(dirty, uint64(p))
	}
	return rt, fn, dirty
}

func benchStore(b *testing.B) *Store {
	s, err := Open(context.Background(), Config{Dir: b.TempDir(), DiskBudget: 16 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func rootBuild(mem []byte) BuildFunc {
	return func(context.Context) (*Image, error) {
		return &Image{State: make([]byte, 4096), Memory: Bytes(mem), Size: int64(len(mem))}, nil
	}
}

// BenchmarkBaselineWriteFile64MiB is the baseline: writing a full 64 MiB image to a new file
// (no fsync, like the store's default), what storing every snapshot whole would cost.
func BenchmarkBaselineWriteFile64MiB(b *testing.B) {
	rt, _, _ := benchImages()
	dir := b.TempDir()
	b.SetBytes(benchSize)
	for i := 0; b.Loop(); i++ {
		p := filepath.Join(dir, "img")
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		f.Write(rt)
		f.Close()
		os.Remove(p)
	}
}

func BenchmarkStoreRuntime64MiB(b *testing.B) {
	rt, _, _ := benchImages()
	s := benchStore(b)
	b.SetBytes(benchSize)
	for i := 0; b.Loop(); i++ {
		k := RuntimeKey("python:3.11", fmt.Sprint(i))
		h, err := s.Get(context.Background(), k, rootBuild(rt))
		if err != nil {
			b.Fatal(err)
		}
		h.Release()
		s.Remove(context.Background(), k)
	}
}

// BenchmarkStoreFunction2pct stores a function snapshot whose image differs from its runtime
// snapshot's in 2% of its pages: with the VMM's dirty log as a hint, and comparing every page.
func BenchmarkStoreFunction2pct(b *testing.B) {
	rt, fn, dirty := benchImages()
	for _, mode := range []string{"dirty-hint", "compare-all"} {
		b.Run(mode, func(b *testing.B) {
			s := benchStore(b)
			parent, err := s.Get(context.Background(), RuntimeKey("python:3.11", "b"), rootBuild(rt))
			if err != nil {
				b.Fatal(err)
			}
			defer parent.Release()
			hint := dirty
			if mode == "compare-all" {
				hint = nil
			}
			b.SetBytes(benchSize)
			var recBytes int64
			for i := 0; b.Loop(); i++ {
				k := FunctionKey("guest/hello", fmt.Sprint(i), "d")
				h, err := s.Get(context.Background(), k, func(ctx context.Context) (*Image, error) {
					p, err := s.Lookup(ctx, parent.Key())
					if err != nil {
						return nil, err
					}
					return &Image{Parent: p, State: make([]byte, 4096), Memory: Bytes(fn), Size: benchSize, Dirty: hint}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
				recBytes = h.(*handle).e.recBytes
				h.Release()
				s.Remove(context.Background(), k)
			}
			b.ReportMetric(float64(recBytes)/(1<<20), "record-MiB")
		})
	}
}

// BenchmarkComposeFunction64MiB materialises the composed image of a function snapshot (runtime
// pages overlaid with the 2% diff) into a new file.
func BenchmarkComposeFunction64MiB(b *testing.B) {
	s, h := benchFunction(b)
	defer h.Release()
	e := h.(*handle).e
	b.SetBytes(benchSize)
	for b.Loop() {
		f, _, err := s.compose(e, e.lineage())
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(f.Name())
	}
}

// BenchmarkOpen is the restore path once the image exists: Get (a hit), Image, Release; and the
// same followed by mapping the image MAP_PRIVATE and writing 2% of its pages, as a guest would.
func BenchmarkOpen(b *testing.B) {
	rt, fn, dirty := benchImages()
	s := benchStore(b)
	parent, err := s.Get(context.Background(), RuntimeKey("python:3.11", "b"), rootBuild(rt))
	if err != nil {
		b.Fatal(err)
	}
	fk := FunctionKey("guest/hello", "1", "d")
	h, err := s.Get(context.Background(), fk, func(ctx context.Context) (*Image, error) {
		return &Image{Parent: parent, Memory: Bytes(fn), Size: benchSize, Dirty: dirty}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.Image(context.Background()); err != nil {
		b.Fatal(err)
	}
	h.Release()
	b.Run("get-image-release", func(b *testing.B) {
		for b.Loop() {
			h, err := s.Get(context.Background(), fk, nil2(b))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.Image(context.Background()); err != nil {
				b.Fatal(err)
			}
			h.Release()
		}
	})
	b.Run("get-image-mmap-write2pct", func(b *testing.B) {
		for b.Loop() {
			h, err := s.Get(context.Background(), fk, nil2(b))
			if err != nil {
				b.Fatal(err)
			}
			f, err := h.Image(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			m, err := unix.Mmap(int(f.Fd()), 0, benchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range dirty {
				m[p*PageSize]++
			}
			unix.Munmap(m)
			h.Release()
		}
	})
}

func nil2(b *testing.B) BuildFunc {
	return func(context.Context) (*Image, error) { b.Fatal("unexpected build"); return nil, nil }
}

// BenchmarkSingleFlight100 is 100 goroutines asking at once for a key nobody built yet (one
// build of a 1 MiB image, 99 waiters), against the baseline of 100 goroutines getting a key
// already cached.
func BenchmarkSingleFlight100(b *testing.B) {
	mem := make([]byte, 1<<20)
	for i := range mem {
		mem[i] = byte(i)
	}
	run := func(b *testing.B, s *Store, key func(i int) Key) {
		for i := 0; b.Loop(); i++ {
			k := key(i)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 100 {
				wg.Go(func() {
					<-start
					h, err := s.Get(context.Background(), k, rootBuild(mem))
					if err != nil {
						b.Error(err)
						return
					}
					h.Release()
				})
			}
			close(start)
			wg.Wait()
		}
	}
	b.Run("cached-baseline", func(b *testing.B) {
		s := benchStore(b)
		k := RuntimeKey("k", "cached")
		h, _ := s.Get(context.Background(), k, rootBuild(mem))
		defer h.Release()
		run(b, s, func(int) Key { return k })
	})
	b.Run("first-requests", func(b *testing.B) {
		s := benchStore(b)
		run(b, s, func(i int) Key { return RuntimeKey("k", fmt.Sprint(i)) })
		st := s.Stats()
		b.ReportMetric(float64(st.Builds)/float64(b.N), "builds/op")
	})
}

// BenchmarkTouchedPrefetch asks whether a recorded page list (RecordTouched, the REAP idea) pays
// off on the host side: map a function's composed image MAP_PRIVATE and read the 20% of its
// pages a run touched, faulting them one by one ("fault") or populating the recorded ranges with
// one madvise(MADV_POPULATE_READ) each first ("prefetch"). Guest-side (shadow paging) faults are
// not part of this measurement.
func BenchmarkTouchedPrefetch(b *testing.B) {
	s, h := benchFunction(b)
	defer h.Release()
	f, err := h.Image(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	// A working set of 20% of the pages in clusters of 8, as code and heap are.
	r := rand.New(rand.NewPCG(3, 4))
	n := benchSize / PageSize
	var touched []uint64
	for _, c := range r.Perm(n / 8)[:n/40] {
		for p := range 8 {
			touched = append(touched, uint64(c*8+p))
		}
	}
	if err := s.RecordTouched(context.Background(), h.Key(), touched); err != nil {
		b.Fatal(err)
	}
	touched = h.(*handle).Touched()
	// Both ways in every iteration, alternating which goes first, so their ratio survives load.
	var took [2]time.Duration
	var sum byte
	for it := 0; b.Loop(); it++ {
		for k := range 2 {
			prefetch := (k+it)%2 == 1
			t := time.Now()
			m, err := unix.Mmap(int(f.Fd()), 0, benchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
			if err != nil {
				b.Fatal(err)
			}
			if prefetch {
				for i := 0; i < len(touched); {
					j := i + 1
					for j < len(touched) && touched[j] == touched[j-1]+1 {
						j++
					}
					if err := unix.Madvise(m[touched[i]*PageSize:(touched[j-1]+1)*PageSize], unix.MADV_POPULATE_READ); err != nil {
						b.Fatal(err)
					}
					i = j
				}
			}
			for _, p := range touched {
				sum += m[p*PageSize]
			}
			unix.Munmap(m)
			if prefetch {
				took[1] += time.Since(t)
			} else {
				took[0] += time.Since(t)
			}
		}
	}
	_ = sum
	b.ReportMetric(float64(took[0])/float64(b.N)/1e3, "fault-us")
	b.ReportMetric(float64(took[1])/float64(b.N)/1e3, "prefetch-us")
	b.ReportMetric(float64(took[1])/float64(took[0]), "prefetch/fault")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkInterleaved measures each step of a lineage's life and the baseline (writing the full
// 64 MiB image to a new file) in the same iteration, so that their ratios hold on a machine
// whose load changes from second to second. Reported per iteration, in ms, and as ratios.
func BenchmarkInterleaved(b *testing.B) {
	rt, fn, dirty := benchImages()
	s := benchStore(b)
	dir := b.TempDir()
	ctx := context.Background()
	var base, storeRT, storeFnHint, storeFnAll, compose time.Duration
	timed := func(d *time.Duration, f func()) {
		t := time.Now()
		f()
		*d += time.Since(t)
	}
	for i := 0; b.Loop(); i++ {
		timed(&base, func() {
			p := filepath.Join(dir, "img")
			if err := os.WriteFile(p, rt, 0o600); err != nil {
				b.Fatal(err)
			}
			os.Remove(p)
		})
		rk := RuntimeKey("python:3.11", fmt.Sprint(i))
		var parent Snapshot
		timed(&storeRT, func() {
			var err error
			if parent, err = s.Get(ctx, rk, rootBuild(rt)); err != nil {
				b.Fatal(err)
			}
		})
		var h Snapshot
		for _, hint := range [][]uint64{dirty, nil} {
			d := &storeFnHint
			if hint == nil {
				d = &storeFnAll
			}
			fk := FunctionKey("guest/hello", fmt.Sprint(i, hint == nil), "d")
			timed(d, func() {
				var err error
				h, err = s.Get(ctx, fk, func(ctx context.Context) (*Image, error) {
					p, err := s.Lookup(ctx, rk)
					if err != nil {
						return nil, err
					}
					return &Image{Parent: p, Memory: Bytes(fn), Size: benchSize, Dirty: hint}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			})
			if hint != nil {
				h.Release()
				s.Remove(ctx, fk)
			}
		}
		timed(&compose, func() {
			if _, err := h.Image(ctx); err != nil {
				b.Fatal(err)
			}
		})
		h.Release()
		parent.Release()
		s.Remove(ctx, h.Key())
		s.Remove(ctx, rk)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(ms(base), "baseline-ms")
	b.ReportMetric(ms(storeRT), "store-runtime-ms")
	b.ReportMetric(ms(storeFnHint), "store-fn-dirty-ms")
	b.ReportMetric(ms(storeFnAll), "store-fn-compare-ms")
	b.ReportMetric(ms(compose), "compose-ms")
	b.ReportMetric(float64(storeRT)/float64(base), "runtime/baseline")
	b.ReportMetric(float64(storeFnHint)/float64(base), "fn-dirty/baseline")
	b.ReportMetric(float64(compose)/float64(base), "compose/baseline")
	b.ReportMetric(0, "ns/op")
}

// benchFunction returns a store holding the benchmark's runtime snapshot and its function
// snapshot (the 2% diff), and the caller's handle on the function snapshot.
func benchFunction(b *testing.B) (*Store, Snapshot) {
	b.Helper()
	rt, fn, dirty := benchImages()
	s := benchStore(b)
	parent, err := s.Get(context.Background(), RuntimeKey("python:3.11", "b"), rootBuild(rt))
	if err != nil {
		b.Fatal(err)
	}
	h, err := s.Get(context.Background(), FunctionKey("guest/hello", "1", "d"), func(ctx context.Context) (*Image, error) {
		return &Image{Parent: parent, Memory: Bytes(fn), Size: benchSize, Dirty: dirty}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s, h
}
