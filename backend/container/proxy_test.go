package container

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestProxyStreams runs the proxy in process (TCP) and checks what it writes to the container's
// log: the action's lines, then exactly one sentinel per stream after each /run and after a
// failed /init, none after a successful /init.
func TestProxyStreams(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.dir, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			var out, errs syncBuf
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go ServeProxy(ctx, ProxyConfig{Listen: "tcp:" + addr, Kind: k.kind, WorkDir: t.TempDir(), Stdout: &out, Stderr: &errs})
			c := NewTCPClient(addr)
			o, err := c.Init(ctx, initBody(readSample(t, k.dir, "logflood"+k.ext), "main", false), time.Now().Add(30*time.Second))
			if err != nil || o.Status != 200 {
				t.Fatalf("init %v %+v", err, o)
			}
			if s := out.take() + errs.take(); strings.Contains(s, Sentinel) {
				t.Fatalf("sentinel after a successful init: %q", s)
			}
			for _, n := range []int{4000, 2} {
				o, err = c.Run(ctx, runBody(map[string]any{"lines": n}), time.Now().Add(30*time.Second), 0)
				if err != nil || o.Status != 200 {
					t.Fatalf("run %v %+v", err, o)
				}
				so, se := out.take(), errs.take()
				if strings.Count(so, "\n") != n+1 || !strings.HasSuffix(so, Sentinel+"\n") || strings.Count(so, Sentinel) != 1 || se != Sentinel+"\n" {
					t.Fatalf("run of %d lines: stdout has %d lines (sentinel last: %v), stderr %q", n, strings.Count(so, "\n"), strings.HasSuffix(so, Sentinel+"\n"), se)
				}
			}
			// A second /init is refused.
			o, _ = c.Init(ctx, initBody("x", "main", false), time.Now().Add(10*time.Second))
			if o.Status != 403 {
				t.Fatalf("second init %d", o.Status)
			}
		})
	}
}

func TestProxyHostileRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeProxy(ctx, ProxyConfig{Listen: "tcp:" + addr, Kind: "python:3.11", WorkDir: t.TempDir(), Stdout: io.Discard, Stderr: io.Discard})
	c := NewTCPClient(addr)
	for i := 0; ; i++ { // wait until the proxy listens: /run does not retry
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			break
		}
		if i > 2000 {
			t.Fatalf("proxy never listened: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	o, _ := c.Run(ctx, runBody(map[string]any{}), deadline, 0)
	if o.Status != 500 {
		t.Fatalf("run before init: %d %s", o.Status, o.Body)
	}
	for _, body := range []string{`not json`, `[]`, `{"value":"str"}`, `{"value":{"code":5}}`} {
		o, _ = c.Init(ctx, []byte(body), deadline)
		if o.Status != 403 {
			t.Fatalf("init %s: %d %s", body, o.Status, o.Body)
		}
	}
	// A bad run line after a good init is answered, and the launcher keeps serving.
	o, _ = c.Init(ctx, initBody("def main(a):\n    return a\n", "main", false), deadline)
	if o.Status != 200 {
		t.Fatalf("init %d %s", o.Status, o.Body)
	}
	o, _ = c.Run(ctx, []byte(`{"value":`), deadline, 0)
	if o.Status == 200 {
		t.Fatalf("truncated run body answered 200: %s", o.Body)
	}
	o, _ = c.Run(ctx, runBody(map[string]any{"k": "v"}), deadline, 0)
	if o.Status != 200 || !json.Valid(o.Body) || !bytes.Contains(o.Body, []byte(`"k"`)) {
		t.Fatalf("run after a bad one: %d %s", o.Status, o.Body)
	}
}

// FuzzUnzip: a hostile archive never writes outside the action directory and never panics.
func FuzzUnzip(f *testing.F) {
	mk := func(names ...string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, n := range names {
			w, _ := zw.Create(n)
			w.Write([]byte("x"))
		}
		zw.Close()
		return b.Bytes()
	}
	f.Add(mk("exec"))
	f.Add(mk("../escape"))
	f.Add(mk("/abs", "a/../../b"))
	f.Add([]byte("PK\x03\x04garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "action")
		os.MkdirAll(dir, 0o755)
		unzipTo(data, dir)
		entries, _ := os.ReadDir(root)
		if len(entries) != 1 || entries[0].Name() != "action" {
			t.Fatalf("archive wrote outside the action directory: %v", entries)
		}
	})
}
