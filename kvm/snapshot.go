package kvm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Snapshot file format:
//
//	[0, 8)     magic "SNAPKVM1"
//	[8, 12)    little-endian uint32 length L of the JSON header
//	[12, 12+L) JSON snapshotState
//	[memOffset, memOffset+Memory)  guest memory, page for page; zero pages are holes
//
// memOffset is 12+L rounded up to a page, so the memory image can be mapped straight from the
// file (copy-on-write) as a restored guest's memory.
const (
	snapshotMagic  = "SNAPKVM1"
	maxHeaderBytes = 1 << 20
)

// snapshotState is the JSON header: everything about a parked guest except its memory.
type snapshotState struct {
	Fingerprint string
	Memory      uint64
	Mapped      uint64 // guest memory [0, Mapped) is installed as memory slots
	Regs        Regs
	Machine     machineState
	Kernel      kernelState
}

// kernelState is the library OS's part of a snapshot.
type kernelState struct {
	ExePath       string
	BrkStart, Brk uint64
	Maps          regionList
	StackLo       uint64
	StackHi       uint64
	MemExhausted  bool
	FSBase        uint64
	FDs           fdTable
	StdinEOF      bool
	MonoOffset    int64
	MonoAt        int64    // the guest's monotonic clock when the snapshot was taken
	FS            *fsState `json:",omitempty"` // open files, current directory, /tmp (sys_fs.go)
}

func (k *kernel) state() kernelState {
	return kernelState{
		ExePath: k.exePath, BrkStart: k.brkStart, Brk: k.brk, Maps: append(regionList(nil), k.maps...),
		StackLo: k.stackLo, StackHi: k.stackHi, MemExhausted: k.memExhausted, FSBase: k.fsBase,
		FDs: fdTable{Files: append([]fileKind(nil), k.fds.Files...)}, StdinEOF: k.stdin.eof,
		MonoOffset: k.clock.MonoOffset, MonoAt: hostClock(unix.CLOCK_MONOTONIC) + k.clock.MonoOffset,
		FS: k.fs.state(),
	}
}

// setState puts the kernel back into s (a snapshot's state); s itself is not retained.
func (k *kernel) setState(s *kernelState) {
	k.exePath, k.brkStart, k.brk = s.ExePath, s.BrkStart, s.Brk
	k.maps = append(k.maps[:0], s.Maps...)
	k.stackLo, k.stackHi, k.memExhausted, k.fsBase = s.StackLo, s.StackHi, s.MemExhausted, s.FSBase
	k.fds = fdTable{Files: append([]fileKind(nil), s.FDs.Files...)}
	k.stdin.buf, k.stdin.eof = nil, s.StdinEOF
	k.fs.setState(s.FS)
	k.clock.MonoOffset = s.MonoOffset
	if now := hostClock(unix.CLOCK_MONOTONIC); now+k.clock.MonoOffset < s.MonoAt {
		k.clock.MonoOffset = s.MonoAt - now // never run the guest's monotonic clock backwards
	}
	k.stop, k.blocked = nil, false
	k.cutShort, k.resume = false, nil
	k.ringMask = ringNoMask
	clear(k.counts)
	clear(k.enosys)
}

// validate checks a header read from a file: it is input like any other.
func (s *snapshotState) validate() error {
	if s.Memory < MinMemory || s.Memory > MaxMemory || s.Memory%(2<<20) != 0 {
		return fmt.Errorf("%w: memory size %d", ErrBadSnapshot, s.Memory)
	}
	if s.Mapped%slotAlign != 0 || s.Mapped < slotAlign || s.Mapped > s.Memory {
		return fmt.Errorf("%w: used memory %#x outside %d MiB", ErrBadSnapshot, s.Mapped, s.Memory>>20)
	}
	k := &s.Kernel
	if k.BrkStart < userLo || k.Brk < k.BrkStart || k.Brk > s.Mapped || k.StackLo < userLo || k.StackLo >= k.StackHi || k.StackHi > s.Mapped {
		return fmt.Errorf("%w: heap [%#x, %#x) or stack [%#x, %#x) outside the used %d MiB", ErrBadSnapshot, k.BrkStart, k.Brk, k.StackLo, k.StackHi, s.Mapped>>20)
	}
	for i, r := range k.Maps {
		if r.Start%pageSize != 0 || r.End%pageSize != 0 || r.Start >= r.End || !inRange(r.Start, r.End-r.Start, userLo, s.Memory) ||
			(i > 0 && k.Maps[i-1].End > r.Start) {
			return fmt.Errorf("%w: mapping %d [%#x, %#x) malformed", ErrBadSnapshot, i, r.Start, r.End)
		}
	}
	if len(k.FDs.Files) > maxFDs {
		return fmt.Errorf("%w: %d descriptors", ErrBadSnapshot, len(k.FDs.Files))
	}
	for fd, kind := range k.FDs.Files {
		switch kind {
		case "", kindStdin, kindStdout, kindStderr, kindResult, kindFile:
		default:
			return fmt.Errorf("%w: descriptor %d has unknown kind %q", ErrBadSnapshot, fd, kind)
		}
	}
	if err := k.FS.validate(k.FDs); err != nil {
		return err
	}
	if len(s.Machine.MSRs) > len(msrs{}.Entries) || s.Machine.XCRs.NrXCRs > 16 {
		return fmt.Errorf("%w: %d MSRs, %d XCRs", ErrBadSnapshot, len(s.Machine.MSRs), s.Machine.XCRs.NrXCRs)
	}
	for _, m := range s.Machine.MSRs {
		switch m.Index {
		case msrSTAR, msrLSTAR, msrCSTAR, msrSFMASK, msrFSBase, msrGSBase, msrKernelGSBase:
		default:
			return fmt.Errorf("%w: MSR %#x is not one a guest may carry", ErrBadSnapshot, m.Index)
		}
	}
	// The control state must be the VMM's own: the guest cannot change it, so a file that does
	// was not written by this VMM.
	want := initialSregs()
	got := &s.Machine.Sregs
	if got.CR0 != want.CR0 || got.CR3 != want.CR3 || got.CR4&^(1<<16) != want.CR4 || got.EFER&^(1<<11) != want.EFER ||
		got.GDT.Base != want.GDT.Base || got.IDT.Base != want.IDT.Base {
		return fmt.Errorf("%w: control registers or descriptor tables differ from this VMM's", ErrBadSnapshot)
	}
	return nil
}

// WriteSnapshot freezes a guest that Run left BlockedOnRead and writes it to path (atomically,
// through a temporary file). The snapshot is parked inside the read: the stub's exit with the
// read's number in RAX, so a restored guest simply issues the read again. The guest itself is
// unchanged and can go on running.
func (g *Guest) WriteSnapshot(path string) error {
	if g.closed {
		return ErrClosed
	}
	if !g.pending {
		return fmt.Errorf("%w: Run until it returns BlockedOnRead first", ErrNotParked)
	}
	hdr, err := g.parkedState()
	if err != nil {
		return err
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("kvm: encode snapshot header: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("kvm: write snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	head := make([]byte, 12, 12+len(js))
	copy(head, snapshotMagic)
	binary.LittleEndian.PutUint32(head[8:], uint32(len(js)))
	if _, err := tmp.Write(append(head, js...)); err != nil {
		return fmt.Errorf("kvm: write snapshot %s: %w", path, err)
	}
	memOff := int64(pageUp(uint64(len(head) + len(js))))
	if err := g.writeMemory(tmp, memOff); err != nil {
		return fmt.Errorf("kvm: write snapshot %s: %w", path, err)
	}
	// The clock page is this host's calibration: a restored guest starts without one (mode 0)
	// and calibrates at its first clock call.
	if _, err := tmp.WriteAt(make([]byte, vvarSize), memOff+vvarAddr); err != nil {
		return fmt.Errorf("kvm: write snapshot %s: %w", path, err)
	}
	if err := tmp.Truncate(memOff + int64(g.mem.size())); err != nil {
		return fmt.Errorf("kvm: write snapshot %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("kvm: write snapshot %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("kvm: write snapshot %s: %w", path, err)
	}
	return nil
}

// parkedState is the snapshot header of a guest parked in a blocking read: its registers set to
// re-issue the read from the stub's exit. The caller checked g.pending.
func (g *Guest) parkedState() (*snapshotState, error) {
	if g.k.resume != nil {
		// Parked in a timed wait a deadline cut short: what is left of it lives in the VMM only.
		return nil, fmt.Errorf("%w: it is parked in a timed wait (sleep, futex, poll) its deadline cut short, not in a read", ErrNotParked)
	}
	st, err := g.sh.cpu.save()
	if err != nil {
		return nil, err
	}
	regs := g.regs
	g.h.backend.park(&regs, regs.RAX, g.lastExitSyscall)
	return &snapshotState{Fingerprint: g.h.fingerprint, Memory: g.mem.size(), Mapped: g.mapped,
		Regs: regs, Machine: *st, Kernel: g.k.state()}, nil
}

// writeMemory writes every page that is not all zeros; zero pages stay holes, so the file is as
// small as the memory the program used. Only pages that can hold data are read: for anonymous
// memory the resident ones; for a restored guest the ones its snapshot file holds data for plus
// the ones written since (a lineage snapshot reads no more than its parent's data).
func (g *Guest) writeMemory(f *os.File, off int64) error {
	cand, err := g.candidatePages()
	if err != nil {
		return err
	}
	zero := make([]byte, pageSize)
	b := g.mem.b
	pages := len(b) / pageSize
	data := func(p int) bool {
		return cand[p/64]&(1<<(p%64)) != 0 && !bytes.Equal(b[p*pageSize:(p+1)*pageSize], zero)
	}
	for p := 0; p < pages; {
		if !data(p) {
			p++
			continue
		}
		q := p + 1
		for q < pages && data(q) {
			q++
		}
		if _, err := f.WriteAt(b[p*pageSize:q*pageSize], off+int64(p*pageSize)); err != nil {
			return err
		}
		p = q
	}
	return nil
}

// candidatePages returns a bitmap of the pages that may hold non-zero bytes.
func (g *Guest) candidatePages() ([]uint64, error) {
	n := len(g.mem.b) / pageSize
	cand := make([]uint64, (n+63)/64)
	set := func(p int) { cand[p/64] |= 1 << (p % 64) }
	if !g.mem.file {
		res, err := g.mem.resident()
		if err != nil {
			return nil, fmt.Errorf("mincore: %w", err)
		}
		for p, r := range res {
			if r&1 != 0 {
				set(p)
			}
		}
		return cand, nil
	}
	// Pages written since the restore: the guest's (KVM's dirty log, folded into vmmDirty so a
	// later Reset still copies them back) and the VMM's.
	log, err := g.dirtyPages()
	if err != nil {
		return nil, err
	}
	for w := range cand {
		g.mem.vmmDirty[w] |= log[w]
		cand[w] |= g.mem.vmmDirty[w]
	}
	// Pages the parent snapshot holds data for (SEEK_DATA/SEEK_HOLE over its memory image).
	fd := int(g.snap.f.Fd())
	base, end := g.snap.memOff, g.snap.memOff+int64(len(g.mem.b))
	for pos := base; pos < end; {
		d, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil || d >= end {
			break // ENXIO: no more data
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			h = end
		}
		for p := (d - base) / pageSize; p < (min(h, end)-base+pageSize-1)/pageSize; p++ {
			set(int(p))
		}
		pos = h
	}
	return cand, nil
}

// Snapshot is an opened snapshot file, ready to restore from. It is safe for concurrent use and
// shared by every guest restored from it; Close it after they are closed.
type Snapshot struct {
	path   string
	f      *os.File
	state  snapshotState
	memOff int64
	// image is the memory image mapped shared and read-only: the clean copy resets copy from.
	image []byte
	// files is the file tree the snapshot's guest had, rebuilt once for the restores whose Config
	// names none (sys_fs.go, fileTree).
	filesOnce sync.Once
	files     *FileTree
}

// OpenSnapshot reads and checks a snapshot file. It fails with ErrBadSnapshot for a malformed
// file and ErrIncompatibleSnapshot for one taken on a host with other CPU features.
func (h *Host) OpenSnapshot(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvm: open snapshot: %w", err)
	}
	s, err := h.readSnapshot(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.path = path
	return s, nil
}

func (h *Host) readSnapshot(f *os.File) (*Snapshot, error) {
	head := make([]byte, 12)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:8]) != snapshotMagic {
		return nil, fmt.Errorf("%w: no %s header", ErrBadSnapshot, snapshotMagic)
	}
	n := binary.LittleEndian.Uint32(head[8:])
	if n > maxHeaderBytes {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrBadSnapshot, n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(f, js); err != nil {
		return nil, fmt.Errorf("%w: truncated header: %v", ErrBadSnapshot, err)
	}
	s := &Snapshot{f: f, memOff: int64(pageUp(12 + uint64(n)))}
	if err := json.Unmarshal(js, &s.state); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if s.state.Fingerprint != h.fingerprint {
		return nil, fmt.Errorf("%w: it needs %s, this host is %s; take the snapshot again here",
			ErrIncompatibleSnapshot, s.state.Fingerprint, h.fingerprint)
	}
	if err := s.state.validate(); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kvm: stat snapshot: %w", err)
	}
	if fi.Size() < s.memOff+int64(s.state.Memory) {
		return nil, fmt.Errorf("%w: file has %d bytes, its memory image needs %d", ErrBadSnapshot, fi.Size(), s.memOff+int64(s.state.Memory))
	}
	if s.image, err = mapSharedReadOnly(int(f.Fd()), s.memOff, s.state.Memory); err != nil {
		return nil, err
	}
	return s, nil
}

// Memory is the guest memory size the snapshot was taken with.
func (s *Snapshot) Memory() uint64 { return s.state.Memory }

// Close releases the file and its mapping. Guests restored from it keep their own mappings.
func (s *Snapshot) Close() error {
	var errs []error
	if s.image != nil {
		errs = append(errs, unix.Munmap(s.image))
		s.image = nil
	}
	errs = append(errs, s.f.Close())
	return errors.Join(errs...)
}

// Restore creates a guest from snap in a new VM. cfg.Memory must be 0 or the snapshot's size;
// Args, Env and ExePath are the snapshot's. The guest is parked in its stdin read: Feed it and
// Run.
func (h *Host) Restore(ctx context.Context, snap *Snapshot, cfg Config) (*Guest, error) {
	sh, err := h.newShell()
	if err != nil {
		return nil, err
	}
	return h.restoreInto(sh, snap, cfg)
}

func (h *Host) restoreInto(sh *shell, snap *Snapshot, cfg Config) (*Guest, error) {
	if cfg.Memory != 0 && cfg.Memory != snap.state.Memory {
		sh.close()
		return nil, fmt.Errorf("%w: Memory %d MiB differs from the snapshot's %d MiB", ErrBadConfig, cfg.Memory>>20, snap.state.Memory>>20)
	}
	cfg.Memory = snap.state.Memory
	if cfg.Files == nil {
		cfg.Files = snap.fileTree()
	}
	if err := cfg.normalize(); err != nil {
		sh.close()
		return nil, err
	}
	var mem *memory
	var err error
	attached := sh.slot != nil && uint64(len(sh.slot)) == snap.state.Memory && sh.slotMapped == snap.state.Mapped
	if sh.slot != nil && !attached {
		// A pooled VM sized for other snapshots: drop its slot and install one of our size.
		if err := sh.detachSlot(); err != nil {
			sh.close()
			return nil, err
		}
	}
	prepared := attached && sh.prepared == snap
	switch {
	case prepared:
		mem = &memory{b: sh.slot, userLo: userLo, file: true, vmmDirty: make([]uint64, (len(sh.slot)/pageSize+63)/64)}
		sh.slot = nil // now owned by mem
	case attached:
		mem, err = mapFileMemoryAt(sh.slot, int(snap.f.Fd()), snap.memOff)
		sh.slot = nil
	default:
		mem, err = mapFileMemory(int(snap.f.Fd()), snap.memOff, snap.state.Memory)
	}
	if err != nil {
		sh.close()
		return nil, err
	}
	g := &Guest{h: h, cfg: cfg, sh: sh, mem: mem, snap: snap, logDirty: true}
	if attached {
		g.mapped, g.slotEnds = snap.state.Mapped, []uint64{snap.state.Mapped}
	}
	if err := g.loadSnapshot(!prepared); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// loadSnapshot attaches memory and puts the kernel, and unless a pool already did, the vCPU
// into the snapshot's state.
func (g *Guest) loadSnapshot(loadCPU bool) error {
	s := &g.snap.state
	if err := g.grow(s.Mapped); err != nil {
		return err
	}
	if loadCPU {
		if err := g.sh.cpu.load(&s.Machine); err != nil {
			return err
		}
	}
	g.k = newKernel(g.mem, g.sh.cpu, &g.cfg)
	g.k.nap = g.sh.cpu.wait
	g.k.setState(&s.Kernel)
	g.k.grow = g.grow
	g.parkAtSnapshot()
	return nil
}

// parkAtSnapshot sets the registers to the snapshot's: parked at the stub's exit in the read.
func (g *Guest) parkAtSnapshot() {
	g.regs = g.snap.state.Regs
	g.sh.cpu.run.Regs = g.regs
	g.sh.cpu.run.DirtyRegs = syncRegs
	g.pending, g.final = true, nil
	g.exits = 0
}
