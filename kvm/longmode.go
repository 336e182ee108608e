package kvm

import "encoding/binary"

// Guest-physical layout. The first 64 KiB hold the VMM's control structures; the program owns
// [userLo, memory size). Guest-virtual equals guest-physical (identity mapping).
const (
	pml4Addr  = 0x1000
	pdptAddr  = 0x2000
	pdAddr    = 0x3000 // four page directories: 0x3000..0x6fff map the first 4 GiB
	ptLowAddr = 0x7000 // 4 KiB pages for the first 2 MiB, so each control page has its own rights
	gdtAddr   = 0x8000
	tssAddr   = 0x8800
	idtAddr   = 0x9000
	stubAddr  = 0xA000 // the code MSR_LSTAR points at
	vvarAddr  = 0xB000 // the clock page the host keeps current
	vdsoAddr  = 0xC000 // the vDSO image, two pages
	vdsoSize  = 0x2000
	ptMMIO    = 0xE000 // page table for the 2 MiB that hold the exit page
	userLo    = 0x10000

	// mmioAddr is mapped by the page tables but backed by no memory slot, so a store to it leaves
	// the guest with KVM_EXIT_MMIO. It is user-writable: a program storing there directly only
	// makes a system call with the registers it already has, which it could do anyway.
	mmioAddr = 0xFFFFF000

	// MaxMemory is the largest guest memory: the exit page sits just below 4 GiB.
	MaxMemory = 3 << 30
	// MinMemory is the smallest guest memory New accepts.
	MinMemory = 4 << 20
)

// Page-table entry bits.
const (
	ptePresent = 1 << 0
	pteWrite   = 1 << 1
	pteUser    = 1 << 2
	pteLarge   = 1 << 7
	// pteAD pre-sets Accessed and Dirty: otherwise the MMU (KVM's shadow-paging walker on kvm-pvm)
	// writes them into the guest's page tables at first use, which makes every restored instance
	// copy its page-table pages and costs a write fault each.
	pteAD = 1<<5 | 1<<6
)

// Segment selectors in Linux's layout, which kvm-pvm requires for STAR.
const (
	selKernelCS = 0x10
	selKernelDS = 0x18
	selUserDS   = 0x2b
	selUserCS   = 0x33
	selTSS      = 0x40
)

// Control-register and MSR bits.
const (
	cr0PE = 1 << 0
	cr0MP = 1 << 1
	cr0ET = 1 << 4
	cr0NE = 1 << 5
	cr0WP = 1 << 16
	cr0PG = 1 << 31

	cr4PAE        = 1 << 5
	cr4OSFXSR     = 1 << 9
	cr4OSXMMEXCPT = 1 << 10
	cr4OSXSAVE    = 1 << 18

	eferSCE = 1 << 0
	eferLME = 1 << 8
	eferLMA = 1 << 10

	msrEFER         = 0xC0000080
	msrSTAR         = 0xC0000081
	msrLSTAR        = 0xC0000082
	msrCSTAR        = 0xC0000083
	msrSFMASK       = 0xC0000084
	msrFSBase       = 0xC0000100
	msrGSBase       = 0xC0000101
	msrKernelGSBase = 0xC0000102
	msrTSC          = 0x10

	// star: SYSCALL loads CS 0x10/SS 0x18; SYSRET loads CS 0x23+16=0x33, SS 0x23+8=0x2b.
	starValue = uint64(0x23)<<48 | uint64(selKernelCS)<<32
	// sfmask clears TF, DF, AC and NT on entry to the stub, as Linux does; IF is left alone
	// because nothing ever interrupts the guest.
	sfmaskValue = 1<<8 | 1<<10 | 1<<14 | 1<<18
)

// writeControlStructures builds the page tables, GDT and TSS for a guest of memSize bytes.
// Control pages are supervisor-only (or user read-only for the stub, clock page and vDSO), so the
// program, which runs at CPL3, can neither read nor rewrite them.
func writeControlStructures(m *memory) {
	memSize := m.size()
	le := binary.LittleEndian
	pml4 := m.sys(pml4Addr, pageSize)
	le.PutUint64(pml4, pdptAddr|ptePresent|pteWrite|pteUser|pteAD)
	pdpt := m.sys(pdptAddr, pageSize)
	for i := uint64(0); i < 4; i++ {
		le.PutUint64(pdpt[i*8:], (pdAddr+i*pageSize)|ptePresent|pteWrite|pteUser|pteAD)
	}
	pd := m.sys(pdAddr, 4*pageSize)
	le.PutUint64(pd, ptLowAddr|ptePresent|pteWrite|pteUser|pteAD)
	for gpa := uint64(2 << 20); gpa < memSize; gpa += 2 << 20 {
		le.PutUint64(pd[gpa>>21*8:], gpa|ptePresent|pteWrite|pteUser|pteLarge|pteAD)
	}
	le.PutUint64(pd[(mmioAddr>>21)*8:], ptMMIO|ptePresent|pteWrite|pteUser|pteAD)
	le.PutUint64(m.sys(ptMMIO, pageSize)[(mmioAddr>>12&511)*8:], mmioAddr|ptePresent|pteWrite|pteUser|pteAD)

	pt := m.sys(ptLowAddr, pageSize)
	for gpa := uint64(pageSize); gpa < 2<<20 && gpa < memSize; gpa += pageSize {
		var flags uint64 = ptePresent | pteAD
		switch {
		case gpa >= userLo, gpa == ringAddr:
			flags |= pteWrite | pteUser
		case gpa == stubAddr, gpa == vvarAddr, gpa >= vdsoAddr && gpa < vdsoAddr+vdsoSize:
			flags |= pteUser // readable and executable by the program, never writable
		default:
			flags |= pteWrite // supervisor only
		}
		le.PutUint64(pt[gpa/pageSize*8:], gpa|flags)
	}

	gdt := m.sys(gdtAddr, 0x50)
	le.PutUint64(gdt[0x08:], 0x00cf9b000000ffff) // 32-bit kernel code (unused)
	le.PutUint64(gdt[0x10:], 0x00af9b000000ffff) // kernel code, 64-bit
	le.PutUint64(gdt[0x18:], 0x00cf93000000ffff) // kernel data
	le.PutUint64(gdt[0x20:], 0x00cffb000000ffff) // 32-bit user code (unused)
	le.PutUint64(gdt[0x28:], 0x00cff3000000ffff) // user data
	le.PutUint64(gdt[0x30:], 0x00affb000000ffff) // user code, 64-bit
	const tssLimit = 0x67
	le.PutUint64(gdt[0x40:], tssLimit|(tssAddr&0xffffff)<<16|0x89<<40|(tssAddr>>24&0xff)<<56)
	le.PutUint64(gdt[0x48:], tssAddr>>32)
	// TSS: the I/O map base points past the limit, so no port is allowed from CPL3.
	binary.LittleEndian.PutUint16(m.sys(tssAddr, 0x68)[0x66:], 0x68)
}

// initialSregs is the long-mode CPL3 state every booted guest starts in.
func initialSregs() sregs {
	code := segment{Base: 0, Limit: 0xffffffff, Selector: selUserCS, Type: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := segment{Base: 0, Limit: 0xffffffff, Selector: selUserDS, Type: 3, Present: 1, DPL: 3, DB: 1, S: 1, G: 1}
	return sregs{
		CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   segment{Base: tssAddr, Limit: 0x67, Selector: selTSS, Type: 11, Present: 1},
		LDT:  segment{Unusable: 1},
		GDT:  dtable{Base: gdtAddr, Limit: 0x4f},
		IDT:  dtable{Base: idtAddr, Limit: 0}, // any exception is a triple fault: reported as Fault
		CR0:  cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0PG,
		CR3:  pml4Addr,
		CR4:  cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT | cr4OSXSAVE,
		EFER: eferSCE | eferLME | eferLMA,
	}
}

// initialMSRs are the system-call MSRs every guest gets; entry is the stub's entry point.
func initialMSRs(entry uint64) []msrEntry {
	return []msrEntry{
		{Index: msrSTAR, Data: starValue},
		{Index: msrLSTAR, Data: entry},
		{Index: msrCSTAR, Data: entry},
		{Index: msrSFMASK, Data: sfmaskValue},
		{Index: msrFSBase}, {Index: msrGSBase}, {Index: msrKernelGSBase},
	}
}
