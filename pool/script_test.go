package pool

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The scripts in testdata/*.txt drive a Core line by line. Syntax (memory in MB, times as Go
// durations since the script's start; `at=` may be left out to keep the previous time):
//
//	config user-memory=512 [idle=10m] [pause=10s] [check=10m]
//	stemcell KIND mem=256 count=2 [driver=d] [charge=N] [min= max= ttl= threshold= increment=]
//	init [at=T] [-> decisions]                  (NewCore; config and stemcell lines come first)
//	run JOB NS/ACTION [mem=256] [kind=nodejs:20] [conc=1] [ver=V] [digest=D] [ns=INVOKER_NS]
//	    [driver=d] [charge=N] [retry] [at=T] [-> decisions]
//	started INST [max=1] [pausable] [at=T] [-> decisions]
//	startfail INST [at=T] [-> decisions]
//	done JOB [destroy] [at=T] [-> decisions]
//	cancel JOB [at=T] -> cancelled | not-buffered [; decisions]
//	tick [at=T] [-> decisions]
//	stats inuse=N running=N buffered=N instances=N prewarmed=N idle=N   (any subset)
//	buffer JOB JOB …                             (the run buffer, in order)
//
// A line without "->" must produce no decisions. Decisions print as
// `cold JOB INST`, `warmed JOB INST [resume]`, `prewarmed JOB INST`, `warming …`,
// `warmingCold …`, `recreated …`, `recreatedPrewarm …`, `prewarm INST KIND MB`,
// `remove INST REASON`, `pause INST`, `buffer JOB`, `reject JOB REASON`, joined by "; ".
// After every line the harness checks that memory in use never exceeds user memory.

const mb = 1 << 20

type script struct {
	t     *testing.T
	file  string
	line  int
	cfg   Config
	core  *Core
	now   time.Time
	jobs  map[string]JobID
	names map[JobID]string
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, file string) {
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	s := &script{t: t, file: file, jobs: map[string]JobID{}, names: map[JobID]string{},
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	start := s.now
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		s.line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cmd, want, hasWant := strings.Cut(text, "->")
		want = strings.TrimSpace(want)
		fields := strings.Fields(cmd)
		args := map[string]string{}
		var words []string
		for _, f := range fields[1:] {
			if k, v, ok := strings.Cut(f, "="); ok {
				args[k] = v
			} else {
				words = append(words, f)
			}
		}
		if at, ok := args["at"]; ok {
			d, err := time.ParseDuration(at)
			if err != nil {
				s.fatalf("at=%s: %v", at, err)
			}
			s.now = start.Add(d)
		}
		var got []Decision
		extra := ""
		switch fields[0] {
		case "config":
			s.cfg.UserMemory = s.int(args, "user-memory", 0) * mb
			s.cfg.IdleTimeout = s.dur(args, "idle", 0)
			s.cfg.PauseGrace = s.dur(args, "pause", 0)
			s.cfg.PrewarmCheckInterval = s.dur(args, "check", 0)
			continue
		case "stemcell":
			cell := StemCell{Kind: words[0], Memory: s.int(args, "mem", 256) * mb, InitialCount: int(s.int(args, "count", 1)),
				Driver: s.str(args, "driver", "d"), Charge: s.int(args, "charge", 0) * mb}
			if _, ok := args["ttl"]; ok {
				cell.Reactive = &Reactive{MinCount: int(s.int(args, "min", 0)), MaxCount: int(s.int(args, "max", 1)),
					TTL: s.dur(args, "ttl", 0), Threshold: int(s.int(args, "threshold", 1)), Increment: int(s.int(args, "increment", 1))}
			}
			s.cfg.StemCells = append(s.cfg.StemCells, cell)
			continue
		case "init":
			c, ds, err := NewCore(s.cfg, s.now)
			if err != nil {
				s.fatalf("NewCore: %v", err)
			}
			s.core, got = c, ds
		case "run":
			name, action := words[0], words[1]
			if _, dup := s.jobs[name]; !dup {
				s.jobs[name] = JobID(len(s.jobs) + 1)
				s.names[s.jobs[name]] = name
			}
			ns, _, _ := strings.Cut(action, "/")
			j := Job{
				ID:          s.jobs[name],
				Key:         ActionKey{Namespace: s.str(args, "ns", ns), Action: action, Version: args["ver"], Digest: args["digest"]},
				Kind:        s.str(args, "kind", "nodejs:20"),
				Memory:      s.int(args, "mem", 256) * mb,
				Charge:      s.int(args, "charge", 0) * mb,
				Concurrency: int(s.int(args, "conc", 1)),
				Driver:      s.str(args, "driver", "d"),
			}
			for _, w := range words[2:] {
				if w == "retry" {
					j.Retry = true
				}
			}
			got = s.mustCore().Submit(s.now, j)
		case "started":
			_, pausable := argWord(words, "pausable")
			got = s.mustCore().Started(s.now, s.inst(words[0]), int(s.int(args, "max", 1)), pausable)
		case "startfail":
			got = s.mustCore().StartFailed(s.now, s.inst(words[0]))
		case "done":
			_, destroy := argWord(words, "destroy")
			got = s.mustCore().Done(s.now, s.job(words[0]), !destroy)
		case "cancel":
			ok, ds := s.mustCore().Cancel(s.now, s.job(words[0]))
			got = ds
			extra = "not-buffered"
			if ok {
				extra = "cancelled"
			}
		case "tick":
			got = s.mustCore().Tick(s.now)
		case "stats":
			st := s.mustCore().Stats()
			have := map[string]int64{"inuse": st.InUse / mb, "running": int64(st.Running), "buffered": int64(st.Buffered),
				"instances": int64(st.Instances), "prewarmed": int64(st.Prewarmed), "idle": int64(st.Idle)}
			for k, v := range args {
				h, ok := have[k]
				if !ok {
					s.fatalf("stats: unknown field %s", k)
				}
				if strconv.FormatInt(h, 10) != v {
					s.errorf("stats %s = %d, want %s (all: %+v)", k, h, v, st)
				}
			}
			continue
		case "buffer":
			var have []string
			for _, id := range s.mustCore().Buffered() {
				have = append(have, s.names[id])
			}
			if strings.Join(have, " ") != strings.Join(words, " ") {
				s.errorf("buffer = [%s], want [%s]", strings.Join(have, " "), strings.Join(words, " "))
			}
			continue
		default:
			s.fatalf("unknown command %q", fields[0])
		}
		out := s.format(got)
		if extra != "" {
			out = strings.Join(append([]string{extra}, nonEmpty(out)...), "; ")
		}
		if !hasWant {
			want = ""
		}
		if out != want {
			s.errorf("%s\n\tgot:  %s\n\twant: %s", strings.TrimSpace(cmd), out, want)
		}
		if st := s.core.Stats(); st.InUse > st.UserMemory || st.InUse < 0 {
			s.errorf("memory in use %d outside [0, %d]", st.InUse, st.UserMemory)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func argWord(words []string, w string) (int, bool) {
	for i, x := range words {
		if x == w {
			return i, true
		}
	}
	return 0, false
}

func (s *script) format(ds []Decision) string {
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		parts = append(parts, formatDecision(d, func(j JobID) string {
			if n, ok := s.names[j]; ok {
				return n
			}
			return fmt.Sprintf("j%d", j)
		}))
	}
	return strings.Join(parts, "; ")
}

func formatDecision(d Decision, job func(JobID) string) string {
	switch d.Op {
	case OpRun:
		out := fmt.Sprintf("%s %s %s", d.Start, job(d.Job), d.Inst)
		if d.Resume {
			out += " resume"
		}
		return out
	case OpPrewarm:
		return fmt.Sprintf("prewarm %s %s %d", d.Inst, d.Kind, d.Memory/mb)
	case OpRemove:
		return fmt.Sprintf("remove %s %s", d.Inst, d.Reason)
	case OpPause:
		return fmt.Sprintf("pause %s", d.Inst)
	case OpBuffer:
		return fmt.Sprintf("buffer %s", job(d.Job))
	case OpReject:
		return fmt.Sprintf("reject %s %s", job(d.Job), d.Reason)
	}
	return fmt.Sprintf("op%d", d.Op)
}

func (s *script) mustCore() *Core {
	if s.core == nil {
		s.fatalf("no `init` line before the first event")
	}
	return s.core
}

func (s *script) inst(w string) InstanceID {
	n, err := strconv.ParseUint(strings.TrimPrefix(w, "i"), 10, 64)
	if err != nil || !strings.HasPrefix(w, "i") {
		s.fatalf("instance %q: want iN", w)
	}
	return InstanceID(n)
}

func (s *script) job(w string) JobID {
	id, ok := s.jobs[w]
	if !ok {
		s.fatalf("unknown job %q", w)
	}
	return id
}

func (s *script) int(args map[string]string, k string, def int64) int64 {
	v, ok := args[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		s.fatalf("%s=%s: %v", k, v, err)
	}
	return n
}

func (s *script) dur(args map[string]string, k string, def time.Duration) time.Duration {
	v, ok := args[k]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fatalf("%s=%s: %v", k, v, err)
	}
	return d
}

func (s *script) str(args map[string]string, k, def string) string {
	if v, ok := args[k]; ok {
		return v
	}
	return def
}

func (s *script) fatalf(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, a...))
}

func (s *script) errorf(format string, a ...any) {
	s.t.Helper()
	s.t.Errorf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, a...))
}
