package idassign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/snapinvoker/snapinvoker/invoker/internal/testenv"
)

func TestEncodeDecode(t *testing.T) {
	// Values as Java's BigInteger.valueOf(n).toByteArray() prints them.
	cases := []struct {
		id   int
		want []byte
	}{
		{0, []byte{0x00}}, {1, []byte{0x01}}, {127, []byte{0x7f}}, {128, []byte{0x00, 0x80}},
		{255, []byte{0x00, 0xff}}, {256, []byte{0x01, 0x00}}, {32768, []byte{0x00, 0x80, 0x00}},
		{-1, []byte{0xff}}, {-128, []byte{0x80}}, {-129, []byte{0xff, 0x7f}},
	}
	for _, c := range cases {
		if got := EncodeID(c.id); !bytes.Equal(got, c.want) {
			t.Errorf("EncodeID(%d) = %x, want %x", c.id, got, c.want)
		}
		got, err := DecodeID(c.want)
		if c.id < 0 {
			if !errors.Is(err, ErrBadMapping) {
				t.Errorf("DecodeID(%x) = %d, %v; want ErrBadMapping for a negative id", c.want, got, err)
			}
			continue
		}
		if err != nil || got != c.id {
			t.Errorf("DecodeID(%x) = %d, %v; want %d", c.want, got, err, c.id)
		}
	}
	// Non-minimal encodings written by other tools still decode.
	if got, err := DecodeID([]byte{0, 0, 0, 5}); err != nil || got != 5 {
		t.Errorf("DecodeID(00000005) = %d, %v", got, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 9), {0x7f, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := DecodeID(bad); !errors.Is(err, ErrBadMapping) {
			t.Errorf("DecodeID(%x) = %v, want ErrBadMapping", bad, err)
		}
	}
}

func TestAssignAgainstZooKeeper(t *testing.T) {
	zkAddr := testenv.StartZooKeeper(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hosts := []string{zkAddr}
	assign := func(name string, overwrite *int) int {
		t.Helper()
		id, err := Assign(ctx, hosts, name, overwrite)
		if err != nil {
			t.Fatalf("Assign(%s): %v", name, err)
		}
		return id
	}
	if id := assign("owdev-invoker-0", nil); id != 0 {
		t.Fatalf("first name got %d, want 0", id)
	}
	if id := assign("owdev-invoker-1", nil); id != 1 {
		t.Fatalf("second name got %d, want 1", id)
	}
	if id := assign("owdev-invoker-0", nil); id != 0 {
		t.Fatalf("first name again got %d, want 0", id)
	}
	// Concurrent starts of new invokers get distinct consecutive ids.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []int
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := Assign(ctx, hosts, fmt.Sprintf("node-%d", i), nil)
			if err != nil {
				t.Errorf("concurrent Assign: %v", err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Ints(ids)
	if fmt.Sprint(ids) != "[2 3 4 5 6]" {
		t.Fatalf("concurrent ids = %v, want [2 3 4 5 6]", ids)
	}
	// --overwriteId 1 for a new name takes id 1 away from owdev-invoker-1.
	one := 1
	if id := assign("replacement", &one); id != 1 {
		t.Fatalf("overwrite got %d, want 1", id)
	}
	conn, _, err := zk.Connect(hosts, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ok, _, err := conn.Exists(MappingPath + "/owdev-invoker-1"); err != nil || ok {
		t.Fatalf("owdev-invoker-1 still mapped after its id was overwritten (exists=%v, %v)", ok, err)
	}
	data, _, err := conn.Get(MappingPath + "/replacement")
	if err != nil || !bytes.Equal(data, []byte{1}) {
		t.Fatalf("replacement mapping = %x, %v; want 01", data, err)
	}
	if id := assign("replacement", nil); id != 1 {
		t.Fatalf("replacement again got %d, want 1", id)
	}
	// A corrupt mapping is reported, not guessed around.
	if _, err := conn.Create(MappingPath+"/corrupt", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := Assign(ctx, hosts, "corrupt", nil); !errors.Is(err, ErrBadMapping) {
		t.Fatalf("corrupt mapping = %v, want ErrBadMapping", err)
	}
	if _, err := Assign(ctx, hosts, "a/b", nil); !errors.Is(err, ErrBadName) {
		t.Fatalf("name with slash = %v, want ErrBadName", err)
	}
}

func TestAssignUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	port := testenv.FreePort(t)
	if _, err := Assign(ctx, []string{fmt.Sprintf("127.0.0.1:%d", port)}, "x", nil); !errors.Is(err, ErrZooKeeper) {
		t.Fatalf("unreachable ZooKeeper = %v, want ErrZooKeeper", err)
	}
}
