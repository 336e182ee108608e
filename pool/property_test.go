package pool

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// world is an independent model of what the Core's decisions mean, used to check it: it
// tracks instances and their charges from the decisions alone, plays the part of the drivers
// (starting instances, finishing runs) and checks the properties after every event.
type world struct {
	t      testing.TB
	core   *Core
	cfg    Config
	now    time.Time
	pick   func(n int) int
	nextID JobID

	jobs      map[JobID]Job
	ran       map[JobID]int  // OpRun decisions per job
	settled   map[JobID]bool // done, rejected or cancelled
	left      map[JobID]bool // rejected or cancelled: never ran
	buffered  map[JobID]bool
	running   map[JobID]InstanceID
	insts     map[InstanceID]*winst
	unstarted []InstanceID // instances whose Start is in progress
}

type winst struct {
	charge   int64
	prewarm  bool
	started  bool
	removed  bool
	max      int
	active   int
	action   ActionKey
	hasKey   bool
	conc     int
	starting JobID // the cold run that starts it
}

func newWorld(t testing.TB, pick func(int) int) *world {
	cfg := Config{
		UserMemory:           1024 * mb,
		IdleTimeout:          5 * time.Minute,
		PauseGrace:           10 * time.Second,
		PrewarmCheckInterval: time.Minute,
		StemCells: []StemCell{
			{Kind: "nodejs:20", Memory: 256 * mb, Driver: "d", InitialCount: 2,
				Reactive: &Reactive{MinCount: 1, MaxCount: 3, TTL: 2 * time.Minute, Threshold: 1, Increment: 1}},
			{Kind: "python:3.11", Memory: 128 * mb, Driver: "d", InitialCount: 1},
		},
	}
	w := &world{t: t, cfg: cfg, pick: pick, now: time.Unix(1e9, 0),
		jobs: map[JobID]Job{}, ran: map[JobID]int{}, settled: map[JobID]bool{}, left: map[JobID]bool{}, buffered: map[JobID]bool{},
		running: map[JobID]InstanceID{}, insts: map[InstanceID]*winst{}}
	c, ds, err := NewCore(cfg, w.now)
	if err != nil {
		t.Fatal(err)
	}
	w.core = c
	w.apply("init", ds)
	return w
}

func (w *world) fail(format string, a ...any) {
	w.t.Helper()
	w.t.Fatalf(format, a...)
}

// apply interprets decisions and checks every property.
func (w *world) apply(event string, ds []Decision) {
	w.t.Helper()
	for _, d := range ds {
		switch d.Op {
		case OpPrewarm:
			if w.insts[d.Inst] != nil {
				w.fail("%s: prewarm of existing instance %v", event, d.Inst)
			}
			w.insts[d.Inst] = &winst{charge: d.Charge, prewarm: true}
			w.unstarted = append(w.unstarted, d.Inst)
		case OpRun:
			j, ok := w.jobs[d.Job]
			if !ok || w.settled[d.Job] {
				w.fail("%s: run of unknown or settled job %d", event, d.Job)
			}
			w.ran[d.Job]++
			if w.ran[d.Job] > 1 {
				w.fail("%s: job %d run twice", event, d.Job)
			}
			delete(w.buffered, d.Job)
			in := w.insts[d.Inst]
			if d.Start.NeedsStart() {
				if in != nil {
					w.fail("%s: cold start on existing instance %v", event, d.Inst)
				}
				in = &winst{charge: d.Charge, starting: d.Job}
				w.insts[d.Inst] = in
				w.unstarted = append(w.unstarted, d.Inst)
			}
			if in == nil || in.removed {
				w.fail("%s: job %d placed on missing instance %v", event, d.Job, d.Inst)
			}
			if !d.Start.NeedsStart() && !in.started {
				w.fail("%s: job %d (%s) placed on unstarted instance %v", event, d.Job, d.Start, d.Inst)
			}
			if in.hasKey && in.action != j.Key {
				w.fail("%s: job %d of %v placed on instance of %v", event, d.Job, j.Key, in.action)
			}
			if in.prewarm && !in.hasKey && d.Start != Prewarmed && d.Start != RecreatedPrewarm {
				w.fail("%s: stem cell %v used as %s", event, d.Inst, d.Start)
			}
			in.action, in.hasKey, in.conc = j.Key, true, j.concurrency()
			in.active++
			if in.active > 1 && (in.active > in.max || in.active > in.conc) {
				w.fail("%s: instance %v runs %d at once (max %d, concurrency %d)", event, d.Inst, in.active, in.max, in.conc)
			}
			w.running[d.Job] = d.Inst
		case OpRemove:
			in := w.insts[d.Inst]
			if in == nil || in.removed {
				w.fail("%s: remove of missing instance %v", event, d.Inst)
			}
			if in.active > 0 {
				w.fail("%s: remove of instance %v with %d runs", event, d.Inst, in.active)
			}
			if d.Reason == "evict" && in.prewarm && !in.hasKey {
				w.fail("%s: stem cell %v evicted for space", event, d.Inst)
			}
			in.removed = true
		case OpPause:
			if in := w.insts[d.Inst]; in == nil || in.removed || in.active > 0 {
				w.fail("%s: pause of missing or busy instance %v", event, d.Inst)
			}
		case OpBuffer:
			w.buffered[d.Job] = true
		case OpReject:
			if d.Reason != "too-big" {
				w.fail("%s: job %d rejected: %s", event, d.Job, d.Reason)
			}
			if w.jobs[d.Job].charge() <= w.cfg.UserMemory {
				w.fail("%s: job %d rejected as too big but fits", event, d.Job)
			}
			w.settled[d.Job] = true
			w.left[d.Job] = true
		}
	}
	var sum int64
	for _, in := range w.insts {
		if !in.removed {
			sum += in.charge
		}
	}
	st := w.core.Stats()
	if sum != st.InUse {
		w.fail("%s: core charges %d, decisions add up to %d", event, st.InUse, sum)
	}
	if st.InUse > st.UserMemory {
		w.fail("%s: memory in use %d exceeds %d", event, st.InUse, st.UserMemory)
	}
	if st.Buffered != len(w.buffered) {
		w.fail("%s: core buffers %d, decisions say %d", event, st.Buffered, len(w.buffered))
	}
}

var (
	keys  = []string{"guest/a", "guest/b", "guest/c", "alice/d", "alice/e"}
	kinds = []string{"nodejs:20", "python:3.11"}
	mems  = []int64{128 * mb, 256 * mb, 512 * mb, 2048 * mb}
)

func (w *world) step() {
	w.t.Helper()
	switch w.pick(8) {
	case 0, 1: // submit
		w.nextID++
		// Limits are part of an action's identity: the concurrency follows from the key.
		k := w.pick(len(keys))
		j := Job{ID: w.nextID, Key: ActionKey{Namespace: "guest", Action: keys[k]},
			Kind: kinds[w.pick(len(kinds))], Memory: mems[w.pick(len(mems))], Concurrency: 1 + k%3, Driver: "d"}
		if w.pick(4) == 0 {
			j.Charge = j.Memory / 4
		}
		if w.pick(8) == 0 {
			j.Retry = true
		}
		w.jobs[j.ID] = j
		w.apply(fmt.Sprintf("submit %d", j.ID), w.core.Submit(w.now, j))
	case 2, 3: // a run ends
		if len(w.running) == 0 {
			return
		}
		ids := sortedJobs(w.running)
		id := ids[w.pick(len(ids))]
		in := w.insts[w.running[id]]
		if !in.started {
			return // still starting: its run cannot end yet
		}
		in.active--
		delete(w.running, id)
		w.settled[id] = true
		w.apply(fmt.Sprintf("done %d", id), w.core.Done(w.now, id, w.pick(5) != 0))
	case 4, 5: // a start finishes
		if len(w.unstarted) == 0 {
			return
		}
		k := w.pick(len(w.unstarted))
		id := w.unstarted[k]
		w.unstarted = append(w.unstarted[:k], w.unstarted[k+1:]...)
		in := w.insts[id]
		if in.removed {
			return
		}
		if in.prewarm && w.pick(6) == 0 {
			w.apply(fmt.Sprintf("startfail %v", id), w.core.StartFailed(w.now, id))
			return
		}
		if !in.prewarm && w.pick(6) == 0 {
			// A cold start that fails ends its run with keep=false.
			in.started = true
			in.active--
			delete(w.running, in.starting)
			w.settled[in.starting] = true
			w.apply(fmt.Sprintf("cold start fail %v", id), w.core.Done(w.now, in.starting, false))
			return
		}
		in.started = true
		in.max = 1 + w.pick(4)
		w.apply(fmt.Sprintf("started %v", id), w.core.Started(w.now, id, in.max, w.pick(2) == 0))
	case 6: // time passes
		w.now = w.now.Add(time.Duration(w.pick(90)) * time.Second)
		w.apply("tick", w.core.Tick(w.now))
	case 7: // a buffered run is cancelled
		if len(w.buffered) == 0 || w.pick(3) != 0 {
			return
		}
		ids := make([]JobID, 0, len(w.buffered))
		for id := range w.buffered {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
		id := ids[w.pick(len(ids))]
		ok, ds := w.core.Cancel(w.now, id)
		if !ok {
			w.fail("cancel %d: buffered job not cancelled", id)
		}
		delete(w.buffered, id)
		w.settled[id] = true
		w.left[id] = true
		w.apply(fmt.Sprintf("cancel %d", id), ds)
	}
}

func sortedJobs(m map[JobID]InstanceID) []JobID {
	ids := make([]JobID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// drain finishes every start and run until the pool is quiet, then checks that every job ran
// exactly once or was rejected or cancelled: none lost in the buffer.
func (w *world) drain() {
	w.t.Helper()
	for round := 0; len(w.unstarted) > 0 || len(w.running) > 0; round++ {
		if round > 100000 {
			w.fail("pool does not settle: %d starting, %d running, %d buffered", len(w.unstarted), len(w.running), len(w.buffered))
		}
		if len(w.unstarted) > 0 {
			id := w.unstarted[0]
			w.unstarted = w.unstarted[1:]
			if in := w.insts[id]; !in.removed {
				in.started, in.max = true, 2
				w.apply(fmt.Sprintf("drain started %v", id), w.core.Started(w.now, id, 2, false))
			}
			continue
		}
		id := sortedJobs(w.running)[0]
		w.insts[w.running[id]].active--
		delete(w.running, id)
		w.settled[id] = true
		w.apply(fmt.Sprintf("drain done %d", id), w.core.Done(w.now, id, true))
	}
	if len(w.buffered) > 0 {
		w.fail("quiet pool still buffers %v (stats %+v)", w.core.Buffered(), w.core.Stats())
	}
	for id := range w.jobs {
		if !w.settled[id] {
			w.fail("job %d neither ran to the end, nor was rejected or cancelled", id)
		}
		if (w.ran[id] == 0) != w.left[id] {
			w.fail("job %d: ran %d times, rejected or cancelled: %v", id, w.ran[id], w.left[id])
		}
	}
}

func runProperty(t testing.TB, pick func(int) int, steps int) {
	w := newWorld(t, pick)
	for i := 0; i < steps; i++ {
		w.step()
	}
	w.drain()
}

// TestCoreProperties drives the Core with random event sequences: memory in use never exceeds
// user memory, charges add up, no job runs twice, concurrency and liveness hold, and once the
// drivers have finished everything nothing is left in the buffer.
func TestCoreProperties(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runProperty(t, func(n int) int { return r.IntN(n) }, 400)
		})
	}
}

// FuzzCore is the same property with the fuzzer choosing the events.
func FuzzCore(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 4, 4, 2, 2, 6, 6, 7, 1, 1, 1, 5, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		i := 0
		pick := func(n int) int {
			if i >= len(b) {
				return 0
			}
			v := int(b[i]) % n
			i++
			return v
		}
		runProperty(t, pick, len(b))
	})
}
