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

// maxQueued bounds the log text held between collections (the output of a chatty /init or of
// code running between activations); lines beyond it are dropped and the next collection
// reports truncated logs. Readers never block, so a container never stalls on its own log.
const maxQueued = 32 << 20

// logPump turns a container's output streams into log items in the order read. Readers append
// to a queue; collect takes from it per activation.
type logPump struct {
	now func() time.Time
	wg  sync.WaitGroup

	mu      sync.Mutex
	queue   []logItem
	queued  int64 // bytes of line text in queue
	dropped bool  // lines were dropped at maxQueued since the last take
	notify  chan struct{}

	// closed counts streams that reached EOF (only collect touches it).
	closed int
	// carry holds items read during one collection that belong to the next: what a stream
	// wrote after its sentinel while the other stream's sentinel was still due.
	carry []logItem
	// idle is the longest wait for the next line while sentinels are due (logIdleTimeout).
	idle time.Duration
}

func newLogPump(now func() time.Time) *logPump {
	if now == nil {
		now = time.Now
	}
	return &logPump{now: now, idle: logIdleTimeout, notify: make(chan struct{}, 1)}
}

// send queues one item without blocking.
func (p *logPump) send(it logItem) {
	p.mu.Lock()
	if !it.eof && !it.sentinel && p.queued+int64(len(it.line.Text)) > maxQueued {
		p.dropped = true
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, it)
	p.queued += int64(len(it.line.Text))
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// take returns the queued items and whether lines were dropped before them.
func (p *logPump) take() ([]logItem, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	items, dropped := p.queue, p.dropped
	p.queue, p.queued, p.dropped = nil, 0, false
	return items, dropped
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
				p.send(logItem{eof: true, line: activation.LogLine{Stream: stream}})
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
				p.send(logItem{eof: true, line: activation.LogLine{Stream: s}})
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
			p.send(logItem{line: activation.LogLine{Time: p.now(), Stream: stream, Text: prefix}})
		}
		p.send(logItem{sentinel: true, line: activation.LogLine{Stream: stream}})
		return
	}
	p.send(logItem{line: activation.LogLine{Time: p.now(), Stream: stream, Text: text}})
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
		items, dropped := p.take()
		if dropped && limit > 0 {
			c.truncated = true
		}
		if len(items) > 0 {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(wait)
			for i, it := range items {
				if handle(it) {
					p.carry = append(p.carry, items[i+1:]...)
					return c
				}
			}
			continue
		}
		select {
		case <-p.notify:
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
