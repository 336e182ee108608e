#!/usr/bin/env bash
# Builds vdso.so, the guest vDSO the kvm package embeds, from vdso.c. Run it after editing
# vdso.c; TestVDSOImageMatchesSource checks that the committed image is this script's output.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-vdso.so}
gcc -O2 -fPIC -shared -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
  -Wl,-T,vdso.lds -Wl,--version-script=vdso.ver -Wl,-soname=linux-vdso.so.1 -Wl,--hash-style=both \
  -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -o "$out" vdso.c
stub=${2:-stub_pvm.bin}
gcc -c -o "$stub.o" stub_pvm.S
objcopy -O binary -j .text "$stub.o" "$stub"
rm -f "$stub.o"
