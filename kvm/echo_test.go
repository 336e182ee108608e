package kvm

import (
	"context"
	"fmt"
	"testing"
)

// startEcho boots the actionloop echo and runs it to its first stdin read, checking the init ack.
func startEcho(t testing.TB, h *Host, c *captured) *Guest {
	t.Helper()
	g, err := h.New(context.Background(), c.config(Config{Memory: 64 << 20}), build(t, "echo"))
	if err != nil {
		t.Fatalf("New(echo): %v", err)
	}
	t.Cleanup(func() { g.Close() })
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ex.Reason != BlockedOnRead {
		t.Fatalf("echo stopped with %v (%v) before reading stdin; regs %+v", ex.Reason, ex.Err, ex.Regs)
	}
	if got := c.result.String(); got != "{\"ok\":true}\n" {
		t.Fatalf("init ack on fd 3 = %q", got)
	}
	c.result.Reset()
	return g
}

// activate feeds one line and runs until the guest blocks again, returning fd 3's output.
func activate(t testing.TB, g *Guest, c *captured, line string) string {
	t.Helper()
	c.result.Reset()
	g.Feed([]byte(line + "\n"))
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ex.Reason != BlockedOnRead {
		t.Fatalf("after %q: %v (%v)", line, ex.Reason, ex.Err)
	}
	return c.result.String()
}

func TestEchoActionloop(t *testing.T) {
	h := openHost(t)
	var c captured
	g := startEcho(t, h, &c)
	for i := 0; i < 3; i++ {
		line := fmt.Sprintf(`{"value":{"n":%d}}`, i)
		if got, want := activate(t, g, &c, line), `{"echo":`+line+"}\n"; got != want {
			t.Fatalf("result = %q, want %q", got, want)
		}
	}
	if got, want := c.stderr.String(), "echoed 17 bytes\necho"; len(got) < 16 || got[:16] != want[:16] {
		t.Errorf("stderr = %q", got)
	}
	g.CloseStdin()
	ex, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ex.Reason != Exited || ex.Code != 0 {
		t.Fatalf("after EOF: %v code %d (%v)", ex.Reason, ex.Code, ex.Err)
	}
}
