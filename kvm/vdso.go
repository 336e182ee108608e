package kvm

import (
	_ "embed"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// The guest's vDSO (AT_SYSINFO_EHDR): vdso/vdso.c built by vdso/build.sh. It answers
// clock_gettime, gettimeofday, time and getcpu inside the guest from the clock page at vvarAddr,
// which the VMM fills: a TSC reading paired with the guest's clocks, and the TSC's scale. The
// page starts (and is snapshotted) with mode 0, which sends every clock call to the VMM; the first
// such call calibrates and publishes the page, so guests that never read a clock pay nothing.
//
//go:embed vdso/vdso.so
var vdsoImage []byte

// vvar mirrors struct vvar in vdso/vdso.c.
type vvar struct {
	Seq, Mode uint32
	TSCBase   uint64
	MonoBase  int64
	RealBase  int64
	Mult      uint64
	Shift     uint32
	_         uint32
}

const (
	vvarSize  = 48
	vvarShift = 32
	// clockRefresh is how old a calibration may get before Run takes a new one: the TSC's
	// nominal rate and NTP's slewing of CLOCK_REALTIME drift apart by parts per million.
	clockRefresh = int64(1e9)
)

// writeVDSO installs the vDSO image and an empty clock page and returns AT_SYSINFO_EHDR.
func writeVDSO(m *memory) uint64 {
	if err := checkVDSOImage(vdsoImage); err != nil {
		return 0 // programs then make real clock system calls; checked by the tests
	}
	copy(m.sys(vdsoAddr, vdsoSize), vdsoImage)
	clear(m.sys(vvarAddr, vvarSize))
	return vdsoAddr
}

// checkVDSOImage verifies the image can be used where it is copied: one PT_LOAD at offset 0 and
// address 0 that fits the vDSO's pages.
func checkVDSOImage(img []byte) error {
	le := binary.LittleEndian
	if len(img) > vdsoSize || len(img) < 64 || string(img[:4]) != "\x7fELF" {
		return fmt.Errorf("kvm: vDSO image of %d bytes is not an ELF of at most %d bytes", len(img), vdsoSize)
	}
	phoff, phnum := le.Uint64(img[32:]), int(le.Uint16(img[56:]))
	loads := 0
	for i := 0; i < phnum; i++ {
		h := img[phoff+uint64(i)*56:]
		if le.Uint32(h) == ptLoad {
			loads++
			if le.Uint64(h[8:]) != 0 || le.Uint64(h[16:]) != 0 || le.Uint64(h[40:]) > vdsoSize {
				return fmt.Errorf("kvm: vDSO PT_LOAD must start at offset 0, address 0")
			}
		}
	}
	if loads != 1 {
		return fmt.Errorf("kvm: vDSO has %d PT_LOAD segments, want 1", loads)
	}
	return nil
}

// calibration pairs one guest TSC reading with the host's clocks.
type calibration struct {
	valid              bool
	tsc, mult          uint64
	hostMono, hostReal int64
}

// calibrate reads the guest's TSC through the vCPU and the host's clocks at (nearly) the same
// moment.
func (c *clockState) calibrate(cpu cpuControl) error {
	tsc, khz, err := cpu.readTSC()
	if err != nil {
		return err
	}
	if khz == 0 {
		return fmt.Errorf("kvm: TSC frequency unknown")
	}
	c.cal = calibration{
		valid: true, tsc: tsc, mult: (uint64(1e6) << vvarShift) / khz,
		hostMono: hostClock(unix.CLOCK_MONOTONIC), hostReal: hostClock(unix.CLOCK_REALTIME),
	}
	return nil
}

// publishClock writes the clock page from the current calibration, taking a new one when there
// is none or it is older than clockRefresh (only when refresh is set: from a system call, any
// calibration serves). Failure leaves mode 0: the guest keeps making clock system calls.
func (k *kernel) publishClock(refresh bool) {
	c := &k.clock
	now := hostClock(unix.CLOCK_MONOTONIC)
	if !c.cal.valid || (refresh && now-c.cal.hostMono > clockRefresh) {
		if err := c.calibrate(k.cpu); err != nil {
			return
		}
	}
	page := k.mem.sys(vvarAddr, vvarSize)
	le := binary.LittleEndian
	le.PutUint32(page[0:], 0)
	le.PutUint32(page[4:], 1)
	le.PutUint64(page[8:], c.cal.tsc)
	le.PutUint64(page[16:], uint64(c.cal.hostMono+c.MonoOffset))
	le.PutUint64(page[24:], uint64(c.cal.hostReal))
	le.PutUint64(page[32:], c.cal.mult)
	le.PutUint32(page[40:], vvarShift)
}

// clockPublished reports whether the guest's clock page is live.
func (k *kernel) clockPublished() bool {
	return binary.LittleEndian.Uint32(k.mem.b[vvarAddr+4:]) == 1
}

// readTSC reads the guest's TSC and its frequency.
func (v *vcpu) readTSC() (tsc, khz uint64, err error) {
	m := msrs{N: 1}
	m.Entries[0].Index = msrTSC
	if n, err := ioctl(v.fd, kvmGetMSRs, uintptrOf(&m)); err != nil || n != 1 {
		return 0, 0, fmt.Errorf("%w: KVM_GET_MSRS(TSC): %v", ErrVMM, err)
	}
	k, err := ioctl(v.fd, kvmGetTSCKHz, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: KVM_GET_TSC_KHZ: %v", ErrVMM, err)
	}
	return m.Entries[0].Data, uint64(k), nil
}
