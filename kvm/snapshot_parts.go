package kvm

// Snapshots in parts, for a snapshot store that keeps guest memory itself (package
// snapshotcache): the state goes out as an opaque blob, memory as a reader, and a restore maps a
// memory image file that holds nothing but the guest's pages. Added for backend/unikernel; the
// single-file format of WriteSnapshot/OpenSnapshot is unchanged.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Checkpoint is a parked guest's snapshot in two parts.
type Checkpoint struct {
	// State is everything but memory: registers, vCPU state, the library OS's state and the
	// host fingerprint. Opaque to callers; OpenSnapshotImage reads it back.
	State []byte
	// Memory reads the guest's memory, Size bytes. It reads the live guest: use it before the
	// guest runs again or is closed. Pages the guest never touched read as zeros without being
	// faulted in.
	Memory *GuestMemory
	// Size is the guest memory size in bytes.
	Size int64
}

// GuestMemory is an io.ReaderAt over a guest's memory.
type GuestMemory struct {
	b        []byte
	resident []byte // one byte per page (mincore), nil when every page may hold data
}

// ReadAt implements io.ReaderAt.
func (m *GuestMemory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) {
		return 0, fmt.Errorf("kvm: read guest memory at %d: out of range", off)
	}
	n := 0
	for n < len(p) && off < int64(len(m.b)) {
		page := off / pageSize
		end := min(int64(len(m.b)), (page+1)*pageSize, off+int64(len(p)-n))
		// The clock page is this host's calibration and never part of a snapshot (see vdso.go).
		if (m.resident != nil && m.resident[page]&1 == 0) || page*pageSize == vvarAddr {
			clear(p[n : n+int(end-off)])
		} else {
			copy(p[n:], m.b[off:end])
		}
		n += int(end - off)
		off = end
	}
	if n < len(p) {
		return n, fmt.Errorf("kvm: read guest memory: %d of %d bytes: %w", n, len(p), errShortRead)
	}
	return n, nil
}

var errShortRead = fmt.Errorf("short read")

// Checkpoint returns the snapshot of a guest that Run left BlockedOnRead, parked inside the read
// exactly as WriteSnapshot would write it. The guest is unchanged and can go on running.
func (g *Guest) Checkpoint() (*Checkpoint, error) {
	if g.closed {
		return nil, ErrClosed
	}
	if !g.pending {
		return nil, fmt.Errorf("%w: Run until it returns BlockedOnRead first", ErrNotParked)
	}
	hdr, err := g.parkedState()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("kvm: encode snapshot state: %w", err)
	}
	gm := &GuestMemory{b: g.mem.b}
	if !g.mem.file {
		if gm.resident, err = g.mem.resident(); err != nil {
			return nil, fmt.Errorf("kvm: checkpoint: mincore: %w", err)
		}
	}
	return &Checkpoint{State: js, Memory: gm, Size: int64(g.mem.size())}, nil
}

// OpenSnapshotImage opens a snapshot from a Checkpoint's State and a file holding exactly the
// guest memory (page i at offset i×4096), such as a snapshot store's composed image. The file is
// duplicated: the caller keeps ownership of image and may close it once this returns. It fails
// with ErrBadSnapshot for a malformed state or a short image and ErrIncompatibleSnapshot for a
// state taken on another kind of host.
func (h *Host) OpenSnapshotImage(state []byte, image *os.File) (*Snapshot, error) {
	if len(state) > maxHeaderBytes {
		return nil, fmt.Errorf("%w: state of %d bytes", ErrBadSnapshot, len(state))
	}
	s := &Snapshot{}
	if err := json.Unmarshal(state, &s.state); err != nil {
		return nil, fmt.Errorf("%w: state: %v", ErrBadSnapshot, err)
	}
	if s.state.Fingerprint != h.fingerprint {
		return nil, fmt.Errorf("%w: it needs %s, this host is %s; take the snapshot again here",
			ErrIncompatibleSnapshot, s.state.Fingerprint, h.fingerprint)
	}
	if err := s.state.validate(); err != nil {
		return nil, err
	}
	fi, err := image.Stat()
	if err != nil {
		return nil, fmt.Errorf("kvm: stat snapshot image: %w", err)
	}
	if fi.Size() < int64(s.state.Memory) {
		return nil, fmt.Errorf("%w: image has %d bytes, the guest memory needs %d", ErrBadSnapshot, fi.Size(), s.state.Memory)
	}
	fd, err := unix.Dup(int(image.Fd()))
	if err != nil {
		return nil, fmt.Errorf("kvm: dup snapshot image: %w", err)
	}
	unix.CloseOnExec(fd)
	s.f = os.NewFile(uintptr(fd), image.Name())
	s.path = image.Name()
	if s.image, err = mapSharedReadOnly(fd, 0, s.state.Memory); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

// PrivateBytes is the host memory the guest's memory mapping holds privately: the anonymous
// pages of the mapping in /proc/self/smaps, which are the pages the guest wrote (copied from the
// snapshot on first write) or allocated. Pages still shared with the snapshot file (page cache)
// are not counted, nor is KVM's own per-VM memory (vCPU, shadow page tables).
func (g *Guest) PrivateBytes() (int64, error) {
	if g.closed || g.mem == nil || len(g.mem.b) == 0 {
		return 0, ErrClosed
	}
	// %p formats the mapping's address in hex without needing package unsafe here.
	start := strings.TrimPrefix(fmt.Sprintf("%p", &g.mem.b[0]), "0x")
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("kvm: private memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	prefix := []byte(start + "-")
	in := false
	var total int64
	for sc.Scan() {
		line := sc.Bytes()
		// A mapping's header starts with its address in lower-case hex; field lines start with
		// a capitalised name ("Private_Dirty:").
		if len(line) > 0 && isHexDigit(line[0]) {
			if in {
				break // the next mapping begins
			}
			in = bytes.HasPrefix(line, prefix)
			continue
		}
		if !in {
			continue
		}
		s := string(line)
		for _, field := range []string{"Anonymous:"} {
			if rest, ok := strings.CutPrefix(s, field); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("kvm: private memory: smaps line %q: %w", s, err)
				}
				total += kb << 10
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("kvm: private memory: %w", err)
	}
	return total, nil
}

func isHexDigit(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
