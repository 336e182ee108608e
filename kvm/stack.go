package kvm

import (
	"encoding/binary"
	"fmt"
)

// Auxiliary vector keys (AT_*).
const (
	atNull        = 0
	atPhdr        = 3
	atPhent       = 4
	atPhnum       = 5
	atPagesz      = 6
	atBase        = 7
	atFlags       = 8
	atEntry       = 9
	atUID         = 11
	atEUID        = 12
	atGID         = 13
	atEGID        = 14
	atPlatform    = 15
	atHwcap       = 16
	atClktck      = 17
	atSecure      = 23
	atRandom      = 25
	atHwcap2      = 26
	atExecfn      = 31
	atSysinfoEhdr = 33
)

// stackSpec is what the initial stack carries.
type stackSpec struct {
	args, env []string
	execfn    string
	random    [16]byte
	hwcap     uint64
	vdso      uint64 // AT_SYSINFO_EHDR, 0 for none
	prog      *program
}

// buildStack lays out the initial process stack below top exactly as Linux does: strings and
// AT_RANDOM bytes at the top, then (16-byte aligned) argc, argv, NULL, envp, NULL, auxv, AT_NULL.
// It returns the initial RSP.
func buildStack(m *memory, top uint64, s stackSpec) (uint64, error) {
	le := binary.LittleEndian
	sp := top
	var werr error
	push := func(b []byte) uint64 {
		sp -= uint64(len(b))
		if err := m.writeUser(sp, b); err != nil && werr == nil {
			werr = err
		}
		return sp
	}
	pushString := func(str string) uint64 { return push(append([]byte(str), 0)) }

	execfn := pushString(s.execfn)
	envp := make([]uint64, len(s.env))
	for i := len(s.env) - 1; i >= 0; i-- {
		envp[i] = pushString(s.env[i])
	}
	argv := make([]uint64, len(s.args))
	for i := len(s.args) - 1; i >= 0; i-- {
		argv[i] = pushString(s.args[i])
	}
	platform := pushString("x86_64")
	sp &^= 15
	random := push(s.random[:])

	aux := []uint64{
		atPhdr, s.prog.phdr, atPhent, s.prog.phent, atPhnum, s.prog.phnum,
		atPagesz, pageSize, atBase, s.prog.interpBase, atFlags, 0, atEntry, s.prog.atEntry(),
		atUID, 0, atEUID, 0, atGID, 0, atEGID, 0, atSecure, 0,
		atHwcap, s.hwcap, atHwcap2, 0, atClktck, 100,
		atRandom, random, atPlatform, platform, atExecfn, execfn,
	}
	if s.vdso != 0 {
		aux = append(aux, atSysinfoEhdr, s.vdso)
	}
	aux = append(aux, atNull, 0)

	words := 1 + len(argv) + 1 + len(envp) + 1 + len(aux)
	sp -= uint64(words * 8)
	sp &^= 15
	if werr != nil || sp < m.userLo || top-sp > 1<<20 {
		return 0, fmt.Errorf("%w: arguments and environment (%d bytes) do not fit on the stack", ErrBadConfig, top-sp)
	}
	vec := make([]byte, words*8)
	i := 0
	put := func(v uint64) { le.PutUint64(vec[i*8:], v); i++ }
	put(uint64(len(argv)))
	for _, a := range argv {
		put(a)
	}
	put(0)
	for _, e := range envp {
		put(e)
	}
	put(0)
	for _, a := range aux {
		put(a)
	}
	if err := m.writeUser(sp, vec); err != nil {
		return 0, fmt.Errorf("%w: initial stack at %#x: %v", ErrBadConfig, sp, err)
	}
	return sp, nil
}
