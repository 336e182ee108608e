package container

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"
)

func frame(stream byte, s string) []byte {
	h := make([]byte, 8, 8+len(s))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(s)))
	return append(h, s...)
}

func lines(c collected) string {
	var b strings.Builder
	for _, l := range c.lines {
		b.WriteString(l.Stream + ":" + l.Text + "\n")
	}
	return b.String()
}

func perStream(c collected) map[string]string {
	m := map[string][]string{}
	for _, l := range c.lines {
		m[l.Stream] = append(m[l.Stream], l.Text)
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = strings.Join(v, "|")
	}
	return out
}

func TestLogPumpSentinels(t *testing.T) {
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	p := newLogPump(nil)
	p.readLines(outR, "stdout")
	p.readLines(errR, "stderr")
	go func() {
		io.WriteString(outW, "one\ntwo\n"+Sentinel+"\n")
		io.WriteString(errW, "warn\n"+Sentinel+"\n")
		// Output without a final newline before the sentinel, then the next activation.
		io.WriteString(outW, "partial"+Sentinel+"\n")
		io.WriteString(errW, Sentinel+"\n")
		io.WriteString(outW, strings.Repeat("z", 50)+"\n"+strings.Repeat("z", 50)+"\n"+Sentinel+"\n")
		io.WriteString(errW, Sentinel+"\n")
		outW.Close()
		errW.Close()
	}()
	ctx := context.Background()
	c := p.collect(ctx, true, 1<<20)
	got := lines(c)
	// stdout and stderr are read by separate readers: compare per stream.
	if per := perStream(c); per["stdout"] != "one|two" || per["stderr"] != "warn" || c.failed || c.truncated {
		t.Fatalf("first activation %q failed %v", got, c.failed)
	}
	c = p.collect(ctx, true, 1<<20)
	if got := lines(c); got != "stdout:partial\n" {
		t.Fatalf("second activation %q", got)
	}
	c = p.collect(ctx, true, 60)
	if len(c.lines) != 1 || !c.truncated {
		t.Fatalf("third activation: %d lines, truncated %v; want 1 line under a 60-byte limit", len(c.lines), c.truncated)
	}
	// Both streams ended: collection without sentinels reports the container gone.
	c = p.collect(ctx, false, 1<<20)
	if !c.gone || len(c.lines) != 0 {
		t.Fatalf("after EOF: gone %v lines %q", c.gone, lines(c))
	}
}

func TestLogPumpMissingSentinels(t *testing.T) {
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	defer outW.Close()
	defer errW.Close()
	p := newLogPump(nil)
	p.idle = 100 * time.Millisecond
	p.readLines(outR, "stdout")
	p.readLines(errR, "stderr")
	go io.WriteString(outW, "before\n"+Sentinel+"\n") // stderr never sends its sentinel
	c := p.collect(context.Background(), true, 1<<20)
	if !c.failed || lines(c) != "stdout:before\n" {
		t.Fatalf("failed %v lines %q", c.failed, lines(c))
	}
	// Without sentinels due, quiet streams end collection without failing.
	go io.WriteString(errW, "late\n")
	c = p.collect(context.Background(), false, 1<<20)
	if c.failed {
		t.Fatal("collection without sentinels failed")
	}
}

func TestLogPumpMultiplexed(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(frame(1, "hel"))
	stream.Write(frame(1, "lo\nwor"))
	stream.Write(frame(2, "oops\n"))
	stream.Write(frame(1, "ld\n"+Sentinel+"\n"))
	stream.Write(frame(2, Sentinel+"\n"))
	p := newLogPump(nil)
	p.readMultiplexed(&stream)
	c := p.collect(context.Background(), true, 1<<20)
	if got := lines(c); got != "stdout:hello\nstdout:world\nstderr:oops\n" && got != "stdout:hello\nstderr:oops\nstdout:world\n" {
		t.Fatalf("lines %q", got)
	}
	c = p.collect(context.Background(), false, 1<<20)
	if !c.gone {
		t.Fatal("end of the multiplexed stream not seen")
	}
}

// FuzzMultiplexed: any byte stream from a (hostile) Docker daemon ends collection; no panic, no
// hang, no unbounded allocation.
func FuzzMultiplexed(f *testing.F) {
	f.Add(append(frame(1, "a\n"+Sentinel+"\n"), frame(2, Sentinel+"\n")...))
	f.Add([]byte{2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("not a frame at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newLogPump(nil)
		p.idle = 10 * time.Millisecond
		p.readMultiplexed(bytes.NewReader(data))
		for i := 0; i < 3; i++ {
			c := p.collect(context.Background(), true, 1<<20)
			if c.gone {
				return
			}
		}
	})
}
