package kvm

import (
	"context"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// pageFaults reads the vCPU's pf_taken from KVM's binary statistics (KVM_GET_STATS_FD).
func pageFaults(t *testing.T, v *vcpu) uint64 {
	t.Helper()
	const kvmGetStatsFD = 0xAECE
	sfd, err := ioctl(v.fd, kvmGetStatsFD, 0)
	if err != nil {
		t.Fatalf("KVM_GET_STATS_FD: %v", err)
	}
	defer unix.Close(int(sfd))
	buf := make([]byte, 1<<16)
	n, err := unix.Pread(int(sfd), buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf = buf[:n]
	le := binary.LittleEndian
	nameSize, num := le.Uint32(buf[4:]), le.Uint32(buf[8:])
	descOff, dataOff := le.Uint32(buf[16:]), le.Uint32(buf[20:])
	for i := uint32(0); i < num; i++ {
		d := buf[descOff+i*(16+nameSize):]
		name := d[16 : 16+nameSize]
		if string(name[:len("pf_taken")+1]) == "pf_taken\x00" {
			return le.Uint64(buf[dataOff+le.Uint32(d[8:]):])
		}
	}
	t.Fatal("no pf_taken statistic")
	return 0
}

// A pool learns the working set of its snapshot from the first guest's first activation, and a
// VM it prepares afterwards runs an activation with far fewer page faults than a fresh restore,
// with the same answer and memory equal to the snapshot after Reset.
func TestPoolPrefaultsWorkingSet(t *testing.T) {
	h := openHost(t)
	var c captured
	snap := functionSnapshot(t, h, &c, "hello.py")
	pool := h.NewPool(context.Background(), 1, snap)
	defer pool.Close()

	activate := func(g *Guest) uint64 {
		t.Helper()
		before := pageFaults(t, g.sh.cpu)
		c.result.Reset()
		g.Feed([]byte(pyLine))
		runTo(t, g, &c, BlockedOnRead)
		if got := c.result.String(); got != `{"greeting":"Hello, bench!"}`+"\n" {
			t.Fatalf("result %q", got)
		}
		return pageFaults(t, g.sh.cpu) - before
	}
	first, err := pool.Restore(context.Background(), snap, c.config(Config{}))
	if err != nil {
		t.Fatal(err)
	}
	fresh := activate(first)
	if err := first.Reset(); err != nil { // the pool learns here
		t.Fatal(err)
	}
	first.Close()
	read, write := pool.learned().pages()
	if len(read) == 0 || len(write) == 0 {
		t.Fatalf("the pool learned %d read and %d written pages", len(read), len(write))
	}

	sh, err := pool.newShell(true)
	if err != nil {
		t.Fatal(err)
	}
	warm, err := h.restoreInto(sh, snap, c.config(Config{}))
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	prefaulted := activate(warm)
	t.Logf("page faults of an activation: %d after a fresh restore, %d after a prefaulted one (%d read, %d written pages learned)",
		fresh, prefaulted, len(read), len(write))
	if prefaulted*3 > fresh {
		t.Fatalf("a prefaulted VM took %d page faults, a fresh one %d: want at least 3x fewer", prefaulted, fresh)
	}
	if err := warm.Reset(); err != nil {
		t.Fatal(err)
	}
	for p := uint64(userLo); p < warm.mapped; p += pageSize {
		if string(warm.mem.b[p:p+pageSize]) != string(snap.image[p:p+pageSize]) {
			t.Fatalf("after Reset, page %#x differs from the snapshot", p)
		}
	}
}

// A pooled guest that is closed without a Reset (a runtime snapshot's guest after /init) teaches
// its pool too; one that never ran does not.
func TestPoolLearnsAtClose(t *testing.T) {
	h := openHost(t)
	var c captured
	snap := snapshotOf(t, h, launcherGuest(t, h, &c), "runtime.snap")
	pool := h.NewPool(context.Background(), 1, snap)
	defer pool.Close()
	idle, err := pool.Restore(context.Background(), snap, c.config(Config{}))
	if err != nil {
		t.Fatal(err)
	}
	idle.Close()
	if pool.learned() != nil {
		t.Fatal("a guest that never ran taught the pool")
	}
	r, err := pool.Restore(context.Background(), snap, c.config(Config{}))
	if err != nil {
		t.Fatal(err)
	}
	r.Feed(initLine(t, "hello.py"))
	runTo(t, r, &c, BlockedOnRead)
	r.Close()
	if read, _ := pool.learned().pages(); len(read) == 0 {
		t.Fatal("the pool learned nothing from a guest closed after /init")
	}
}
