package main

// The unikernel driver (KVM guests restored from snapshots) registers itself; its probe leaves it
// out with one log line on hosts without a usable /dev/kvm. Put it before the container driver
// for the kinds it runs, e.g. SNAPINVOKER_DRIVERS="blackbox=unikernel,container".
import _ "github.com/snapinvoker/snapinvoker/backend/unikernel"
