#!/usr/bin/env bash
# Builds the guest code the kvm package embeds: vdso.so from vdso.c and stub_pvm.bin (the kvm-pvm
# system-call stub) from stub_pvm.S. Run it after editing either; TestVDSOAndStubImagesMatchSource
# checks that the committed images are this script's output. Usage: build.sh [VDSO_OUT [STUB_OUT]]
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-vdso.so}
gcc -O2 -fPIC -shared -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
  -Wl,-T,vdso.lds -Wl,--version-script=vdso.ver -Wl,-soname=linux-vdso.so.1 -Wl,--hash-style=both \
  -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -o "$out" vdso.c
stub=$(realpath -m "${2:-stub_pvm.bin}")
gcc -c -o "$stub.o" stub_pvm.S
objcopy -O binary -j .text "$stub.o" "$stub"
rm -f "$stub.o"
