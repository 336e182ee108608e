// Package kvm is a virtual machine monitor that runs one unmodified Linux x86-64 program (static,
// or dynamically linked over a read-only file tree) per KVM virtual machine, with no guest kernel: the program's system calls leave the guest and
// are served in Go by a small library OS. A guest parked in a blocking read of its stdin can be
// written to a snapshot file, restored copy-on-write into many VMs at once, and reset to that
// snapshot by rewriting only the pages it dirtied. The package knows nothing about OpenWhisk: a
// caller feeds stdin, collects stdout, stderr and the result channel (fd 3), and reads why the
// guest stopped.
//
// # Use
//
//	h, _ := kvm.Open()                         // once per process
//	g, _ := h.New(ctx, kvm.Config{Memory: 256 << 20, Result: &res}, elf)
//	ex, _ := g.Run(ctx)                        // ex.Reason == kvm.BlockedOnRead: waiting for input
//	g.WriteSnapshot(path)                      // frozen inside that read
//	snap, _ := h.OpenSnapshot(path)            // refused on a host with other CPU features
//	g2, _ := h.Restore(ctx, snap, cfg)         // or pool.Restore, with VMs created in advance
//	g2.Feed(line); ex, _ = g2.Run(ctx)         // one activation; result on fd 3
//	g2.Reset()                                 // back to the snapshot, dirty pages only
//
// # The guest
//
// The program runs at CPL3 in long mode over identity-mapped page tables. Guest-physical memory
// [0, 64 KiB) holds the VMM's page tables, GDT, TSS, system-call stub, vDSO, clock page and output
// ring, on pages the program cannot write (the stub, vDSO and clock page are user read-only; the
// output ring is user-writable and treated as hostile input). The program owns the rest, packed
// low: ELF image, stack, heap, then mmap regions first-fit. Only [0, used) is installed as KVM
// memory slots, grown on demand, because KVM keeps bookkeeping per guest page of every slot.
//
// MSR_LSTAR points at the stub. On kvm-pvm (exit_pvm.go) `syscall` stays at CPL3 and the stub
// leaves the guest by a store to an unbacked guest-physical page (KVM_EXIT_MMIO); the VMM serves
// the call and returns by writing RIP←RCX, RFLAGS←R11 with RAX through KVM_CAP_SYNC_REGS, so an
// exit costs one KVM_RUN and no other ioctl. Writes to output streams are appended to the output
// ring by the stub without an exit. On hardware VMX (exit_vmx.go) the stub runs at CPL0 and uses
// `out` then `sysretq`. Any exception is a triple fault (the IDT is empty), reported as Fault
// with the registers.
//
// The library OS (kernel.go, sys_*.go) serves an allow-list (sys_table.go): memory, the standard
// descriptors, clocks, random, identity and limits. Every guest pointer is checked against the
// program's memory before host memory is touched; everything else answers ENOSYS and is counted;
// fork, clone and exec stop the guest as Unsupported. The vDSO (vdso/) answers clock_gettime,
// gettimeofday, time and getcpu from a TSC-calibrated clock page without exits.
//
// # Files and dynamically linked programs
//
// A guest sees only its Config.Files tree (fs.go): host paths listed one by one, read-only,
// in-memory files (a launcher), and a private in-memory writable /tmp; every other path is
// ENOENT. Paths are resolved by the VMM component by component in the guest's namespace, so a
// symbolic link that leads out of the listed paths leads nowhere. For a program with PT_INTERP
// (interp.go) the VMM loads the interpreter from the tree above the program's image and starts
// it with AT_BASE and AT_ENTRY set, as Linux does; ld.so then opens and maps the libraries with
// the file calls of sys_fs.go (file mappings are private copies). Snapshots carry the tree's
// description, the open files, the current directory and /tmp, so a restore sees the same files.
// PYTHON_SYSCALLS.md lists what Debian's python3 asks for and how each call is treated.
//
// # Snapshots
//
// A snapshot (snapshot.go) is a JSON header (registers, segment and control state, XSAVE, XCRs,
// MSRs, the library OS's state, the host fingerprint) followed, page aligned, by the memory image
// with zero pages as holes. The guest is parked at the stub's exit with the read's number in RAX,
// so a restored guest simply issues the read again; nothing depends on KVM's in-kernel state.
// Restore maps the image MAP_PRIVATE: instances share every page none of them wrote. Reset
// (reset.go) copies back the pages KVM's dirty log and the VMM's own record say were written;
// pages the guest writes at every activation stay writable across resets and are simply copied
// back each time, instead of costing a write-protection fault each (dirty_hot.go). A Pool learns
// its snapshot's working set from the first guest it restored and prefaults it in the VMs it
// prepares, so their shadow page tables already map it (prefault.go).
//
// # Costs and limits (measured on kvm-pvm, see bench_test.go)
//
// An exit costs tens of microseconds on kvm-pvm, so the stub keeps writes in the guest (an
// activation of a line-in, line-out program takes one exit) and the vDSO keeps clocks there. A
// restore's run is dominated by first-touch faults of shadow paging; Reset avoids them. Every VM
// of a process shares the process's address space, and KVM registers one MMU notifier per VM, so
// each host page-table change (a copy-on-write fault of any guest) visits every VM of the
// process: past a thousand or so live guests per process restores slow down markedly. Spread
// large fleets of guests over several processes.
package kvm
