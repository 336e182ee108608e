package kvm

import (
	"encoding/binary"
	"fmt"
)

// program is what the loader learned from an ELF executable.
type program struct {
	entry   uint64
	phdr    uint64 // guest address of the program headers (AT_PHDR)
	phnum   uint64
	phent   uint64
	loadEnd uint64 // end of the highest PT_LOAD segment: the initial brk
	loads   []segmentLoad
	// interpPath is the PT_INTERP path of a dynamically linked program ("" for a static one);
	// interp.go loads that interpreter and sets interpBase and userEntry.
	interpPath string
	interpBase uint64 // AT_BASE: where the interpreter is loaded, 0 without one
	userEntry  uint64 // AT_ENTRY: the program's own entry when entry is the interpreter's; 0 = entry
}

type segmentLoad struct {
	vaddr, memsz uint64
	data         []byte // file bytes; the rest of memsz is zero
}

const (
	ptLoad   = 1
	ptInterp = 3
	ptPhdr   = 6
	etExec   = 2
	etDyn    = 3
	// staticPIEBase is where a static-pie executable (ET_DYN without an interpreter) is loaded.
	staticPIEBase = 0x400000
)

// parseELF validates a static x86-64 ELF executable and describes its segments. Every offset and
// size is checked against the file before it is used: the file is as hostile as any input.
func parseELF(f []byte) (*program, error) { return parseELFAt(f, staticPIEBase) }

// parseELFAt is parseELF with ET_DYN objects loaded at base (an interpreter goes elsewhere).
func parseELFAt(f []byte, base uint64) (*program, error) {
	le := binary.LittleEndian
	if len(f) < 64 || string(f[:4]) != "\x7fELF" {
		return nil, fmt.Errorf("%w: not an ELF file", ErrBadProgram)
	}
	if f[4] != 2 || f[5] != 1 {
		return nil, fmt.Errorf("%w: not a 64-bit little-endian ELF", ErrBadProgram)
	}
	typ, machine := le.Uint16(f[16:]), le.Uint16(f[18:])
	if machine != 62 {
		return nil, fmt.Errorf("%w: machine %d is not x86-64", ErrBadProgram, machine)
	}
	if typ != etExec && typ != etDyn {
		return nil, fmt.Errorf("%w: ELF type %d is not an executable", ErrBadProgram, typ)
	}
	entry, phoff := le.Uint64(f[24:]), le.Uint64(f[32:])
	phent, phnum := uint64(le.Uint16(f[54:])), uint64(le.Uint16(f[56:]))
	if phent < 56 || phnum == 0 || phnum > 256 || !inRange(phoff, phent*phnum, 0, uint64(len(f))) {
		return nil, fmt.Errorf("%w: program headers (offset %d, %d × %d bytes) outside the file", ErrBadProgram, phoff, phnum, phent)
	}
	var bias uint64
	if typ == etDyn {
		bias = base
	}
	p := &program{entry: entry + bias, phnum: phnum, phent: phent}
	var phdrVaddr uint64
	havePhdr := false
	for i := uint64(0); i < phnum; i++ {
		h := f[phoff+i*phent:]
		ptype := le.Uint32(h)
		off, vaddr := le.Uint64(h[8:]), le.Uint64(h[16:])
		filesz, memsz := le.Uint64(h[32:]), le.Uint64(h[40:])
		switch ptype {
		case ptInterp:
			if filesz < 2 || filesz > 4096 || !inRange(off, filesz, 0, uint64(len(f))) || f[off+filesz-1] != 0 || f[off] != '/' {
				return nil, fmt.Errorf("%w: PT_INTERP (offset %d, %d bytes) is not an absolute path inside the file", ErrBadProgram, off, filesz)
			}
			p.interpPath = string(f[off : off+filesz-1])
		case ptPhdr:
			phdrVaddr, havePhdr = vaddr+bias, true
		case ptLoad:
			if filesz > memsz || !inRange(off, filesz, 0, uint64(len(f))) {
				return nil, fmt.Errorf("%w: segment %d (offset %d, %d bytes) outside the file", ErrBadProgram, i, off, filesz)
			}
			va := vaddr + bias
			if !inRange(va, memsz, userLo, MaxMemory) {
				return nil, fmt.Errorf("%w: segment %d at %#x+%#x outside guest memory [%#x, %#x)", ErrBadProgram, i, va, memsz, userLo, MaxMemory)
			}
			p.loads = append(p.loads, segmentLoad{vaddr: va, memsz: memsz, data: f[off : off+filesz]})
			if va+memsz > p.loadEnd {
				p.loadEnd = va + memsz
			}
			if !havePhdr && off <= phoff && phoff+phnum*phent <= off+filesz {
				phdrVaddr = va + (phoff - off)
			}
		}
	}
	if len(p.loads) == 0 {
		return nil, fmt.Errorf("%w: no PT_LOAD segment", ErrBadProgram)
	}
	p.phdr = phdrVaddr
	return p, nil
}

// load copies the segments into guest memory, which must be zero where they go.
func (p *program) load(m *memory) error {
	for _, s := range p.loads {
		if !inRange(s.vaddr, s.memsz, m.userLo, m.size()) {
			return fmt.Errorf("%w: segment at %#x+%#x does not fit in %d MiB of guest memory", ErrMemoryLimit, s.vaddr, s.memsz, m.size()>>20)
		}
		if err := m.writeUser(s.vaddr, s.data); err != nil {
			return err
		}
	}
	return nil
}
