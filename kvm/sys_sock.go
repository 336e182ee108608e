package kvm

// Socket pairs and poll: enough for an event loop in one thread. asyncio's loop wakes itself
// through a socketpair and waits in poll (selectors picks poll because epoll is refused); an
// actionloop program may also poll its stdin. A socketpair is two in-memory ends: bytes written
// to one wait in the other's buffer. There is no network: socket(2) stays refused.
//
// A wait that nothing can end (poll without timeout on descriptors that cannot become ready, a
// blocking read of an empty socket) stops the guest as Unsupported: in a guest with one thread
// it would hang forever, and a real kernel (the container driver) might have another thread or
// process to end it. A poll with a timeout on such descriptors waits its whole time. Polling an
// empty stdin parks the guest like a blocking read (BlockedOnRead), so it can be fed and
// snapshotted there.

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// nodeSock is an open file that is one end of a socketpair.
const nodeSock nodeKind = nodeTmp + 1

const (
	oNonblock   = 0x800
	sockBufMax  = 256 << 10
	maxPollFDs  = 1024
	fionbio     = 0x5421
	fionread    = 0x541B
	msgPeek     = 0x2
	msgDontwait = 0x40
	pollIn      = 0x1
	pollOut     = 0x4
	pollErr     = 0x8
	pollHup     = 0x10
	pollNval    = 0x20
)

// sockEnd is one end of a socketpair.
type sockEnd struct {
	in     []byte // written by the peer, not read yet
	peer   *sockEnd
	closed bool // no descriptor is open on this end any more
}

func sysSocketpair(k *kernel, a *sysArgs) uint64 {
	const sockStream, sockTypeMask, sockCloexec = 1, 0xf, 0x80000
	if a[0] != unix.AF_UNIX {
		return errno(unix.EAFNOSUPPORT)
	}
	if a[1]&sockTypeMask != sockStream || a[1]&^(sockTypeMask|oNonblock|sockCloexec) != 0 || (a[2] != 0 && a[2] != unix.PF_UNIX) {
		return errno(unix.EOPNOTSUPP)
	}
	if _, err := k.mem.user(a[3], 8, true); err != nil {
		return errnoOf(err)
	}
	x, y := &sockEnd{}, &sockEnd{}
	x.peer, y.peer = y, x
	flags := uint64(oRdwr) | a[1]&oNonblock
	fd0 := k.installFile(&openFile{path: "socket:", kind: nodeSock, flags: flags, sock: x})
	if int64(fd0) < 0 {
		return fd0
	}
	fd1 := k.installFile(&openFile{path: "socket:", kind: nodeSock, flags: flags, sock: y})
	if int64(fd1) < 0 {
		k.closeFile(fd0)
		return fd1
	}
	var sv [8]byte
	binary.LittleEndian.PutUint32(sv[0:], uint32(fd0))
	binary.LittleEndian.PutUint32(sv[4:], uint32(fd1))
	if err := k.mem.writeUser(a[3], sv[:]); err != nil {
		k.closeFile(fd0)
		k.closeFile(fd1)
		return errnoOf(err)
	}
	return 0
}

// closeFile closes fd, a kindFile descriptor; the last descriptor of a socket end closes it.
func (k *kernel) closeFile(fd uint64) {
	of := k.fs.open[fd]
	delete(k.fs.open, fd)
	if fd < uint64(len(k.fds.Files)) {
		k.fds.Files[fd] = ""
	}
	if of != nil && of.sock != nil {
		for _, other := range k.fs.open {
			if other == of {
				return
			}
		}
		of.sock.closed = true
		of.sock.in = nil
	}
}

// sockOf returns the socket end behind fd: ENOTSOCK for other descriptors.
func (k *kernel) sockOf(fd uint64) (*openFile, unix.Errno) {
	of, e := k.fileOf(fd)
	if e != 0 {
		if _, ok := k.fds.get(fd); ok {
			return nil, unix.ENOTSOCK
		}
		return nil, e
	}
	if of.sock == nil {
		return nil, unix.ENOTSOCK
	}
	return of, 0
}

// sockRead reads from a socket end into guest memory.
func (k *kernel) sockRead(of *openFile, buf, n uint64, nonblock, peek bool) uint64 {
	s := of.sock
	if len(s.in) == 0 {
		switch {
		case s.peer.closed:
			return 0
		case nonblock || of.flags&oNonblock != 0:
			return errno(unix.EAGAIN)
		}
		k.stop = &Exit{Reason: Unsupported, Syscall: 0,
			Err: fmt.Errorf("%w: a blocking read of an empty socketpair end would wait forever in a single-threaded guest", ErrUnsupported)}
		return errno(unix.EAGAIN)
	}
	m := min(n, maxIO, uint64(len(s.in)))
	if err := k.mem.writeUser(buf, s.in[:m]); err != nil {
		return errnoOf(err)
	}
	if !peek {
		s.in = s.in[m:]
		if len(s.in) == 0 {
			s.in = nil
		}
	}
	return m
}

// sockWrite writes guest bytes to the peer of a socket end.
func (k *kernel) sockWrite(of *openFile, buf, n uint64) uint64 {
	p := of.sock.peer
	if p.closed {
		return errno(unix.EPIPE) // SIGPIPE is never delivered; Python ignores it anyway
	}
	room := uint64(sockBufMax - len(p.in))
	if room == 0 {
		return errno(unix.EAGAIN)
	}
	b, err := k.mem.user(buf, min(n, room, maxIO), false)
	if err != nil {
		return errnoOf(err)
	}
	p.in = append(p.in, b...)
	return uint64(len(b))
}

func sysSendto(k *kernel, a *sysArgs) uint64 {
	of, e := k.sockOf(a[0])
	if e != 0 {
		return errno(e)
	}
	if a[4] != 0 {
		return errno(unix.EISCONN)
	}
	return k.sockWrite(of, a[1], a[2])
}

func sysRecvfrom(k *kernel, a *sysArgs) uint64 {
	of, e := k.sockOf(a[0])
	if e != 0 {
		return errno(e)
	}
	n := k.sockRead(of, a[1], a[2], a[3]&msgDontwait != 0, a[3]&msgPeek != 0)
	if int64(n) >= 0 && a[4] != 0 && a[5] != 0 {
		if err := k.mem.writeUser(a[5], make([]byte, 4)); err != nil { // unnamed peer: no address
			return errnoOf(err)
		}
	}
	return n
}

// sysGetsockname answers an unnamed AF_UNIX address for both calls.
func sysGetsockname(k *kernel, a *sysArgs) uint64 {
	if _, e := k.sockOf(a[0]); e != 0 {
		return errno(e)
	}
	lb, err := k.mem.user(a[2], 4, true)
	if err != nil {
		return errnoOf(err)
	}
	if n := binary.LittleEndian.Uint32(lb); n >= 2 {
		if err := k.mem.writeUser(a[1], []byte{unix.AF_UNIX, 0}); err != nil {
			return errnoOf(err)
		}
	}
	binary.LittleEndian.PutUint32(lb, 2)
	return 0
}

func sysShutdown(k *kernel, a *sysArgs) uint64 {
	if _, e := k.sockOf(a[0]); e != 0 {
		return errno(e)
	}
	return 0
}

// sysIoctlFS serves FIONBIO and FIONREAD on files and sockets; everything else is not a
// terminal (sys_io.go).
func sysIoctlFS(k *kernel, a *sysArgs) uint64 {
	of, e := k.fileOf(a[0])
	if e != 0 {
		return sysIoctl(k, a)
	}
	switch a[1] {
	case fionbio:
		b, err := k.mem.user(a[2], 4, false)
		if err != nil {
			return errnoOf(err)
		}
		if binary.LittleEndian.Uint32(b) != 0 {
			of.flags |= oNonblock
		} else {
			of.flags &^= oNonblock
		}
		return 0
	case fionread:
		var n int
		if of.sock != nil {
			n = len(of.sock.in)
		} else if !of.dir {
			size, e := k.fileSize(of)
			if e != 0 {
				return errno(e)
			}
			n = int(min(max(0, size-of.off), 1<<31-1))
		}
		b, err := k.mem.user(a[2], 4, true)
		if err != nil {
			return errnoOf(err)
		}
		binary.LittleEndian.PutUint32(b, uint32(n))
		return 0
	}
	return errno(unix.ENOTTY)
}

// ready is what poll reports for fd given the events asked.
func (k *kernel) ready(fd uint64, events uint16) uint16 {
	kind, ok := k.fds.get(fd)
	if !ok {
		return pollNval
	}
	var r uint16
	switch kind {
	case kindStdin:
		if len(k.stdin.buf) > 0 || k.stdin.eof || k.stdin.src != nil {
			r = pollIn
		}
	case kindFile:
		of := k.fs.open[fd]
		switch {
		case of == nil:
			return pollNval
		case of.sock != nil:
			s := of.sock
			if len(s.in) > 0 {
				r |= pollIn
			}
			if s.peer.closed {
				r |= pollIn | pollHup
			} else {
				r |= pollOut
			}
		default:
			r = pollIn | pollOut
		}
	default:
		r = pollOut
	}
	return r & (events | pollErr | pollHup | pollNval)
}

// poll is the core of system call nr, poll(2) or ppoll(2): timeout in nanoseconds, negative for
// none. In a guest with one thread only stdin data, which the host feeds while the guest is
// parked, can make a descriptor ready during the wait. So a poll of an empty stdin parks the
// guest like a blocking read, with a timeout or without (a guest parked there is frozen, as an
// idle container is paused between activations: Feed, and the poll is issued again); any other
// poll with a timeout waits its whole time (sys_time.go) and reports nothing ready.
func (k *kernel) poll(nr, addr, nfds uint64, timeout int64) uint64 {
	resume := k.takeResume(nr)
	if nfds > maxPollFDs {
		return errno(unix.EINVAL)
	}
	var b []byte
	if nfds > 0 { // poll(NULL, 0, ms) is a sleep
		var err error
		if b, err = k.mem.user(addr, nfds*8, true); err != nil {
			return errnoOf(err)
		}
	}
	le := binary.LittleEndian
	count := func() (n uint64, stdin bool) {
		for i := uint64(0); i < nfds; i++ {
			e := b[i*8:]
			fd := int32(le.Uint32(e))
			var rev uint16
			if fd >= 0 {
				ev := le.Uint16(e[4:])
				rev = k.ready(uint64(fd), ev)
				if kind, _ := k.fds.get(uint64(fd)); kind == kindStdin && ev&pollIn != 0 {
					stdin = true
				}
			}
			le.PutUint16(e[6:], rev)
			if rev != 0 {
				n++
			}
		}
		return n, stdin
	}
	n, stdin := count()
	switch {
	case n > 0 || timeout == 0:
		return n
	case stdin && k.stdin.src == nil:
		k.blocked = true // parked like a blocking read: Feed, and the poll is issued again
		return 0
	case timeout > 0:
		var done bool
		if resume != nil {
			done = k.waitUntil(*resume)
		} else {
			done = k.waitFor(nr, unix.CLOCK_MONOTONIC, false, timeout)
		}
		if !done {
			return 0 // cut short: parked, unseen
		}
		n, _ = count()
		return n
	}
	name := "poll"
	if nr == sysNrPpoll {
		name = "ppoll"
	}
	k.stop = &Exit{Reason: Unsupported, Syscall: nr,
		Err: fmt.Errorf("%w %d (%s): waiting without a timeout on descriptors nothing can make ready in a single-threaded guest", ErrUnsupported, nr, name)}
	return errno(unix.EINTR)
}

func sysPoll(k *kernel, a *sysArgs) uint64 {
	timeout := int64(int32(a[2]))
	if timeout > 0 {
		timeout *= int64(time.Millisecond)
	}
	return k.poll(sysNrPoll, a[0], a[1], timeout)
}

func sysPpoll(k *kernel, a *sysArgs) uint64 {
	timeout := int64(-1)
	if a[2] != 0 {
		var e unix.Errno
		if timeout, e = k.timespecAt(a[2]); e != 0 {
			return errno(e)
		}
	}
	return k.poll(sysNrPpoll, a[0], a[1], timeout)
}
