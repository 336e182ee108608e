package kvm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Dynamically linked programs. Like Linux's binfmt_elf, the VMM loads the program and the
// interpreter its PT_INTERP names (ld-linux-x86-64.so.2) and starts the interpreter, telling it
// through the auxiliary vector where the program is (AT_PHDR, AT_ENTRY) and where the
// interpreter itself was put (AT_BASE). The interpreter then opens and maps the shared libraries
// through the guest's file system like any other program would.

// interpGap separates the program's image from the interpreter's, as unmapped pages would.
const interpGap = 1 << 20

// maxInterpBytes bounds the interpreter a program may name (ld-linux is about 200 KiB).
const maxInterpBytes = 16 << 20

// attachInterp loads p's interpreter from the guest's file tree just above p's image and makes
// it the entry point. Errors wrap ErrBadProgram.
func (p *program) attachInterp(t *FileTree) error {
	if t == nil {
		return fmt.Errorf("%w: dynamically linked (interpreter %s): give the guest a Config.Files tree that holds the interpreter and the libraries, or build the program with -static", ErrBadProgram, p.interpPath)
	}
	var f guestFS
	f.init(t)
	n, e := f.walk(p.interpPath, true)
	if e == 0 && (n.isDir() || (n.kind != nodeHost && n.kind != nodeMem)) {
		e = unix.EISDIR
	}
	if e != 0 {
		return fmt.Errorf("%w: interpreter %s is not a file in the guest's file tree: %v", ErrBadProgram, p.interpPath, e)
	}
	data := n.mem
	if n.kind == nodeHost && n.meta.st.Size > maxInterpBytes {
		return fmt.Errorf("%w: interpreter %s has %d bytes, more than an ELF interpreter has", ErrBadProgram, n.path, n.meta.st.Size)
	}
	if n.kind == nodeHost {
		if data, e = t.hostContent(n.path, n.meta.st.Size); e != 0 {
			return fmt.Errorf("%w: read interpreter %s: %v", ErrBadProgram, n.path, e)
		}
	}
	base := (pageUp(p.loadEnd) + interpGap) &^ (interpGap - 1)
	ip, err := parseELFAt(data, base)
	if err != nil {
		return fmt.Errorf("interpreter %s: %w", p.interpPath, err)
	}
	if ip.interpPath != "" {
		return fmt.Errorf("%w: interpreter %s itself names an interpreter", ErrBadProgram, p.interpPath)
	}
	for _, s := range ip.loads {
		if s.vaddr < base {
			return fmt.Errorf("%w: interpreter %s is not position independent (segment at %#x)", ErrBadProgram, p.interpPath, s.vaddr)
		}
	}
	p.interpBase = base
	p.userEntry = p.entry
	p.entry = ip.entry
	p.loads = append(p.loads, ip.loads...)
	p.loadEnd = max(p.loadEnd, ip.loadEnd)
	return nil
}

// atEntry is AT_ENTRY: the program's own entry point, also when the interpreter starts first.
func (p *program) atEntry() uint64 {
	if p.userEntry != 0 {
		return p.userEntry
	}
	return p.entry
}
