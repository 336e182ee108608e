package kvm

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fsKernel is a library OS on 8 MiB of memory alone (no vCPU needed for file calls) whose file
// tree lists a host directory built by the test: root/lib/{a.txt, sub/b.txt}, a link inside
// the tree (lib/alias -> sub/b.txt), links that leave it (lib/escape -> /etc/passwd,
// lib/up -> ../secret) and root/secret/key, which is NOT listed.
type fsKernel struct {
	t    *testing.T
	k    *kernel
	mem  *memory
	root string
	at   uint64 // next free scratch address for strings
}

const fsScratch = 0x100000

func newFSKernel(t *testing.T) *fsKernel {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Not under /tmp: that name is the guest's private /tmp, never a host path of the tree.
	root, err := os.MkdirTemp("/var/tmp", "kvmfs-")
	must(err)
	t.Cleanup(func() { os.RemoveAll(root) })
	must(os.MkdirAll(filepath.Join(root, "lib", "sub"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "secret"), 0o755))
	must(os.WriteFile(filepath.Join(root, "lib", "a.txt"), []byte("alpha\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "lib", "sub", "b.txt"), []byte("bravo"), 0o644))
	must(os.WriteFile(filepath.Join(root, "secret", "key"), []byte("do not leak"), 0o600))
	must(os.Symlink("sub/b.txt", filepath.Join(root, "lib", "alias")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "lib", "escape")))
	must(os.Symlink("../secret/key", filepath.Join(root, "lib", "up")))
	mem, err := newAnonMemory(8 << 20)
	must(err)
	t.Cleanup(func() { mem.close() })

	tree := &FileTree{Host: []string{filepath.Join(root, "lib")}, Files: map[string][]byte{"/app/main.py": []byte("print(1)\n")}, TmpLimit: 1 << 16}
	cfg := Config{ExePath: "/program", OutputLimit: 1 << 16, Files: tree}
	must(cfg.normalize())
	k := newKernel(mem, nil, &cfg)
	k.sleep = func(time.Duration) {}
	k.brkStart, k.brk, k.stackLo, k.stackHi = 0x400000, 0x400000, 0x780000, mem.size()
	k.maps.add(0x100000, 0x400000)
	k.maps.add(k.stackLo, k.stackHi)
	return &fsKernel{t: t, k: k, mem: mem, root: root, at: fsScratch}
}

// str puts a NUL-terminated string into guest memory and returns its address.
func (f *fsKernel) str(s string) uint64 {
	a := f.at
	copy(f.mem.b[a:], s+"\x00")
	f.at += uint64(len(s)+1+15) &^ 15
	return a
}

func (f *fsKernel) call(name string, args ...uint64) int64 {
	f.t.Helper()
	var a sysArgs
	copy(a[:], args)
	for nr, e := range sysTable {
		if e.name == name {
			return int64(f.k.dispatch(nr, &a))
		}
	}
	f.t.Fatalf("no system call %s", name)
	return 0
}

func (f *fsKernel) want(what string, got int64, want int64) {
	f.t.Helper()
	if got != want {
		f.t.Fatalf("%s = %d (%v), want %d (%v)", what, got, errnoName(got), want, errnoName(want))
	}
}

func errnoName(v int64) string {
	if v < 0 && v > -4096 {
		return unix.Errno(-v).Error()
	}
	return "ok"
}

func neg(e unix.Errno) int64 { return -int64(e) }

const cwd = uint64(0xffffff9c) // AT_FDCWD as the 32-bit int the kernel reads

// readAll reads fd to its end through read(2).
func (f *fsKernel) readAll(fd int64) string {
	f.t.Helper()
	var out []byte
	buf := uint64(0x300000)
	for {
		n := f.call("read", uint64(fd), buf, 7)
		if n < 0 {
			f.t.Fatalf("read: %v", errnoName(n))
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, f.mem.b[buf:buf+uint64(n)]...)
	}
}

func TestFSReadOnlyTree(t *testing.T) {
	f := newFSKernel(t)
	lib := filepath.Join(f.root, "lib")
	fd := f.call("openat", cwd, f.str(lib+"/a.txt"), 0, 0)
	if fd < 4 {
		t.Fatalf("open a.txt: %v", errnoName(fd))
	}
	if got := f.readAll(fd); got != "alpha\n" {
		t.Fatalf("a.txt reads %q", got)
	}
	f.want("pread", f.call("pread64", uint64(fd), 0x300000, 3, 2), 3)
	if got := string(f.mem.b[0x300000:0x300003]); got != "pha" {
		t.Fatalf("pread got %q", got)
	}
	f.want("lseek end", f.call("lseek", uint64(fd), 0, unix.SEEK_END), 6)
	f.want("lseek negative", f.call("lseek", uint64(fd), uint64(1<<63), unix.SEEK_SET), neg(unix.EINVAL))
	f.want("write to a read-only file", f.call("write", uint64(fd), 0x300000, 1), neg(unix.EBADF))
	dup := f.call("dup", uint64(fd))
	f.want("lseek on the duplicate shares the offset", f.call("lseek", uint64(dup), 0, unix.SEEK_CUR), 6)
	f.want("close", f.call("close", uint64(fd)), 0)
	f.want("read closed", f.call("read", uint64(fd), 0x300000, 1), neg(unix.EBADF))
	f.want("fstat of the duplicate", f.call("fstat", uint64(dup), 0x310000), 0)
	if size := binary.LittleEndian.Uint64(f.mem.b[0x310000+48:]); size != 6 {
		t.Fatalf("st_size %d", size)
	}

	// Links inside the tree resolve; links out of it do not, whatever the host has there.
	fd = f.call("openat", cwd, f.str(lib+"/alias"), 0, 0)
	if got := f.readAll(fd); got != "bravo" {
		t.Fatalf("alias reads %q", got)
	}
	f.want("escape to /etc/passwd", f.call("openat", cwd, f.str(lib+"/escape"), 0, 0), neg(unix.ENOENT))
	f.want("escape by ..", f.call("openat", cwd, f.str(lib+"/up"), 0, 0), neg(unix.ENOENT))
	f.want("dot-dot out of the tree", f.call("openat", cwd, f.str(lib+"/../secret/key"), 0, 0), neg(unix.ENOENT))
	f.want("unlisted sibling", f.call("newfstatat", cwd, f.str(f.root+"/secret"), 0x310000, 0), neg(unix.ENOENT))
	f.want("host /etc", f.call("openat", cwd, f.str("/etc/passwd"), 0, 0), neg(unix.ENOENT))
	f.want("readlink in the tree", f.call("readlink", f.str(lib+"/alias"), 0x300000, 64), int64(len("sub/b.txt")))
	f.want("readlink of a file", f.call("readlink", f.str(lib+"/a.txt"), 0x300000, 64), neg(unix.EINVAL))
	f.want("O_NOFOLLOW on a link", f.call("openat", cwd, f.str(lib+"/alias"), oNofollow, 0), neg(unix.ELOOP))

	// Read-only: no writes, no creation outside /tmp.
	f.want("open for writing", f.call("openat", cwd, f.str(lib+"/a.txt"), oWronly, 0), neg(unix.EROFS))
	f.want("create in the tree", f.call("openat", cwd, f.str(lib+"/new"), oCreat|oWronly, 0o644), neg(unix.EROFS))
	f.want("unlink in the tree", f.call("unlink", f.str(lib+"/a.txt")), neg(unix.EROFS))
	f.want("mkdir in the tree", f.call("mkdir", f.str(lib+"/d"), 0o755), neg(unix.EROFS))
	f.want("access W_OK", f.call("access", f.str(lib+"/a.txt"), unix.W_OK), neg(unix.EROFS))
	f.want("access R_OK", f.call("access", f.str(lib+"/a.txt"), unix.R_OK), 0)

	// In-memory files and the directories above listed paths.
	fd = f.call("open", f.str("/app/main.py"), 0, 0)
	if got := f.readAll(fd); got != "print(1)\n" {
		t.Fatalf("in-memory file reads %q", got)
	}
	f.want("chdir /app", f.call("chdir", f.str("/app")), 0)
	fd = f.call("openat", cwd, f.str("main.py"), 0, 0)
	if fd < 0 {
		t.Fatalf("relative open: %v", errnoName(fd))
	}
	f.want("getcwd", f.call("getcwd", 0x300000, 64), 5)
	if got := string(f.mem.b[0x300000:0x300004]); got != "/app" {
		t.Fatalf("getcwd %q", got)
	}
	f.want("getcwd too small", f.call("getcwd", 0x300000, 3), neg(unix.ERANGE))
}

// listing lists a directory through getdents64 with a small buffer (several calls).
func (f *fsKernel) listing(path string) []string {
	f.t.Helper()
	fd := f.call("openat", cwd, f.str(path), oDirectory, 0)
	if fd < 0 {
		f.t.Fatalf("open %s: %v", path, errnoName(fd))
	}
	var names []string
	for {
		n := f.call("getdents64", uint64(fd), 0x300000, 64)
		if n < 0 {
			f.t.Fatalf("getdents64 %s: %v", path, errnoName(n))
		}
		if n == 0 {
			break
		}
		for off := uint64(0); off < uint64(n); {
			rec := f.mem.b[0x300000+off:]
			reclen := uint64(binary.LittleEndian.Uint16(rec[16:]))
			name := string(rec[19:reclen])
			names = append(names, strings.TrimRight(name, "\x00"))
			off += reclen
		}
	}
	f.call("close", uint64(fd))
	return names
}

func TestFSDirectories(t *testing.T) {
	f := newFSKernel(t)
	got := strings.Join(f.listing(filepath.Join(f.root, "lib")), " ")
	if got != ". .. a.txt alias escape sub up" {
		t.Fatalf("lib lists %q", got)
	}
	// The root holds only what leads to listed paths, and /tmp.
	top := strings.Split(strings.TrimPrefix(f.root, "/"), "/")[0]
	rest := []string{"app", "tmp", top}
	sort.Strings(rest)
	if got, want := strings.Join(f.listing("/"), " "), ". .. "+strings.Join(rest, " "); got != want {
		t.Fatalf("/ lists %q, want %q", got, want)
	}
	f.want("getdents64 of a file", f.call("getdents64", uint64(f.call("openat", cwd, f.str("/app/main.py"), 0, 0)), 0x300000, 4096), neg(unix.ENOTDIR))
	f.want("read of a directory", f.call("read", uint64(f.call("openat", cwd, f.str("/app"), 0, 0)), 0x300000, 16), neg(unix.EISDIR))
	f.want("O_DIRECTORY on a file", f.call("openat", cwd, f.str("/app/main.py"), oDirectory, 0), neg(unix.ENOTDIR))
	f.want("file as a directory", f.call("openat", cwd, f.str("/app/main.py/x"), 0, 0), neg(unix.ENOTDIR))
}

func TestFSPrivateTmp(t *testing.T) {
	f := newFSKernel(t)
	f.want("mkdir", f.call("mkdir", f.str("/tmp/work"), 0o700), 0)
	f.want("mkdir again", f.call("mkdir", f.str("/tmp/work"), 0o700), neg(unix.EEXIST))
	fd := f.call("openat", cwd, f.str("/tmp/work/f"), oCreat|oRdwr, 0o600)
	if fd < 0 {
		t.Fatalf("create: %v", errnoName(fd))
	}
	copy(f.mem.b[0x300000:], "scratch")
	f.want("write", f.call("write", uint64(fd), 0x300000, 7), 7)
	f.want("rewind", f.call("lseek", uint64(fd), 0, unix.SEEK_SET), 0)
	if got := f.readAll(fd); got != "scratch" {
		t.Fatalf("tmp file reads %q", got)
	}
	f.want("O_EXCL on an existing file", f.call("openat", cwd, f.str("/tmp/work/f"), oCreat|oExcl|oWronly, 0), neg(unix.EEXIST))
	f.want("rename", f.call("rename", f.str("/tmp/work"), f.str("/tmp/done")), 0)
	f.want("old name gone", f.call("access", f.str("/tmp/work/f"), 0), neg(unix.ENOENT))
	f.want("new name there", f.call("access", f.str("/tmp/done/f"), unix.W_OK), 0)
	f.want("rmdir non-empty", f.call("rmdir", f.str("/tmp/done")), neg(unix.ENOTEMPTY))
	// The budget holds: 64 KiB in this tree.
	big := f.call("openat", cwd, f.str("/tmp/big"), oCreat|oWronly, 0o600)
	f.want("ftruncate past the limit", f.call("ftruncate", uint64(big), 1<<20), neg(unix.EFBIG))
	f.want("pwrite past the limit", f.call("pwrite64", uint64(big), 0x300000, 1, 1<<17), neg(unix.EFBIG))
	f.want("pwrite filling more than the budget", f.call("pwrite64", uint64(big), 0x300000, 8000, 60000), neg(unix.ENOSPC))
	f.want("pwrite at a huge offset", f.call("pwrite64", uint64(big), 0x300000, 8, 1<<62), neg(unix.EFBIG))
	f.want("unlink", f.call("unlink", f.str("/tmp/done/f")), 0)
	f.want("rmdir", f.call("rmdir", f.str("/tmp/done")), 0)

	// The private state goes into snapshots and comes back.
	st := f.k.fs.state()
	f.k.fs.setState(nil)
	f.want("boot state has no /tmp/big", f.call("access", f.str("/tmp/big"), 0), neg(unix.ENOENT))
	f.k.fs.setState(st)
	f.want("snapshot state has /tmp/big", f.call("access", f.str("/tmp/big"), 0), 0)
	if err := st.validate(f.k.fds); err != nil {
		t.Fatalf("state does not validate: %v", err)
	}
}

func TestFSHostileArguments(t *testing.T) {
	f := newFSKernel(t)
	f.want("path below userLo", f.call("openat", cwd, 0x8000, 0, 0), neg(unix.EFAULT))
	f.mem.b[f.mem.size()-1] = 'a' // no NUL before the end of memory
	f.want("path past memory", f.call("openat", cwd, f.mem.size()-1, 0, 0), neg(unix.EFAULT))
	long := f.str(strings.Repeat("a/", 3000))
	f.want("path too long", f.call("openat", cwd, long, 0, 0), neg(unix.ENAMETOOLONG))
	fd := f.call("openat", cwd, f.str("/app/main.py"), 0, 0)
	f.want("read into the VMM's pages", f.call("read", uint64(fd), 0xA000, 4), neg(unix.EFAULT))
	f.want("fstat into the VMM's pages", f.call("fstat", uint64(fd), 0x9000), neg(unix.EFAULT))
	f.want("getdents64 past memory", f.call("getdents64", uint64(f.call("openat", cwd, f.str("/app"), 0, 0)), f.mem.size()-8, 4096), neg(unix.EFAULT))
	f.want("relative to a file", f.call("openat", uint64(fd), f.str("x"), 0, 0), neg(unix.ENOTDIR))
	f.want("relative to a bad descriptor", f.call("openat", 999, f.str("x"), 0, 0), neg(unix.EBADF))
	f.want("mmap of a stream", f.call("mmap", 0, 4096, 1, mapPrivate, 1, 0), neg(unix.ENODEV))
	f.want("mmap misaligned offset", f.call("mmap", 0, 4096, 1, mapPrivate, uint64(fd), 1), neg(unix.EINVAL))
	f.want("shared writable mapping", f.call("mmap", 0, 4096, 3, mapShared, uint64(fd), 0), neg(unix.EACCES))
	if !bytes.Equal(f.mem.b[:userLo], make([]byte, userLo)) {
		t.Fatal("a file call wrote below userLo")
	}
	// A file mapping is a private copy: the file's bytes, then zeros.
	addr := f.call("mmap", 0, 8192, 1, mapPrivate, uint64(fd), 0)
	if addr < 0 {
		t.Fatalf("mmap: %v", errnoName(addr))
	}
	if got := f.mem.b[addr : addr+10]; !bytes.Equal(got, []byte("print(1)\n\x00")) {
		t.Fatalf("mapping holds %q", got)
	}
}

func TestFileTreeConfig(t *testing.T) {
	for _, tree := range []*FileTree{
		{Host: []string{"/"}},
		{Host: []string{"relative"}},
		{Host: []string{"/usr/../etc"}},
		{Host: []string{"/tmp/x"}},
		{Files: map[string][]byte{"/tmp/f": nil}},
		{TmpLimit: -1},
	} {
		cfg := Config{Files: tree}
		if err := cfg.normalize(); err == nil || !strings.Contains(err.Error(), "Files") {
			t.Errorf("%+v: %v, want an ErrBadConfig naming Files", tree, err)
		}
	}
}

// fsCalls are the file system calls FuzzFileSyscalls drives.
var fsCalls = []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 16, 25, 44, 45, 51, 53, 271, 17, 18, 19, 20, 21, 32, 33, 72, 77, 79, 80, 81, 82, 83, 84, 87, 89,
	217, 257, 258, 262, 263, 264, 267, 269, 292, 316, 332, 439}

// FuzzFileSyscalls drives sequences of file system calls with arbitrary arguments and path
// bytes over a tree with links that try to leave it. It must never panic, never write below
// userLo, never open anything outside the tree, and keep the /tmp budget.
func FuzzFileSyscalls(f *testing.F) {
	f.Add([]byte("/var\x00/tmp/x\x00../../etc/passwd\x00"), uint64(0x100000), uint64(0x42), uint64(0o600), uint8(27), uint8(1), uint8(0))
	f.Add([]byte("/app/main.py\x00"), uint64(0x100000), uint64(0), uint64(0), uint8(27), uint8(0), uint8(25))
	f.Add([]byte("/tmp/a\x00/tmp/b\x00"), uint64(0x100000), uint64(0x10000), uint64(0), uint8(23), uint8(14), uint8(3))
	f.Fuzz(func(t *testing.T, paths []byte, a1, a2, a3 uint64, c1, c2, c3 uint8) {
		fk := newFSKernel(t)
		copy(fk.mem.b[fsScratch:fsScratch+64<<10], paths)
		fk.str(fk.root + "/lib/escape")
		fk.k.tmpLimitCheck(t)
		for i, c := range []uint8{c1, c2, c3} {
			nr := fsCalls[int(c)%len(fsCalls)]
			a := sysArgs{uint64(i + 3), a1, a2, a3, a1 ^ a2, a3 &^ 0xfff}
			if c&0x80 != 0 {
				a[0] = cwd
			}
			fk.k.dispatch(nr, &a)
			fk.k.tmpLimitCheck(t)
		}
		if !bytes.Equal(fk.mem.b[:userLo], make([]byte, userLo)) {
			t.Fatal("a file call wrote below userLo")
		}
		for i, r := range fk.k.maps {
			if r.Start >= r.End || r.Start < userLo || r.End > fk.mem.size() || (i > 0 && fk.k.maps[i-1].End > r.Start) {
				t.Fatalf("maps inconsistent: %v", fk.k.maps)
			}
		}
		for fd, of := range fk.k.fs.open {
			if strings.Contains(of.path, "secret") || strings.HasPrefix(of.path, "/etc") {
				t.Fatalf("descriptor %d opened %q, outside the tree", fd, of.path)
			}
		}
	})
}

func (k *kernel) tmpLimitCheck(t *testing.T) {
	var n int64
	for _, tn := range k.fs.tmp {
		n += int64(len(tn.data))
	}
	if n != k.fs.tmpBytes || n > k.fs.tree.tmpLimit() {
		t.Fatalf("/tmp holds %d bytes, accounted %d, limit %d", n, k.fs.tmpBytes, k.fs.tree.tmpLimit())
	}
}

func TestSocketpairAndPoll(t *testing.T) {
	f := newFSKernel(t)
	le := binary.LittleEndian
	const sv, pfd = 0x320000, 0x330000
	f.want("socketpair inet", f.call("socketpair", unix.AF_INET, 1, 0, sv), neg(unix.EAFNOSUPPORT))
	f.want("socketpair", f.call("socketpair", unix.AF_UNIX, 1|0x80000, 0, sv), 0)
	x, y := uint64(le.Uint32(f.mem.b[sv:])), uint64(le.Uint32(f.mem.b[sv+4:]))
	copy(f.mem.b[0x300000:], "ping")
	f.want("send", f.call("sendto", x, 0x300000, 4, 0, 0, 0), 4)
	pollOne := func(fd uint64, events uint16, timeout int64) (int64, uint16) {
		le.PutUint32(f.mem.b[pfd:], uint32(fd))
		le.PutUint16(f.mem.b[pfd+4:], events)
		n := f.call("poll", pfd, 1, uint64(timeout))
		return n, le.Uint16(f.mem.b[pfd+6:])
	}
	if n, rev := pollOne(y, pollIn, 0); n != 1 || rev != pollIn {
		t.Fatalf("poll readable end: %d %#x", n, rev)
	}
	// Buffered bytes and the pair survive a snapshot of the state.
	st := f.k.fs.state()
	if err := st.validate(f.k.fds); err != nil {
		t.Fatal(err)
	}
	f.k.fs.setState(st)
	f.want("recv after restore", f.call("recvfrom", y, 0x310000, 16, 0, 0, 0), 4)
	if got := string(f.mem.b[0x310000:0x310004]); got != "ping" {
		t.Fatalf("recv %q", got)
	}
	f.want("nonblocking empty recv", f.call("recvfrom", y, 0x310000, 16, msgDontwait, 0, 0), neg(unix.EAGAIN))
	f.want("lseek on a socket", f.call("lseek", y, 0, 0), neg(unix.ESPIPE))
	f.want("mmap of a socket", f.call("mmap", 0, 4096, 1, mapPrivate, y, 0), neg(unix.ENODEV))
	f.want("close one end", f.call("close", x), 0)
	if n, rev := pollOne(y, pollIn, 0); n != 1 || rev != pollIn|pollHup {
		t.Fatalf("poll after the peer closed: %d %#x", n, rev)
	}
	f.want("EOF", f.call("read", y, 0x310000, 16), 0)
	f.want("write to a closed peer", f.call("write", y, 0x300000, 4), neg(unix.EPIPE))
	if n, rev := pollOne(99, pollIn, 0); n != 1 || rev != pollNval {
		t.Fatalf("poll of a closed descriptor: %d %#x", n, rev)
	}
	// Waiting forever on stdin parks the guest like a read; on nothing, it is Unsupported.
	if n, _ := pollOne(0, pollIn, -1); n != 0 || !f.k.blocked {
		t.Fatalf("poll on empty stdin: %d blocked=%v", n, f.k.blocked)
	}
	f.k.blocked = false
	pollOne(1, pollIn, -1)
	if f.k.stop == nil || f.k.stop.Reason != Unsupported {
		t.Fatalf("poll forever on stdout for input: stop %+v", f.k.stop)
	}
	f.want("too many pollfds", f.call("poll", pfd, maxPollFDs+1, 0), neg(unix.EINVAL))
	f.want("pollfds past memory", f.call("poll", f.mem.size()-8, 2, 0), neg(unix.EFAULT))
}

// A large host file is read from the host on demand: never kept in the tree's cache.
func TestFSLargeHostFile(t *testing.T) {
	f := newFSKernel(t)
	big := make([]byte, maxCachedFile+5000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	path := filepath.Join(f.root, "lib", "big.bin")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	fd := uint64(f.call("openat", cwd, f.str(path), 0, 0))
	f.want("size", f.call("lseek", fd, 0, unix.SEEK_END), int64(len(big)))
	off := uint64(maxCachedFile + 100)
	f.want("pread near the end", f.call("pread64", fd, 0x300000, 64, off), 64)
	if !bytes.Equal(f.mem.b[0x300000:0x300040], big[off:off+64]) {
		t.Fatal("pread returned other bytes")
	}
	addr := f.call("mmap", 0, uint64(len(big)), 1, mapPrivate, fd, 0)
	if addr < 0 || !bytes.Equal(f.mem.b[addr:addr+int64(len(big))], big) {
		t.Fatalf("mapping of the large file: %v", errnoName(addr))
	}
	if _, kept := f.k.fs.tree.content[path]; kept {
		t.Fatal("the large file was kept in the tree's cache")
	}
}

func TestFutexSingleThread(t *testing.T) {
	f := newFSKernel(t)
	var slept time.Duration
	f.k.sleep = func(d time.Duration) { slept += d }
	const word, ts = 0x300000, 0x300010
	binary.LittleEndian.PutUint32(f.mem.b[word:], 7)
	f.want("wake", f.call("futex", word, 1, 1, 0, 0, 0), 0)
	f.want("wait on a changed word", f.call("futex", word, 0, 8, 0, 0, 0), neg(unix.EAGAIN))
	binary.LittleEndian.PutUint64(f.mem.b[ts:], 0)
	binary.LittleEndian.PutUint64(f.mem.b[ts+8:], 5e6)
	f.want("timed wait", f.call("futex", word, 0, 7, ts, 0, 0), neg(unix.ETIMEDOUT))
	if slept != 5*time.Millisecond {
		t.Fatalf("a 5 ms timed wait slept %v", slept)
	}
	f.want("wait on a bad pointer", f.call("futex", 0x8000, 0, 7, 0, 0, 0), neg(unix.EFAULT))
	f.call("futex", word, 0, 7, 0, 0, 0)
	if f.k.stop == nil || f.k.stop.Reason != Unsupported || f.k.stop.Syscall != 202 {
		t.Fatalf("a wait nobody can end: stop %+v, want Unsupported futex", f.k.stop)
	}
}
