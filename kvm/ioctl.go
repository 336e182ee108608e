package kvm

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the only place (with memory.go) that uses unsafe: it names the KVM ioctls, mirrors
// the kernel's structures byte for byte, and wraps the raw ioctl system call.

// ioctl numbers: _IOC(dir, 0xAE, nr, size) with dir 1 = write, 2 = read, 3 = both.
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmCheckExtension      = 0xAE03
	kvmGetVCPUMmapSize     = 0xAE04
	kvmGetSupportedCPUID   = 0xC008AE05
	kvmCreateVCPU          = 0xAE41
	kvmGetDirtyLog         = 0x4010AE42
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmSetTSSAddr          = 0xAE47
	kvmSetIdentityMapAddr  = 0x4008AE48
	kvmRun                 = 0xAE80
	kvmGetRegs             = 0x8090AE81
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmGetMSRs             = 0xC008AE88
	kvmSetMSRs             = 0x4008AE89
	kvmSetCPUID2           = 0x4008AE90
	kvmGetFPU              = 0x81A0AE8C
	kvmSetFPU              = 0x41A0AE8D
	kvmGetTSCKHz           = 0xAEA3
	kvmGetXsave            = 0x9000AEA4
	kvmSetXsave            = 0x5000AEA5
	kvmGetXCRs             = 0x8188AEA6
	kvmSetXCRs             = 0x4188AEA7
	kvmEnableCap           = 0x4068AEA3
)

// Capabilities (KVM_CAP_*).
const (
	capSyncRegs      = 74
	capImmediateExit = 136
	capXsave         = 55
	capXCRs          = 56
	capNrMemslots    = 10
)

// Exit reasons (KVM_EXIT_*).
const (
	exitUnknown       = 0
	exitException     = 1
	exitIO            = 2
	exitHypercall     = 3
	exitDebug         = 4
	exitHLT           = 5
	exitMMIO          = 6
	exitShutdown      = 8
	exitFailEntry     = 9
	exitIntr          = 10
	exitInternalError = 17
	exitSystemEvent   = 24
)

// Sync register sets (KVM_SYNC_X86_*).
const (
	syncRegs  = 1
	syncSregs = 2
)

const memLogDirtyPages = 1 // KVM_MEM_LOG_DIRTY_PAGES

// Regs mirrors struct kvm_regs: the general registers of the vCPU.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

type segment struct {
	Base                            uint64
	Limit                           uint32
	Selector                        uint16
	Type, Present, DPL, DB, S, L, G uint8
	AVL, Unusable, _                uint8
}

type dtable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// sregs mirrors struct kvm_sregs.
type sregs struct {
	CS, DS, ES, FS, GS, SS, TR, LDT segment
	GDT, IDT                        dtable
	CR0, CR2, CR3, CR4, CR8         uint64
	EFER, APICBase                  uint64
	InterruptBitmap                 [4]uint64
}

// fpu mirrors struct kvm_fpu.
type fpu struct {
	FPR        [8][16]uint8
	FCW, FSW   uint16
	FTWX, _    uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// xsave mirrors struct kvm_xsave (the legacy 4 KiB form).
type xsave struct {
	Region [1024]uint32
}

type xcr struct {
	XCR   uint32
	_     uint32
	Value uint64
}

// xcrs mirrors struct kvm_xcrs.
type xcrs struct {
	NrXCRs uint32
	Flags  uint32
	XCRs   [16]xcr
	_      [16]uint64
}

type msrEntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

// msrs mirrors struct kvm_msrs with room for a fixed number of entries.
type msrs struct {
	N       uint32
	_       uint32
	Entries [16]msrEntry
}

type cpuidEntry struct {
	Function, Index, Flags uint32
	EAX, EBX, ECX, EDX     uint32
	_                      [3]uint32
}

// cpuid mirrors struct kvm_cpuid2 with room for maxCPUID entries.
const maxCPUID = 256

type cpuid struct {
	N       uint32
	_       uint32
	Entries [maxCPUID]cpuidEntry
}

type userMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

type dirtyLog struct {
	Slot   uint32
	_      uint32
	Bitmap uint64 // a pointer to the caller's bitmap
}

type enableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}

// kvmRunPage mirrors the start of struct kvm_run, the page shared with the kernel per vCPU.
type kvmRunPage struct {
	RequestInterruptWindow uint8
	ImmediateExit          uint8
	_                      [6]uint8
	ExitReason             uint32
	ReadyForInjection      uint8
	IFFlag                 uint8
	Flags                  uint16
	CR8                    uint64
	APICBase               uint64
	Exit                   [256]byte // the exit union; see mmioExit, ioExit
	ValidRegs              uint64
	DirtyRegs              uint64
	Regs                   Regs // s.regs.regs when syncRegs is valid
	Sregs                  sregs
}

// mmioExit is the union's view for KVM_EXIT_MMIO.
type mmioExit struct {
	PhysAddr uint64
	Data     [8]byte
	Len      uint32
	IsWrite  uint8
}

// ioExit is the union's view for KVM_EXIT_IO.
type ioExit struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64
}

// internalExit is the union's view for KVM_EXIT_INTERNAL_ERROR.
type internalExit struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

func (r *kvmRunPage) mmio() *mmioExit         { return (*mmioExit)(unsafe.Pointer(&r.Exit[0])) }
func (r *kvmRunPage) io() *ioExit             { return (*ioExit)(unsafe.Pointer(&r.Exit[0])) }
func (r *kvmRunPage) internal() *internalExit { return (*internalExit)(unsafe.Pointer(&r.Exit[0])) }

// runPageOf views a mapped kvm_run region as its Go mirror.
func runPageOf(b []byte) *kvmRunPage {
	if len(b) < int(unsafe.Sizeof(kvmRunPage{})) {
		panic("kvm: kvm_run mapping smaller than struct kvm_run")
	}
	return (*kvmRunPage)(unsafe.Pointer(&b[0]))
}

// ioctl issues one ioctl, retrying on EINTR, which KVM returns whenever a signal (Go's preemption
// signal among them) arrives while it waits.
func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return r, errno
		}
		return r, nil
	}
}

// ioctlPtr is ioctl with a pointer argument.
func ioctlPtr[T any](fd int, req uintptr, p *T) error {
	_, err := ioctl(fd, req, uintptr(unsafe.Pointer(p)))
	return err
}

// runOnce issues KVM_RUN once. Unlike ioctl it does not retry EINTR: the caller decides whether an
// interruption was a stop request (deadline, cancel) or only the Go scheduler's preemption.
func runOnce(fd int) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kvmRun, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// getDirtyLog fetches (and re-arms) the dirty bitmap of one memory slot.
func getDirtyLog(vmfd int, slot uint32, bitmap []uint64) error {
	if len(bitmap) == 0 {
		return errors.New("kvm: empty dirty bitmap")
	}
	d := dirtyLog{Slot: slot, Bitmap: uint64(uintptr(unsafe.Pointer(&bitmap[0])))}
	if err := ioctlPtr(vmfd, kvmGetDirtyLog, &d); err != nil {
		return fmt.Errorf("KVM_GET_DIRTY_LOG: %w", err)
	}
	return nil
}

// setMemoryRegion installs (or, with size 0, removes) a memory slot backed by host memory b.
func setMemoryRegion(vmfd int, slot uint32, flags uint32, gpa uint64, b []byte) error {
	r := userMemoryRegion{Slot: slot, Flags: flags, GuestPhysAddr: gpa, MemorySize: uint64(len(b))}
	if len(b) > 0 {
		r.UserspaceAddr = uint64(uintptr(unsafe.Pointer(&b[0])))
	}
	if err := ioctlPtr(vmfd, kvmSetUserMemoryRegion, &r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x size %#x: %w", slot, gpa, len(b), err)
	}
	return nil
}

// uintptrOf passes a structure to ioctl when the caller needs the raw return value.
func uintptrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// setImmediateExit sets kvm_run.immediate_exit atomically with respect to other goroutines: the
// first four bytes of kvm_run hold request_interrupt_window, immediate_exit and padding.
func (r *kvmRunPage) setImmediateExit(on bool) {
	var v uint32
	if on {
		v = 1 << 8
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(r)), v)
}

// checkLayout verifies the Go mirrors against the kernel ABI sizes; a mismatch is a bug here.
func checkLayout() error {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_sregs", unsafe.Sizeof(sregs{}), 312},
		{"kvm_fpu", unsafe.Sizeof(fpu{}), 416},
		{"kvm_xcrs", unsafe.Sizeof(xcrs{}), 392},
		{"kvm_xsave", unsafe.Sizeof(xsave{}), 4096},
		{"kvm_cpuid_entry2", unsafe.Sizeof(cpuidEntry{}), 40},
		{"kvm_run.s.regs offset", unsafe.Offsetof(kvmRunPage{}.Regs), 304},
		{"kvm_userspace_memory_region", unsafe.Sizeof(userMemoryRegion{}), 32},
		{"kvm_enable_cap", unsafe.Sizeof(enableCap{}), 104},
	} {
		if c.got != c.want {
			return fmt.Errorf("kvm: %s is %d bytes in Go, %d in the kernel ABI", c.name, c.got, c.want)
		}
	}
	return nil
}
