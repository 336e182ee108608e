package kvm

import (
	"encoding/binary"
	"errors"
	"testing"
)

// minimalELF returns a valid ELF header with one PT_LOAD that callers then break.
func minimalELF() []byte {
	le := binary.LittleEndian
	f := make([]byte, 4096)
	copy(f, "\x7fELF")
	f[4], f[5], f[6] = 2, 1, 1
	le.PutUint16(f[16:], etExec)
	le.PutUint16(f[18:], 62)
	le.PutUint64(f[24:], 0x400000+0x78)
	le.PutUint64(f[32:], 64)
	le.PutUint16(f[54:], 56)
	le.PutUint16(f[56:], 1)
	ph := f[64:]
	le.PutUint32(ph, ptLoad)
	le.PutUint64(ph[8:], 0)
	le.PutUint64(ph[16:], 0x400000)
	le.PutUint64(ph[32:], 4096)
	le.PutUint64(ph[40:], 8192)
	return f
}

func TestParseELFRejectsHostileFiles(t *testing.T) {
	le := binary.LittleEndian
	if p, err := parseELF(minimalELF()); err != nil || p.entry != 0x400078 || p.loadEnd != 0x402000 || p.phdr != 0x400040 {
		t.Fatalf("minimal ELF: %+v %v", p, err)
	}
	cases := map[string]func(f []byte) []byte{
		"empty":            func(f []byte) []byte { return nil },
		"not ELF":          func(f []byte) []byte { f[0] = 'X'; return f },
		"32-bit":           func(f []byte) []byte { f[4] = 1; return f },
		"big-endian":       func(f []byte) []byte { f[5] = 2; return f },
		"arm64":            func(f []byte) []byte { le.PutUint16(f[18:], 183); return f },
		"relocatable":      func(f []byte) []byte { le.PutUint16(f[16:], 1); return f },
		"phdrs past EOF":   func(f []byte) []byte { le.PutUint64(f[32:], 1<<62); return f },
		"phnum huge":       func(f []byte) []byte { le.PutUint16(f[56:], 65535); return f },
		"segment past EOF": func(f []byte) []byte { le.PutUint64(f[64+8:], 1<<40); return f },
		"filesz > memsz":   func(f []byte) []byte { le.PutUint64(f[64+40:], 10); return f },
		"load at zero":     func(f []byte) []byte { le.PutUint64(f[64+16:], 0); return f },
		"load wraps":       func(f []byte) []byte { le.PutUint64(f[64+16:], ^uint64(0)-100); return f },
		"load above max":   func(f []byte) []byte { le.PutUint64(f[64+16:], MaxMemory); return f },
		"dynamic":          func(f []byte) []byte { le.PutUint32(f[64:], ptInterp); return f },
		"no PT_LOAD":       func(f []byte) []byte { le.PutUint32(f[64:], 4); return f },
	}
	for name, breakIt := range cases {
		if _, err := parseELF(breakIt(minimalELF())); !errors.Is(err, ErrBadProgram) {
			t.Errorf("%s: %v, want ErrBadProgram", name, err)
		}
	}
}

func FuzzParseELF(f *testing.F) {
	f.Add(minimalELF())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseELF(data)
		if err != nil {
			return
		}
		for _, s := range p.loads {
			if !inRange(s.vaddr, s.memsz, userLo, MaxMemory) || uint64(len(s.data)) > s.memsz {
				t.Fatalf("accepted segment %#x+%#x (%d file bytes)", s.vaddr, s.memsz, len(s.data))
			}
		}
	})
}
