package kafkafeed

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestTrackerScript(t *testing.T) {
	f, err := os.Open("testdata/tracker.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tr *Tracker
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cmd, want, _ := strings.Cut(text, "->")
		fields := strings.Fields(cmd)
		want = strings.TrimSpace(want)
		arg := func() int64 {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			return n
		}
		var got string
		switch fields[0] {
		case "start":
			tr = NewTracker(arg())
			continue
		case "deliver":
			got = map[bool]string{true: "ok", false: "dup"}[tr.Deliver(arg())]
		case "done":
			tr.Done(arg())
			continue
		case "commit":
			off, adv := tr.Commit()
			got = fmt.Sprintf("%d %s", off, map[bool]string{true: "advanced", false: "same"}[adv])
		case "inflight":
			got = strconv.Itoa(tr.InFlight())
		default:
			t.Fatalf("line %d: unknown command %q", line, fields[0])
		}
		if got != want {
			t.Errorf("line %d: %s -> %s, want %s", line, cmd, got, want)
		}
	}
}

// TestTrackerRandomOrder checks the invariant on many random completion orders: the commit point
// is always one past the longest finished prefix.
func TestTrackerRandomOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		n := 1 + rng.Intn(300)
		tr := NewTracker(0)
		for i := 0; i < n; i++ {
			tr.Deliver(int64(i))
		}
		done := make([]bool, n)
		for _, i := range rng.Perm(n) {
			tr.Done(int64(i))
			done[i] = true
			prefix := 0
			for prefix < n && done[prefix] {
				prefix++
			}
			if off, _ := tr.Commit(); off != int64(prefix) {
				t.Fatalf("round %d: commit %d, want %d", round, off, prefix)
			}
		}
		if tr.InFlight() != 0 {
			t.Fatalf("round %d: %d in flight after all done", round, tr.InFlight())
		}
	}
}

// FuzzTracker drives the tracker with arbitrary deliveries and completions and checks the
// invariant against a naive model: the commit point never passes an offset that was delivered
// and not done, and equals one past the highest offset of the finished delivered prefix.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 1, 2, 130, 129, 128})
	f.Add([]byte{5, 3, 200, 7, 133, 135})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr := NewTracker(0)
		var delivered []int64
		done := map[int64]bool{}
		next := int64(0)
		for _, op := range ops {
			if op < 128 {
				off := next + int64(op%4) // gaps of up to 3
				if tr.Deliver(off) {
					delivered = append(delivered, off)
					next = off + 1
				}
				continue
			}
			if len(delivered) == 0 {
				continue
			}
			off := delivered[int(op-128)%len(delivered)]
			tr.Done(off)
			done[off] = true
		}
		want := int64(0)
		for _, off := range delivered {
			if !done[off] {
				break
			}
			want = off + 1
		}
		if got, _ := tr.Commit(); got != want {
			t.Fatalf("commit %d, want %d (delivered %v, done %v)", got, want, delivered, done)
		}
	})
}
