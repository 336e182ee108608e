package container

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/backend"
)

// serveUnix serves h on a fresh unix socket and returns a client for it.
func serveUnix(t *testing.T, h http.HandlerFunc) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "rt.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewUnixClient(sock), sock
}

func TestClientRequestShape(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	c, _ := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, strings.Join([]string{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Accept"),
			strings.ToLower(r.Header.Get("Connection")), string(b)}, "|"))
		mu.Unlock()
		w.Header().Set("Content-Length", "11")
		w.Write([]byte(`{"ok":true}`))
	})
	ctx := context.Background()
	o, err := c.Init(ctx, []byte(`{"value":{"code":"x"}}`), time.Now().Add(10*time.Second))
	if err != nil || o.Failure != activation.NoFailure || o.Status != 200 || string(o.Body) != `{"ok":true}` || o.Length != 11 {
		t.Fatalf("init: %v %+v", err, o)
	}
	if _, err := c.Run(ctx, []byte(`{"value":{}}`), time.Now().Add(10*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`POST|/init|application/json|application/json|close|{"value":{"code":"x"}}`,
		`POST|/run|application/json|application/json|close|{"value":{}}`,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

func TestClientInitWaitsForTheRuntime(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "late.sock")
	c := NewUnixClient(sock)
	listening := make(chan struct{})
	go func() {
		time.Sleep(120 * time.Millisecond) // the runtime boots; /init keeps retrying meanwhile
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return
		}
		close(listening)
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) }))
	}()
	o, err := c.Init(context.Background(), []byte(`{}`), time.Now().Add(20*time.Second))
	if err != nil || o.Failure != activation.NoFailure || o.Status != 200 {
		t.Fatalf("%v %+v", err, o)
	}
	<-listening
	// /run does not retry: nobody listening is an exited runtime.
	c2 := NewUnixClient(filepath.Join(t.TempDir(), "none.sock"))
	o, err = c2.Run(context.Background(), []byte(`{}`), time.Now().Add(20*time.Second), 0)
	if err != nil || o.Failure != activation.FailureExited {
		t.Fatalf("run without a runtime: %v %v", err, o.Failure)
	}
	// /init gives up at its deadline.
	o, err = c2.Init(context.Background(), []byte(`{}`), time.Now().Add(150*time.Millisecond))
	if err != nil || o.Failure != activation.FailureTimeout {
		t.Fatalf("init without a runtime: %v %v", err, o.Failure)
	}
}

func TestClientResponses(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 3000)
	cases := []struct {
		name    string
		h       http.HandlerFunc
		max     int64
		failure activation.RuntimeFailure
		status  int
		body    string
		length  int
		err     error
	}{
		{"truncated at the limit", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3000")
			w.Write(big)
		}, 1000, activation.NoFailure, 200, string(big[:1000]), 3000, nil},
		{"developer error body kept", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			w.Write([]byte(`{"error":"boom"}`))
		}, 0, activation.NoFailure, 502, `{"error":"boom"}`, 16, nil},
		{"no content length", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush() // chunked: no Content-Length
			w.Write([]byte(`{}`))
		}, 0, activation.FailureNoResponse, 200, "", 0, nil},
		{"connection dropped", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, 0, activation.FailureExited, 0, "", 0, nil},
		{"body cut short", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\"")
			buf.Flush()
			conn.Close()
		}, 0, activation.FailureExited, 200, `{"partial"`, 100, nil},
		{"unhealthy", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, 0, activation.NoFailure, 503, "", 0, ErrUnhealthy},
		{"past the deadline", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		}, 0, activation.FailureTimeout, 0, "", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, _ := serveUnix(t, c.h)
			deadline := time.Now().Add(30 * time.Second)
			if c.failure == activation.FailureTimeout {
				deadline = time.Now().Add(200 * time.Millisecond)
			}
			o, err := cl.Run(context.Background(), []byte(`{"value":{}}`), deadline, c.max)
			if !errors.Is(err, c.err) || (c.err != nil && !errors.Is(err, backend.ErrPlatform)) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if o.Failure != c.failure || o.Status != c.status || string(o.Body) != c.body || o.Length != c.length {
				t.Fatalf("got failure %v status %d body %q length %d", o.Failure, o.Status, o.Body, o.Length)
			}
			if o.End.Before(o.Start) || o.Start.IsZero() {
				t.Fatalf("start %v end %v", o.Start, o.End)
			}
		})
	}
}
