package container

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapinvoker/snapinvoker/activation"
)

func TestLogPumpScript(t *testing.T) {
	f, err := os.Open("testdata/logpump.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	clock := time.Unix(1700000000, 0)
	fresh := func() *logPump {
		p := newLogPump(func() time.Time { return clock })
		p.idle = time.Millisecond // nothing arrives during a scripted collection
		return p
	}
	p := fresh()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "reset":
			p = fresh()
		case "push":
			stream, text, _ := strings.Cut(rest, " ")
			p.push(stream, strings.ReplaceAll(text, "$S", Sentinel))
		case "eof":
			p.send(logItem{eof: true, line: activation.LogLine{Stream: rest}})
		case "collect":
			args, want, ok := strings.Cut(rest, "->")
			if !ok {
				t.Fatalf("line %d: collect without ->", n)
			}
			var sentinels bool
			var limit int64
			for _, a := range strings.Fields(args) {
				k, v, _ := strings.Cut(a, "=")
				switch k {
				case "sentinels":
					sentinels = v == "true"
				case "limit":
					limit, _ = strconv.ParseInt(v, 10, 64)
				default:
					t.Fatalf("line %d: unknown argument %q", n, a)
				}
			}
			c := p.collect(context.Background(), sentinels, limit)
			got := []string{}
			for _, l := range c.lines {
				got = append(got, l.Stream+":"+l.Text)
			}
			var flags []string
			for _, fl := range []struct {
				on   bool
				name string
			}{{c.truncated, "truncated"}, {c.failed, "failed"}, {c.gone, "gone"}} {
				if fl.on {
					flags = append(flags, fl.name)
				}
			}
			gotText := strings.Join(got, " ")
			if len(flags) > 0 {
				gotText += " | " + strings.Join(flags, " ")
			}
			if w := strings.Join(strings.Fields(want), " "); gotText != w {
				t.Errorf("line %d: %s\n got: %s\nwant: %s", n, line, gotText, w)
			}
		default:
			t.Fatalf("line %d: unknown verb %q", n, verb)
		}
	}
}
