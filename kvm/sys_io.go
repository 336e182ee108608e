package kvm

import (
	"encoding/binary"
	"io"

	"golang.org/x/sys/unix"
)

// fileKind names what a descriptor refers to; it is what a snapshot records per descriptor.
type fileKind string

const (
	kindStdin  fileKind = "stdin"
	kindStdout fileKind = "stdout"
	kindStderr fileKind = "stderr"
	kindResult fileKind = "result" // fd 3, the actionloop result channel
)

// fdTable is the guest's descriptor table: index = descriptor, "" = closed. Files other than
// the four standard streams (a read-only file tree, pipes) are added as new kinds.
type fdTable struct {
	Files []fileKind
}

const maxFDs = 1024

func standardFDs() fdTable {
	return fdTable{Files: []fileKind{kindStdin, kindStdout, kindStderr, kindResult}}
}

func (t *fdTable) get(fd uint64) (fileKind, bool) {
	if fd >= uint64(len(t.Files)) || t.Files[fd] == "" {
		return "", false
	}
	return t.Files[fd], true
}

// install puts kind at the lowest free descriptor ≥ from.
func (t *fdTable) install(kind fileKind, from uint64) (uint64, bool) {
	for fd := from; fd < maxFDs; fd++ {
		if fd >= uint64(len(t.Files)) {
			t.Files = append(t.Files, make([]fileKind, fd+1-uint64(len(t.Files)))...)
		}
		if t.Files[fd] == "" {
			t.Files[fd] = kind
			return fd, true
		}
	}
	return 0, false
}

func (t *fdTable) set(fd uint64, kind fileKind) bool {
	if fd >= maxFDs {
		return false
	}
	if fd >= uint64(len(t.Files)) {
		t.Files = append(t.Files, make([]fileKind, fd+1-uint64(len(t.Files)))...)
	}
	t.Files[fd] = kind
	return true
}

// stdinState is the guest's standard input: bytes fed by the host and not yet read.
type stdinState struct {
	buf []byte
	eof bool
	src io.Reader // when set, read on demand instead of blocking
}

// outputs are the host's sinks for the guest's output streams, each with its own budget.
type outputs struct {
	w       [3]io.Writer // stdout, stderr, result
	left    [3]int64
	limit   int64
	dropped bool
}

func (o *outputs) index(kind fileKind) int {
	switch kind {
	case kindStdout:
		return 0
	case kindStderr:
		return 1
	case kindResult:
		return 2
	}
	return -1
}

func (o *outputs) write(kind fileKind, p []byte) {
	i := o.index(kind)
	if i < 0 || o.w[i] == nil {
		return
	}
	n := int64(len(p))
	if n > o.left[i] {
		n = o.left[i]
		o.dropped = true
	}
	if n > 0 {
		o.w[i].Write(p[:n]) // a failing host writer loses output, never the guest
		o.left[i] -= n
	}
}

// maxIO caps one read or write so a single call cannot make the VMM copy unbounded data.
const maxIO = 1 << 20

func sysRead(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok {
		return errno(unix.EBADF)
	}
	if kind != kindStdin {
		return errno(unix.EBADF)
	}
	buf, err := k.mem.user(a[1], min(a[2], maxIO), true)
	if err != nil {
		return errnoOf(err)
	}
	n, ok := k.readStdin(buf)
	if !ok {
		return 0
	}
	return uint64(n)
}

// readStdin copies buffered stdin into p. ok is false when the call must block: k.blocked is
// then set and the guest stops until Feed.
func (k *kernel) readStdin(p []byte) (n int, ok bool) {
	if len(p) == 0 {
		return 0, true
	}
	if len(k.stdin.buf) == 0 && !k.stdin.eof {
		if k.stdin.src == nil {
			k.blocked = true
			return 0, false
		}
		chunk := make([]byte, min(len(p), 64<<10))
		m, err := k.stdin.src.Read(chunk)
		k.stdin.buf = append(k.stdin.buf, chunk[:m]...)
		if err != nil && m == 0 {
			k.stdin.eof = true
		}
	}
	n = copy(p, k.stdin.buf)
	k.stdin.buf = k.stdin.buf[n:]
	if len(k.stdin.buf) == 0 {
		k.stdin.buf = nil
	}
	return n, true
}

func sysWrite(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok || kind == kindStdin {
		return errno(unix.EBADF)
	}
	n := min(a[2], maxIO)
	buf, err := k.mem.user(a[1], n, false)
	if err != nil {
		return errnoOf(err)
	}
	k.out.write(kind, buf)
	return n
}

const maxIOV = 1024

// iovecs reads an iovec array, checking every element against guest memory.
func (k *kernel) iovecs(addr, cnt uint64, write bool) ([][]byte, uint64) {
	if cnt > maxIOV {
		return nil, errno(unix.EINVAL)
	}
	raw, err := k.mem.user(addr, cnt*16, false)
	if err != nil {
		return nil, errnoOf(err)
	}
	var total uint64
	bufs := make([][]byte, 0, cnt)
	for i := uint64(0); i < cnt; i++ {
		base, n := binary.LittleEndian.Uint64(raw[i*16:]), binary.LittleEndian.Uint64(raw[i*16+8:])
		n = min(n, maxIO-total)
		b, err := k.mem.user(base, n, write)
		if err != nil {
			return nil, errnoOf(err)
		}
		bufs = append(bufs, b)
		total += n
	}
	return bufs, 0
}

func sysWritev(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok || kind == kindStdin {
		return errno(unix.EBADF)
	}
	bufs, e := k.iovecs(a[1], a[2], false)
	if e != 0 {
		return e
	}
	var n uint64
	for _, b := range bufs {
		k.out.write(kind, b)
		n += uint64(len(b))
	}
	return n
}

func sysReadv(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok || kind != kindStdin {
		return errno(unix.EBADF)
	}
	bufs, e := k.iovecs(a[1], a[2], true)
	if e != 0 {
		return e
	}
	var total uint64
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if total > 0 && len(k.stdin.buf) == 0 {
			break // never block once some data was read
		}
		n, ok := k.readStdin(b)
		if !ok {
			return 0
		}
		total += uint64(n)
		if n < len(b) {
			break
		}
	}
	return total
}

func sysClose(k *kernel, a *sysArgs) uint64 {
	if _, ok := k.fds.get(a[0]); !ok {
		return errno(unix.EBADF)
	}
	k.fds.Files[a[0]] = ""
	return 0
}

func sysDup(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok {
		return errno(unix.EBADF)
	}
	fd, ok := k.fds.install(kind, 0)
	if !ok {
		return errno(unix.EMFILE)
	}
	return fd
}

func sysDup2(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok {
		return errno(unix.EBADF)
	}
	if !k.fds.set(a[1], kind) {
		return errno(unix.EBADF)
	}
	return a[1]
}

func sysDup3(k *kernel, a *sysArgs) uint64 {
	if a[0] == a[1] {
		return errno(unix.EINVAL)
	}
	return sysDup2(k, a)
}

const (
	fDupfd        = 0
	fGetfd        = 1
	fSetfd        = 2
	fGetfl        = 3
	fSetfl        = 4
	fDupfdCloexec = 1030
)

func sysFcntl(k *kernel, a *sysArgs) uint64 {
	kind, ok := k.fds.get(a[0])
	if !ok {
		return errno(unix.EBADF)
	}
	switch a[1] {
	case fDupfd, fDupfdCloexec:
		fd, ok := k.fds.install(kind, a[2])
		if !ok {
			return errno(unix.EMFILE)
		}
		return fd
	case fGetfd, fSetfd, fSetfl:
		return 0
	case fGetfl:
		switch kind {
		case kindStdin:
			return unix.O_RDONLY
		case kindResult:
			return unix.O_RDWR // glibc's fdopen(3, "w") checks the access mode
		default:
			return unix.O_WRONLY
		}
	}
	return errno(unix.EINVAL)
}

const (
	tcgets     = 0x5401
	tiocgwinsz = 0x5413
)

func sysIoctl(k *kernel, a *sysArgs) uint64 {
	if _, ok := k.fds.get(a[0]); !ok {
		return errno(unix.EBADF)
	}
	return errno(unix.ENOTTY) // no descriptor is a terminal
}

func sysLseek(k *kernel, a *sysArgs) uint64 {
	if _, ok := k.fds.get(a[0]); !ok {
		return errno(unix.EBADF)
	}
	return errno(unix.ESPIPE)
}

// statFIFO writes a struct stat describing a pipe: the standard streams look like the pipes a
// container runtime gives a process, so stdio buffers them fully.
func (k *kernel) statFIFO(addr uint64) uint64 {
	b, err := k.mem.user(addr, 144, true)
	if err != nil {
		return errnoOf(err)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[8:], 1)                   // st_ino
	le.PutUint64(b[16:], 1)                  // st_nlink
	le.PutUint32(b[24:], unix.S_IFIFO|0o600) // st_mode
	le.PutUint64(b[56:], pageSize)           // st_blksize
	return 0
}

func sysFstat(k *kernel, a *sysArgs) uint64 {
	if _, ok := k.fds.get(a[0]); !ok {
		return errno(unix.EBADF)
	}
	return k.statFIFO(a[1])
}

const atEmptyPath = 0x1000

func sysNewfstatat(k *kernel, a *sysArgs) uint64 {
	path, err := k.mem.cString(a[1], 4096)
	if err != nil {
		return errnoOf(err)
	}
	if path == "" && a[3]&atEmptyPath != 0 {
		if _, ok := k.fds.get(a[0]); !ok {
			return errno(unix.EBADF)
		}
		return k.statFIFO(a[2])
	}
	return errno(unix.ENOENT)
}

// The guest has no file system yet: every path is absent.
func sysOpen(k *kernel, a *sysArgs) uint64 {
	if _, err := k.mem.cString(a[0], 4096); err != nil {
		return errnoOf(err)
	}
	return errno(unix.ENOENT)
}

func sysOpenat(k *kernel, a *sysArgs) uint64 {
	if _, err := k.mem.cString(a[1], 4096); err != nil {
		return errnoOf(err)
	}
	return errno(unix.ENOENT)
}

func sysAccess(k *kernel, a *sysArgs) uint64 {
	if _, err := k.mem.cString(a[0], 4096); err != nil {
		return errnoOf(err)
	}
	return errno(unix.ENOENT)
}

func (k *kernel) readlink(pathAddr, buf, size uint64) uint64 {
	path, err := k.mem.cString(pathAddr, 4096)
	if err != nil {
		return errnoOf(err)
	}
	if path != "/proc/self/exe" {
		return errno(unix.ENOENT)
	}
	if int64(size) <= 0 {
		return errno(unix.EINVAL)
	}
	n := min(size, uint64(len(k.exePath)))
	if err := k.mem.writeUser(buf, []byte(k.exePath)[:n]); err != nil {
		return errnoOf(err)
	}
	return n
}

func sysReadlink(k *kernel, a *sysArgs) uint64   { return k.readlink(a[0], a[1], a[2]) }
func sysReadlinkat(k *kernel, a *sysArgs) uint64 { return k.readlink(a[1], a[2], a[3]) }

func sysGetcwd(k *kernel, a *sysArgs) uint64 {
	if a[1] < 2 {
		return errno(unix.ERANGE)
	}
	if err := k.mem.writeUser(a[0], []byte("/\x00")); err != nil {
		return errnoOf(err)
	}
	return 2
}
