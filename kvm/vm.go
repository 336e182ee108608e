package kvm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Host is an open /dev/kvm and what this host's KVM offers guests. It is safe for concurrent use;
// guests, snapshots and pools are created from it.
type Host struct {
	fd          int
	backend     exitPath
	cpuid       *cpuid
	xcr0        uint64
	hwcap       uint64
	fingerprint string
	runSize     int
}

// Open opens /dev/kvm and reads the host's capabilities. It fails with ErrNoKVM when the device
// is missing or lacks what the VMM needs.
func Open() (*Host, error) {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open /dev/kvm: %v (load kvm-intel, kvm-amd or kvm-pvm, and run as a user with access to it)", ErrNoKVM, err)
	}
	h := &Host{fd: fd, backend: detectBackend()}
	if err := h.probe(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return h, nil
}

func (h *Host) probe() error {
	if v, err := ioctl(h.fd, kvmGetAPIVersion, 0); err != nil || v != 12 {
		return fmt.Errorf("%w: KVM API version %d (want 12): %v", ErrNoKVM, v, err)
	}
	for _, c := range []struct {
		cap  uintptr
		name string
	}{{capSyncRegs, "KVM_CAP_SYNC_REGS"}, {capImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"}, {capXsave, "KVM_CAP_XSAVE"}, {capXCRs, "KVM_CAP_XCRS"}} {
		if r, err := ioctl(h.fd, kvmCheckExtension, c.cap); err != nil || r == 0 {
			return fmt.Errorf("%w: this KVM lacks %s", ErrNoKVM, c.name)
		}
	}
	sz, err := ioctl(h.fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("%w: KVM_GET_VCPU_MMAP_SIZE: %v", ErrNoKVM, err)
	}
	h.runSize = int(sz)
	c := &cpuid{N: maxCPUID}
	if err := ioctlPtr(h.fd, kvmGetSupportedCPUID, c); err != nil {
		return fmt.Errorf("%w: KVM_GET_SUPPORTED_CPUID: %v", ErrNoKVM, err)
	}
	h.cpuid = c
	var vendor [12]byte
	fp := sha256.New()
	fp.Write([]byte(h.backend.name()))
	fp.Write(h.backend.stub()) // snapshots carry the stub: a VMM with another one refuses them
	for i := range c.Entries[:c.N] {
		e := &c.Entries[i]
		switch {
		case e.Function == 0:
			binary.LittleEndian.PutUint32(vendor[0:], e.EBX)
			binary.LittleEndian.PutUint32(vendor[4:], e.EDX)
			binary.LittleEndian.PutUint32(vendor[8:], e.ECX)
			fp.Write(vendor[:])
		case e.Function == 1:
			h.hwcap = uint64(e.EDX)
			binary.Write(fp, binary.LittleEndian, [2]uint32{e.ECX &^ (1 << 27), e.EDX}) // OSXSAVE follows CR4
		case e.Function == 7 && e.Index == 0:
			binary.Write(fp, binary.LittleEndian, [3]uint32{e.EBX, e.ECX, e.EDX})
		case e.Function == 0xD && e.Index == 0:
			// x87, SSE, AVX and AVX-512 state; AMX needs a permission dance we do not do.
			h.xcr0 = (uint64(e.EDX)<<32 | uint64(e.EAX)) & 0xE7
			binary.Write(fp, binary.LittleEndian, h.xcr0)
		case e.Function == 0x80000001:
			binary.Write(fp, binary.LittleEndian, [2]uint32{e.ECX, e.EDX})
		}
	}
	if h.xcr0&3 != 3 {
		return fmt.Errorf("%w: KVM offers no XSAVE support for SSE state (xcr0 mask %#x)", ErrNoKVM, h.xcr0)
	}
	h.fingerprint = fmt.Sprintf("%s/%s/%s", h.backend.name(), vendor, hex.EncodeToString(fp.Sum(nil))[:16])
	return nil
}

// Close releases /dev/kvm; guests already created keep running.
func (h *Host) Close() error { return unix.Close(h.fd) }

// Backend names the exit path in use: "pvm" (kvm-pvm) or "vmx" (hardware virtualisation).
func (h *Host) Backend() string { return h.backend.name() }

// Fingerprint identifies the guest-visible CPU features and backend; snapshots carry it and
// restore only where it matches.
func (h *Host) Fingerprint() string { return h.fingerprint }

// shell is a created VM with one vCPU and nothing in it yet: what a pool keeps ready.
type shell struct {
	vmfd int
	cpu  *vcpu
	// slot, when set, is reserved host memory whose [0, slotMapped) is already installed as memory
	// slot 0 with dirty logging: a restore of a snapshot of that geometry maps itself over it.
	slot       []byte
	slotMapped uint64
	// prepared, when set, is the snapshot whose memory slot already maps (copy-on-write) and whose
	// vCPU state is already loaded: restoring it costs no system call at all.
	prepared *Snapshot
	// manualDirty: the VM's dirty log is in manual-protect mode, so Reset keeps hot pages
	// writable (dirty_hot.go).
	manualDirty bool
}

// newShell creates a VM and its vCPU with the host's CPUID.
func (h *Host) newShell() (*shell, error) {
	vmfd, err := ioctl(h.fd, kvmCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: KVM_CREATE_VM: %v (too many VMs? check ulimit -n and memory)", ErrVMM, err)
	}
	s := &shell{vmfd: int(vmfd)}
	if err := s.init(h); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *shell) init(h *Host) error {
	if _, ok := h.backend.(vmxExit); ok {
		// Intel VMX without unrestricted guest needs these three pages; harmless elsewhere.
		if _, err := ioctl(s.vmfd, kvmSetTSSAddr, 0xfffbd000); err != nil {
			return fmt.Errorf("%w: KVM_SET_TSS_ADDR: %v", ErrVMM, err)
		}
	}
	s.manualDirty = enableManualDirtyLog(s.vmfd)
	fd, err := ioctl(s.vmfd, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("%w: KVM_CREATE_VCPU: %v", ErrVMM, err)
	}
	v := &vcpu{fd: int(fd)}
	s.cpu = v
	v.runMap, err = unix.Mmap(v.fd, 0, h.runSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("%w: map kvm_run: %v", ErrVMM, err)
	}
	v.run = runPageOf(v.runMap)
	if err := ioctlPtr(v.fd, kvmSetCPUID2, h.cpuid); err != nil {
		return fmt.Errorf("%w: KVM_SET_CPUID2: %v", ErrVMM, err)
	}
	return nil
}

func (s *shell) close() error {
	var errs []error
	if s.slot != nil {
		errs = append(errs, unix.Munmap(s.slot))
	}
	if s.cpu != nil {
		s.cpu.markClosed() // waits out a stop request still touching kvm_run
		if s.cpu.runMap != nil {
			errs = append(errs, unix.Munmap(s.cpu.runMap))
		}
		errs = append(errs, unix.Close(s.cpu.fd))
	}
	errs = append(errs, unix.Close(s.vmfd))
	return errors.Join(errs...)
}

// detachSlot deletes a pooled shell's memory slot and releases its reserved memory.
func (s *shell) detachSlot() error {
	if err := setMemoryRegion(s.vmfd, 0, 0, 0, nil); err != nil {
		return fmt.Errorf("%w: %v", ErrVMM, err)
	}
	err := unix.Munmap(s.slot)
	s.slot = nil
	return err
}

// machineState is everything about the vCPU a snapshot records besides the general registers.
type machineState struct {
	Sregs sregs
	Xsave xsave
	XCRs  xcrs
	MSRs  []msrEntry
}

var snapshotMSRs = []uint32{msrSTAR, msrLSTAR, msrCSTAR, msrSFMASK, msrFSBase, msrGSBase, msrKernelGSBase}

// bootState is the vCPU state of a freshly booted guest.
func (h *Host) bootState() *machineState {
	st := &machineState{Sregs: initialSregs(), MSRs: initialMSRs(h.backend.entry())}
	// Legacy XSAVE area: FCW 0x37F (all exceptions masked, 64-bit precision), MXCSR 0x1F80.
	st.Xsave.Region[0] = 0x37F
	st.Xsave.Region[6] = 0x1F80
	// XSTATE_BV (header at byte 512): x87 and SSE state present, so KVM takes FCW and MXCSR from
	// the legacy area instead of its own initial values.
	st.Xsave.Region[512/4] = 3
	st.XCRs.NrXCRs = 1
	st.XCRs.XCRs[0] = xcr{XCR: 0, Value: h.xcr0}
	return st
}

// load writes a machine state into the vCPU. XCR0 goes before XSAVE, whose components it enables.
func (v *vcpu) load(st *machineState) error {
	if err := ioctlPtr(v.fd, kvmSetSregs, &st.Sregs); err != nil {
		return fmt.Errorf("%w: KVM_SET_SREGS: %v", ErrVMM, err)
	}
	if err := ioctlPtr(v.fd, kvmSetXCRs, &st.XCRs); err != nil {
		return fmt.Errorf("%w: KVM_SET_XCRS (xcr0 %#x): %v", ErrVMM, st.XCRs.XCRs[0].Value, err)
	}
	if err := ioctlPtr(v.fd, kvmSetXsave, &st.Xsave); err != nil {
		return fmt.Errorf("%w: KVM_SET_XSAVE: %v", ErrVMM, err)
	}
	return v.setMSRs(st.MSRs)
}

// save reads the vCPU's machine state.
func (v *vcpu) save() (*machineState, error) {
	st := &machineState{}
	if err := ioctlPtr(v.fd, kvmGetSregs, &st.Sregs); err != nil {
		return nil, fmt.Errorf("%w: KVM_GET_SREGS: %v", ErrVMM, err)
	}
	if err := ioctlPtr(v.fd, kvmGetXCRs, &st.XCRs); err != nil {
		return nil, fmt.Errorf("%w: KVM_GET_XCRS: %v", ErrVMM, err)
	}
	if err := ioctlPtr(v.fd, kvmGetXsave, &st.Xsave); err != nil {
		return nil, fmt.Errorf("%w: KVM_GET_XSAVE: %v", ErrVMM, err)
	}
	m := msrs{N: uint32(len(snapshotMSRs))}
	for i, idx := range snapshotMSRs {
		m.Entries[i].Index = idx
	}
	if err := ioctlPtr(v.fd, kvmGetMSRs, &m); err != nil {
		return nil, fmt.Errorf("%w: KVM_GET_MSRS: %v", ErrVMM, err)
	}
	st.MSRs = append([]msrEntry(nil), m.Entries[:m.N]...)
	return st, nil
}

func (v *vcpu) setMSRs(entries []msrEntry) error {
	var m msrs
	if len(entries) > len(m.Entries) {
		return fmt.Errorf("%w: %d MSRs, at most %d", ErrBadSnapshot, len(entries), len(m.Entries))
	}
	m.N = uint32(copy(m.Entries[:], entries))
	n, err := ioctl(v.fd, kvmSetMSRs, uintptrOf(&m))
	if err != nil || n != uintptr(m.N) {
		return fmt.Errorf("%w: KVM_SET_MSRS set %d of %d (first refused: %#x): %v", ErrVMM, n, m.N, m.Entries[min(n, uintptr(m.N-1))].Index, err)
	}
	return nil
}

// setFSBase is arch_prctl(ARCH_SET_FS): one MSR write.
func (v *vcpu) setFSBase(base uint64) error {
	return v.setMSRs([]msrEntry{{Index: msrFSBase, Data: base}})
}

// Guest is one program in one VM. A Guest is not safe for concurrent use: one goroutine calls
// Run, Feed, Snapshot, Reset and Close.
type Guest struct {
	h   *Host
	cfg Config
	sh  *shell
	mem *memory
	k   *kernel
	// regs is the VMM's copy of the general registers as of the last exit.
	regs Regs
	// pending: the guest is parked at a system call (a blocked read, a restored snapshot, or a
	// timed wait a deadline cut short, k.resume then set) that the next Run serves before
	// entering the guest.
	pending bool
	// final is set once the program has exited or faulted; Run returns it again.
	final *Exit
	snap  *Snapshot // what Reset returns to; nil for a booted guest
	// lastExitSyscall: the last KVM_RUN ended at the stub's exit, whose completion KVM may still
	// owe (on VMX it steps over `out` at the next KVM_RUN).
	lastExitSyscall bool
	exits           uint64
	// Guest memory [0, mapped) is installed as KVM memory slots, one per growth step; slotEnds
	// holds each slot's end. KVM keeps per-page bookkeeping for every slot (8 bytes a page with
	// shadow paging), so slots cover what the program uses, not the whole memory limit.
	mapped   uint64
	slotEnds []uint64
	logDirty bool // slots log dirty pages (restored guests, for Reset)
	dirtyLog []uint64
	dirty    dirtyPolicy // which pages Reset leaves writable (dirty_hot.go)
	pool     *Pool       // the pool it was restored from, which learns its working set (prefault.go)
	closed   bool
}

// New boots program (an x86-64 ELF executable: static, or dynamically linked with its interpreter
// and libraries in cfg.Files) in a fresh VM. The guest has not run yet:
// call Run. Close releases it.
func (h *Host) New(ctx context.Context, cfg Config, program []byte) (*Guest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	prog, err := parseELF(program)
	if err != nil {
		return nil, err
	}
	if prog.interpPath != "" {
		if err := prog.attachInterp(cfg.Files); err != nil {
			return nil, err
		}
	}
	mem, err := newAnonMemory(cfg.Memory)
	if err != nil {
		return nil, err
	}
	g := &Guest{h: h, cfg: cfg, mem: mem}
	if err := g.boot(prog); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *Guest) boot(prog *program) error {
	h, cfg, mem := g.h, &g.cfg, g.mem
	writeControlStructures(mem)
	copy(mem.sys(stubAddr, pageSize), h.backend.stub())
	vdso := writeVDSO(mem)
	if err := prog.load(mem); err != nil {
		return err
	}
	sh, err := h.newShell()
	if err != nil {
		return err
	}
	g.sh = sh
	g.k = newKernel(mem, sh.cpu, cfg)
	g.k.nap = sh.cpu.wait
	k := g.k

	// Address space, packed low (see kernel): image, a guard page, the stack, a guard page, the
	// heap; mmap regions go above the heap.
	stackSize := min(uint64(8<<20), cfg.Memory/8)
	for _, s := range prog.loads {
		k.maps.add(s.vaddr&^(pageSize-1), pageUp(s.vaddr+s.memsz))
	}
	k.stackLo = pageUp(prog.loadEnd) + pageSize
	k.stackHi = k.stackLo + stackSize
	k.brkStart = k.stackHi + pageSize
	k.brk = k.brkStart
	if k.brkStart+k.brkGap() >= cfg.Memory {
		return fmt.Errorf("%w: the program's image (%d MiB) and stack leave no room in %d MiB of memory", ErrMemoryLimit, prog.loadEnd>>20, cfg.Memory>>20)
	}
	k.maps.add(k.stackLo, k.stackHi)
	k.grow = g.grow

	spec := stackSpec{args: cfg.Args, env: cfg.Env, execfn: cfg.ExePath, hwcap: h.hwcap, vdso: vdso, prog: prog}
	if _, err := io.ReadFull(k.random, spec.random[:]); err != nil {
		return fmt.Errorf("%w: Random: %v", ErrBadConfig, err)
	}
	if err := g.grow(k.brkStart); err != nil {
		return err
	}
	sp, err := buildStack(mem, k.stackHi, spec)
	if err != nil {
		return err
	}
	if err := sh.cpu.load(h.bootState()); err != nil {
		return err
	}
	g.regs = Regs{RIP: prog.entry, RSP: sp, RFLAGS: 0x202}
	sh.cpu.run.Regs = g.regs
	sh.cpu.run.DirtyRegs = syncRegs
	return nil
}

// Feed appends p to the guest's stdin. A guest stopped with BlockedOnRead continues on the next
// Run.
func (g *Guest) Feed(p []byte) { g.k.stdin.buf = append(g.k.stdin.buf, p...) }

// CloseStdin makes stdin reach end of file once the buffered bytes are read.
func (g *Guest) CloseStdin() { g.k.stdin.eof = true }

// SetOutput replaces the sinks for fds 1, 2 and 3 and gives each a fresh OutputLimit budget.
func (g *Guest) SetOutput(stdout, stderr, result io.Writer) {
	g.k.setOutputs(stdout, stderr, result, g.cfg.OutputLimit)
}

// Close destroys the VM and releases guest memory; safe to call more than once.
func (g *Guest) Close() error {
	if g.closed {
		return nil
	}
	g.learnWorkingSet() // a pooled guest that ran teaches its pool (prefault.go)
	g.closed = true
	var errs []error
	if g.sh != nil {
		errs = append(errs, g.sh.close())
	}
	errs = append(errs, g.mem.close())
	return errors.Join(errs...)
}
