package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// ErrUnhealthy: the runtime answered 503. Upstream treats it as a container-health failure: the
// container is destroyed and the activation is not answered by this run (protocol spec §6). It
// wraps backend.ErrPlatform.
var ErrUnhealthy = fmt.Errorf("runtime answered 503 (container unhealthy): %w", backend.ErrPlatform)

// DefaultMaxResponse is OpenWhisk's truncation limit and default allowedMaxPayloadSize (1 MiB).
const DefaultMaxResponse = 1 << 20

// initRetryInterval is how often /init retries while the runtime is not listening yet.
const initRetryInterval = 50 * time.Millisecond

// Client speaks the runtime protocol (protocol spec §6) to one container: POST /init and
// POST /run with JSON bodies, one connection per call (no reuse), each call bounded by its
// deadline. It only observes: the outcome is classified by package activation.
type Client struct {
	// Dial opens a connection to the runtime (a unix socket, or TCP to <ip>:8080).
	Dial func(ctx context.Context) (net.Conn, error)
	// Host is the Host header / URL authority ("localhost" for a unix socket, "<ip>:8080").
	Host string
	// Now is the clock of the outcome (default time.Now).
	Now func() time.Time

	once sync.Once
	hc   *http.Client
}

// NewTCPClient returns a client for a runtime at addr ("10.1.2.3:8080").
func NewTCPClient(addr string) *Client {
	var d net.Dialer
	return &Client{Host: addr, Dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
}

// NewUnixClient returns a client for a runtime listening on a unix socket.
func NewUnixClient(path string) *Client {
	var d net.Dialer
	return &Client{Host: "localhost", Dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }}
}

// httpClient is built once per Client; keep-alives are off, so every call still gets its own
// connection, as upstream's client does.
func (c *Client) httpClient() *http.Client {
	c.once.Do(func() {
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return c.Dial(ctx) },
			DisableKeepAlives:  true,
			DisableCompression: true,
		}}
	})
	return c.hc
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Init posts body (the whole /init body, {"value":{...}}) to /init. Connection refused and a
// missing socket are retried every 50 ms until the deadline (the runtime is still booting).
func (c *Client) Init(ctx context.Context, body []byte, deadline time.Time) (activation.RuntimeOutcome, error) {
	return c.call(ctx, "/init", body, deadline, DefaultMaxResponse, true)
}

// Run posts body (the /run body) to /run, keeping at most maxResponse bytes of the answer
// (DefaultMaxResponse when 0).
func (c *Client) Run(ctx context.Context, body []byte, deadline time.Time, maxResponse int64) (activation.RuntimeOutcome, error) {
	if maxResponse <= 0 {
		maxResponse = DefaultMaxResponse
	}
	return c.call(ctx, "/run", body, deadline, maxResponse, false)
}

func (c *Client) call(ctx context.Context, path string, body []byte, deadline time.Time, maxResponse int64, retry bool) (activation.RuntimeOutcome, error) {
	out := activation.RuntimeOutcome{Start: c.now()}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	hc := c.httpClient()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.Host+path, bytes.NewReader(body))
		if err != nil {
			return out, fmt.Errorf("container: %s: building the request: %w: %w", path, err, backend.ErrPlatform)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				out.End = c.now()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					out.Failure = activation.FailureTimeout
					return out, nil
				}
				return out, fmt.Errorf("container: %s: %w", path, ctx.Err())
			}
			if retry && notListening(err) {
				select {
				case <-time.After(initRetryInterval):
					continue
				case <-ctx.Done():
					continue // reported as a timeout above
				}
			}
			out.End = c.now()
			out.Failure = activation.FailureExited
			return out, nil
		}
		return c.read(ctx, path, resp, out, maxResponse)
	}
}

func (c *Client) read(ctx context.Context, path string, resp *http.Response, out activation.RuntimeOutcome, maxResponse int64) (activation.RuntimeOutcome, error) {
	defer resp.Body.Close()
	out.Status = resp.StatusCode
	if resp.ContentLength < 0 {
		// No usable length (upstream's client refuses such a response).
		out.End = c.now()
		out.Failure = activation.FailureNoResponse
		return out, nil
	}
	n := min(resp.ContentLength, maxResponse)
	buf := make([]byte, n)
	got, err := io.ReadFull(resp.Body, buf)
	out.End = c.now()
	out.Body = buf[:got]
	out.Length = int(resp.ContentLength)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			out.Failure = activation.FailureTimeout
		} else {
			out.Failure = activation.FailureExited
		}
		return out, nil
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return out, fmt.Errorf("container: %s: %w", path, ErrUnhealthy)
	}
	return out, nil
}

// notListening is true for the errors of a runtime that has not opened its socket yet.
func notListening(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, os.ErrNotExist)
}
