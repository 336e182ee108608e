package kvm

import (
	_ "embed"
	"os"
)

// exitPath is how a guest's `syscall` reaches the VMM and how the VMM returns to the program. The
// two backends differ because kvm-pvm keeps `syscall` at CPL3 while hardware VMX enters CPL0.
type exitPath interface {
	// name is "pvm" or "vmx"; it is part of a snapshot's fingerprint.
	name() string
	// stub is the code placed at stubAddr; entry is where MSR_LSTAR points.
	stub() []byte
	entry() uint64
	// inFastPath reports whether rip lies in stub code that may be mid-way through an output-ring
	// update (see ring.go); the ring is drained only when it does not.
	inFastPath(rip uint64) bool
	// isSyscall reports whether the exit in run is the stub's exit.
	isSyscall(run *kvmRunPage) bool
	// complete sets the registers that return ret to the program. live is true when the syscall
	// came from an exit of this vCPU's last KVM_RUN (KVM may still owe the exit instruction's
	// completion) and false when the guest was parked by a restore.
	complete(r *Regs, ret uint64, live bool)
	// park sets the registers so that the guest, run again, re-issues system call nr from the stub.
	park(r *Regs, nr uint64, live bool)
}

// detectBackend reports the exit path for this host's KVM: kvm-pvm when its module is loaded.
func detectBackend() exitPath {
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return pvmExit{}
	}
	return vmxExit{}
}

// pvmExit: on kvm-pvm, `syscall` jumps to MSR_LSTAR but stays at CPL3, where `out` and `sysretq`
// fault. The stub's exit is one store to mmioAddr, a page the tables map but no memory slot
// backs: KVM_EXIT_MMIO with RIP already past the store. Its entry first tries to append a
// write(2) to the output ring (ring.go) without exiting at all; see vdso/stub_pvm.S.
//
// Return path: the VMM writes RIP ← RCX and RFLAGS ← R11 (masked as SYSRET masks it) together with
// RAX through the synchronised registers it writes anyway, which is exactly SYSRET's effect at
// CPL3. Why that is safe: nothing runs in the guest between the exit and the program's next
// instruction, no guest memory (the program's stack and red zone included) is touched, and the
// program gains nothing it could not do itself, since RCX and R11 are its own registers.
type pvmExit struct{}

// pvmStub is vdso/stub_pvm.S assembled: the exit (`mov [mmioAddr], eax`) at offset 0, the entry
// at pvmEntry. The stored value is ignored: the VMM reads RAX from the synchronised registers.
//
//go:embed vdso/stub_pvm.bin
var pvmStub []byte

const pvmEntry = 16

func (pvmExit) name() string  { return "pvm" }
func (pvmExit) stub() []byte  { return pvmStub }
func (pvmExit) entry() uint64 { return stubAddr + pvmEntry }
func (pvmExit) inFastPath(rip uint64) bool {
	return rip >= stubAddr+pvmEntry && rip < stubAddr+uint64(len(pvmStub))
}

func (pvmExit) isSyscall(run *kvmRunPage) bool {
	m := run.mmio()
	return run.ExitReason == exitMMIO && m.IsWrite == 1 && m.PhysAddr == mmioAddr
}

// rflagsSysret is the set of RFLAGS bits SYSRET takes from R11 (RF and VM cleared; bit 1 set).
const rflagsSysret = 0x3C7FD7

func (pvmExit) complete(r *Regs, ret uint64, live bool) {
	r.RAX = ret
	r.RIP = r.RCX
	r.RFLAGS = r.R11&rflagsSysret | 2
}

func (pvmExit) park(r *Regs, nr uint64, live bool) {
	r.RAX = nr
	r.RIP = stubAddr
}
