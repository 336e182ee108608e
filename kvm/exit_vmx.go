package kvm

// vmxExit: on hardware virtualisation `syscall` enters the stub at CPL0, where `out` to a port
// leaves the guest with KVM_EXIT_IO (a microsecond or two) and `sysretq` returns to the program
// exactly as Linux does. The stub runs on the program's stack without touching it and the port
// carries no data: the VMM reads the registers. This path is written for production hosts and is
// not exercised on the kvm-pvm development machines.
type vmxExit struct{}

const vmxPort = 0xE9

// vmxStub is `out 0xE9, al; sysretq`.
var vmxStub = []byte{0xE6, vmxPort, 0x48, 0x0F, 0x07}

func (vmxExit) name() string           { return "vmx" }
func (vmxExit) stub() []byte           { return vmxStub }
func (vmxExit) entry() uint64          { return stubAddr }
func (vmxExit) inFastPath(uint64) bool { return false } // no output ring: exits are cheap here

func (vmxExit) isSyscall(run *kvmRunPage) bool {
	io := run.io()
	return run.ExitReason == exitIO && io.Port == vmxPort && io.Direction == 1
}

func (vmxExit) complete(r *Regs, ret uint64, live bool) {
	r.RAX = ret
	if !live {
		// Parked at `out` by a restore: KVM owes no completion, so step over it ourselves.
		r.RIP = stubAddr + 2
	}
}

func (vmxExit) park(r *Regs, nr uint64, live bool) {
	r.RAX = nr
	r.RIP = stubAddr
}
