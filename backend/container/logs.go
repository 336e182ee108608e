package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/runtimes"
)

// Sentinel is the line managed runtimes write on stdout and stderr after every /run (and after
// a failed /init); log collection for an activation ends after one on each stream.
const Sentinel = runtimes.Marker

// Log collection timing, as upstream (DockerToActivationLogStore): 2 s idle between lines and an
// overall bound of 2 s × max(5, log limit in MB).
const (
	logIdleTimeout = 2 * time.Second
	// settle is how long collection without sentinels waits for more output once the stream has
	// gone quiet: the action has already answered (or failed), so its output is in the pipes.
	logSettle = 50 * time.Millisecond
)

// CollectionIssue is the stderr line appended when log collection fails, as upstream's.
const CollectionIssue = "There was an issue while collecting your logs. Data might be missing."

type logItem struct {
	line     activation.LogLine
	sentinel bool
	eof      bool
}

// logPump turns a container's output streams into log items in the order read. Readers feed
// one channel; collect consumes it per activation.
type logPump struct {
	items chan logItem
	now   func() time.Time
	// closed counts streams that reached EOF (only collect touches it).
	closed int
	// carry holds items read during one collection that belong to the next: what a stream
	// wrote after its sentinel while the other stream's sentinel was still due.
	carry []logItem
	// idle is the longest wait for the next line while sentinels are due (logIdleTimeout).
	idle time.Duration
	wg   sync.WaitGroup
}

func newLogPump(now func() time.Time) *logPump {
	if now == nil {
		now = time.Now
	}
	return &logPump{items: make(chan logItem, 4096), now: now, idle: logIdleTimeout}
}

// readLines pumps one stream (stdout or stderr) line by line until EOF.
func (p *logPump) readLines(r io.Reader, stream string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		br := bufio.NewReaderSize(r, 64<<10)
		var partial []byte
		for {
			chunk, err := br.ReadSlice('\n')
			partial = append(partial, chunk...)
			if err == bufio.ErrBufferFull && len(partial) < 1<<20 {
				continue
			}
			if len(partial) > 0 && (err == nil || err == bufio.ErrBufferFull || err == io.EOF) {
				p.push(stream, string(bytes.TrimSuffix(partial, []byte{'\n'})))
				partial = partial[:0]
			}
			if err != nil && err != bufio.ErrBufferFull {
				p.items <- logItem{eof: true, line: activation.LogLine{Stream: stream}}
				return
			}
		}
	}()
}

// readMultiplexed pumps Docker's multiplexed log stream (8-byte frame headers: stream type,
// three zero bytes, big-endian length) until EOF.
func (p *logPump) readMultiplexed(r io.Reader) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		partial := map[string][]byte{}
		var hdr [8]byte
		defer func() {
			for _, s := range []string{"stdout", "stderr"} {
				if len(partial[s]) > 0 {
					p.push(s, string(partial[s]))
				}
				p.items <- logItem{eof: true, line: activation.LogLine{Stream: s}}
			}
		}()
		for {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			stream := "stdout"
			if hdr[0] == 2 {
				stream = "stderr"
			}
			size := binary.BigEndian.Uint32(hdr[4:])
			if size > 16<<20 {
				return
			}
			frame := make([]byte, size)
			if _, err := io.ReadFull(r, frame); err != nil {
				return
			}
			buf := append(partial[stream], frame...)
			for {
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					break
				}
				p.push(stream, string(buf[:i]))
				buf = buf[i+1:]
			}
			partial[stream] = append([]byte(nil), buf...)
		}
	}()
}

// push sends one line; a line ending with the sentinel yields its prefix and a sentinel.
func (p *logPump) push(stream, text string) {
	if strings.HasSuffix(text, Sentinel) {
		if prefix := strings.TrimSuffix(text, Sentinel); prefix != "" {
			p.items <- logItem{line: activation.LogLine{Time: p.now(), Stream: stream, Text: prefix}}
		}
		p.items <- logItem{sentinel: true, line: activation.LogLine{Stream: stream}}
		return
	}
	p.items <- logItem{line: activation.LogLine{Time: p.now(), Stream: stream, Text: text}}
}

// collected is one activation's logs.
type collected struct {
	lines     []activation.LogLine
	truncated bool
	// failed is true when sentinels were expected but did not come (idle or overall timeout).
	failed bool
	// gone is true when both streams ended (the container's process exited).
	gone bool
}

// collect takes the lines of one activation. With sentinels it reads until a sentinel on each
// stream (or both streams end), failing after logIdleTimeout without a line or the overall bound;
// without, it takes what arrives until the streams go quiet for logSettle. limit bounds the
// bytes kept (0 keeps none); the rest is consumed and dropped.
func (p *logPump) collect(ctx context.Context, sentinels bool, limit int64) collected {
	var c collected
	var kept int64
	seen := map[string]bool{}
	// handle takes one item; it reports whether the activation's logs are complete.
	handle := func(it logItem) bool {
		switch {
		case it.eof:
			p.closed++
		case seen[it.line.Stream]:
			p.carry = append(p.carry, it)
		case it.sentinel:
			seen[it.line.Stream] = true
			return sentinels && seen["stdout"] && seen["stderr"]
		case kept+int64(len(it.line.Text)) > limit:
			c.truncated = c.truncated || limit > 0
		default:
			kept += int64(len(it.line.Text))
			c.lines = append(c.lines, it.line)
		}
		return false
	}
	carried := p.carry
	p.carry = nil
	for i, it := range carried {
		if handle(it) {
			p.carry = append(p.carry, carried[i+1:]...)
			return c
		}
	}
	overall := time.NewTimer(2 * time.Second * time.Duration(max(5, limit>>20)))
	defer overall.Stop()
	wait := logSettle
	if sentinels {
		wait = p.idle
	}
	idle := time.NewTimer(wait)
	defer idle.Stop()
	for {
		if p.closed >= 2 {
			c.gone = true
			return c
		}
		select {
		case it := <-p.items:
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(wait)
			if handle(it) {
				return c
			}
		case <-idle.C:
			c.failed = sentinels
			return c
		case <-overall.C:
			c.failed = true
			return c
		case <-ctx.Done():
			c.failed = true
			return c
		}
	}
}
