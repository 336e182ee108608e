package unikernel

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReadyScripts drives the pure ready-guest policy with the scripts in testdata/ready: each
// line is an event (start, stop) or a question (keep, expired) whose answer follows "->".
func TestReadyScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/ready/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/ready: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runReadyScript(t, f) })
	}
}

func runReadyScript(t *testing.T, file string) {
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var cfg readyConfig
	var d demand
	t0 := time.Unix(1_700_000_000, 0)
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		event, want, hasWant := strings.Cut(line, "->")
		fields := strings.Fields(event)
		args := map[string]string{}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				t.Fatalf("%s:%d: argument %q is not key=value", file, n, f)
			}
			args[k] = v
		}
		num := func(k string) int64 {
			v, err := strconv.ParseInt(args[k], 10, 64)
			if err != nil {
				t.Fatalf("%s:%d: %s=%q: %v", file, n, k, args[k], err)
			}
			return v
		}
		at := func(k string) time.Time {
			dur, err := time.ParseDuration(args[k])
			if err != nil {
				t.Fatalf("%s:%d: %s=%q: %v", file, n, k, args[k], err)
			}
			return t0.Add(dur)
		}
		var got bool
		switch fields[0] {
		case "config":
			ttl, err := time.ParseDuration(args["ttl"])
			if err != nil {
				t.Fatalf("%s:%d: ttl: %v", file, n, err)
			}
			cfg = readyConfig{PerFunction: int(num("per-function")), Budget: num("budget"), TTL: ttl}
			continue
		case "start":
			d.started(at("at"), cfg.TTL)
			continue
		case "stop":
			d.stopped()
			continue
		case "keep":
			got = keepReady(&d, int(num("have")), num("held"), num("bytes"), at("at"), cfg)
		case "expired":
			got = expired(at("since"), at("at"), cfg)
		default:
			t.Fatalf("%s:%d: unknown event %q", file, n, fields[0])
		}
		if !hasWant {
			t.Fatalf("%s:%d: a question without an answer after ->", file, n)
		}
		if want := strings.TrimSpace(want) == "yes"; got != want {
			t.Errorf("%s:%d: %s: got %v, want %v", file, n, strings.TrimSpace(event), got, want)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
