package unikernel

import (
	"bytes"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// maxLogLine splits a log line longer than this, so a guest writing without newlines cannot make
// the driver buffer without bound.
const maxLogLine = 64 << 10

// logCollector gathers one step's stdout and stderr as lines, in the order the guest wrote them,
// keeping at most limit bytes of text (0: none) and noting when it dropped some. The guest's
// writes reach it from the goroutine running the guest, one at a time.
type logCollector struct {
	limit     int64
	used      int64
	lines     []activation.LogLine
	truncated bool
	now       func() time.Time
	partial   [2][]byte
	// lastStdout is the last complete stdout line whether or not the limit kept it: the result
	// of a dockerskeleton executable.
	lastStdout []byte
	sawStdout  bool
}

var streamNames = [2]string{"stdout", "stderr"}

var marker = []byte(runtimes.Marker)

func newLogCollector(limit int64, now func() time.Time) *logCollector {
	return &logCollector{limit: limit, now: now}
}

// stream returns the io.Writer for stdout (0) or stderr (1).
func (c *logCollector) stream(k int) *streamSink { return &streamSink{c: c, k: k} }

type streamSink struct {
	c *logCollector
	k int
}

func (s *streamSink) Write(p []byte) (int, error) {
	c := s.c
	buf := append(c.partial[s.k], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		c.add(s.k, buf[:i])
		buf = buf[i+1:]
	}
	for len(buf) > maxLogLine {
		c.add(s.k, buf[:maxLogLine])
		buf = buf[maxLogLine:]
	}
	c.partial[s.k] = append(c.partial[s.k][:0:0], buf...)
	return len(p), nil
}

func (c *logCollector) add(k int, text []byte) {
	// OpenWhisk's log sentinel never reaches an activation's logs: the invoker would take it for
	// the end of the activation's output. Managed launchers write it after every step; a native
	// executable has no reason to, and is not allowed to forge it.
	if bytes.Equal(text, marker) {
		return
	}
	if k == 0 {
		c.lastStdout = append(c.lastStdout[:0], text...)
		c.sawStdout = true
	}
	if c.limit <= 0 {
		return
	}
	if c.truncated || c.used+int64(len(text)) > c.limit {
		c.truncated = true
		return
	}
	c.used += int64(len(text))
	c.lines = append(c.lines, activation.LogLine{Time: c.now().UTC(), Stream: streamNames[k], Text: string(text)})
}

// flush ends half-written lines: the step is over, nothing more of it will come.
func (c *logCollector) flush() {
	for k := range c.partial {
		if len(c.partial[k]) > 0 {
			c.add(k, c.partial[k])
			c.partial[k] = nil
		}
	}
}

// takeLastStdout removes the last stdout line from the logs (when the limit kept it) and returns
// it: the dockerskeleton result. ok is false when the executable wrote nothing to stdout.
func (c *logCollector) takeLastStdout() (line []byte, ok bool) {
	c.flush()
	if !c.sawStdout {
		return nil, false
	}
	for i := len(c.lines) - 1; i >= 0; i-- {
		if c.lines[i].Stream == "stdout" {
			if c.lines[i].Text == string(c.lastStdout) {
				c.used -= int64(len(c.lines[i].Text))
				c.lines = append(c.lines[:i], c.lines[i+1:]...)
			}
			break
		}
	}
	return c.lastStdout, true
}

// resultSink receives fd 3: the reply line of a step. It keeps the first line only, at most max
// bytes of it, and counts its full length.
type resultSink struct {
	max    int64
	body   []byte
	length int
	done   bool
}

func (r *resultSink) Write(p []byte) (int, error) {
	if r.done {
		return len(p), nil // later lines belong to no step: the instance is reset after this one
	}
	chunk := p
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		chunk, r.done = p[:i], true
	}
	r.length += len(chunk)
	if room := r.max - int64(len(r.body)); room > 0 {
		r.body = append(r.body, chunk[:min(int64(len(chunk)), room)]...)
	}
	return len(p), nil
}

// line returns the reply without a trailing carriage return.
func (r *resultSink) line() []byte { return bytes.TrimSuffix(r.body, []byte{'\r'}) }
