package kvm

import "golang.org/x/sys/unix"

// sysFunc serves one system call. It returns the value for RAX (a negative errno, made with
// errno(), on failure) and may stop the guest by setting k.stop or k.blocked.
type sysFunc func(k *kernel, a *sysArgs) uint64

// sysArgs are a system call's six arguments in the x86-64 order (rdi, rsi, rdx, r10, r8, r9).
type sysArgs [6]uint64

type sysEntry struct {
	name string
	fn   sysFunc // nil: known by name only; answered ENOSYS (or stops, if in sysFatal)
}

// sysTable is the allow-list: a system call is served only if it has a function here. Areas
// live in their own files (sys_mem.go, sys_io.go, sys_time.go, sys_misc.go); adding a call is
// adding a line.
var sysTable = map[uint64]sysEntry{
	0:   {"read", onFile(sysRead, fileRead)},
	1:   {"write", onFile(sysWrite, fileWrite)},
	2:   {"open", sysOpenFS},
	3:   {"close", sysCloseFS},
	4:   {"stat", sysStatFS},
	5:   {"fstat", onFile(sysFstat, fileFstat)},
	6:   {"lstat", sysLstatFS},
	7:   {"poll", sysPoll},
	8:   {"lseek", onFile(sysLseek, fileLseek)},
	9:   {"mmap", sysMmapFS},
	10:  {"mprotect", sysMprotect},
	11:  {"munmap", sysMunmap},
	12:  {"brk", sysBrk},
	13:  {"rt_sigaction", sysRtSigaction},
	14:  {"rt_sigprocmask", sysRtSigprocmask},
	16:  {"ioctl", sysIoctlFS},
	17:  {"pread64", sysPread64FS},
	18:  {"pwrite64", sysPwrite64FS},
	19:  {"readv", onFile(sysReadv, fileReadv)},
	20:  {"writev", onFile(sysWritev, fileWritev)},
	21:  {"access", sysAccessFS},
	22:  {"pipe", nil},
	24:  {"sched_yield", sysZero},
	25:  {"mremap", sysMremap},
	28:  {"madvise", sysMadvise},
	32:  {"dup", sysDupFS},
	33:  {"dup2", sysDup2FS},
	35:  {"nanosleep", sysNanosleep},
	39:  {"getpid", sysGetpid},
	44:  {"sendto", sysSendto},
	45:  {"recvfrom", sysRecvfrom},
	48:  {"shutdown", sysShutdown},
	51:  {"getsockname", sysGetsockname},
	52:  {"getpeername", sysGetsockname},
	53:  {"socketpair", sysSocketpair},
	56:  {"clone", nil},
	57:  {"fork", nil},
	58:  {"vfork", nil},
	59:  {"execve", nil},
	60:  {"exit", sysExit},
	62:  {"kill", sysKill},
	63:  {"uname", sysUname},
	72:  {"fcntl", sysFcntlFS},
	77:  {"ftruncate", sysFtruncateFS},
	79:  {"getcwd", sysGetcwdFS},
	80:  {"chdir", sysChdirFS},
	81:  {"fchdir", sysFchdirFS},
	82:  {"rename", sysRenameFS},
	83:  {"mkdir", sysMkdirFS},
	84:  {"rmdir", sysRmdirFS},
	87:  {"unlink", sysUnlinkFS},
	89:  {"readlink", sysReadlinkFS},
	95:  {"umask", sysUmask},
	96:  {"gettimeofday", sysGettimeofday},
	97:  {"getrlimit", sysGetrlimit},
	99:  {"sysinfo", sysSysinfo},
	102: {"getuid", sysZero},
	104: {"getgid", sysZero},
	107: {"geteuid", sysZero},
	108: {"getegid", sysZero},
	110: {"getppid", sysZero},
	131: {"sigaltstack", sysSigaltstack},
	158: {"arch_prctl", sysArchPrctl},
	186: {"gettid", sysGetpid},
	200: {"tkill", sysTkill},
	201: {"time", sysTime},
	202: {"futex", sysFutex},
	204: {"sched_getaffinity", sysSchedGetaffinity},
	217: {"getdents64", sysGetdents64FS},
	218: {"set_tid_address", sysGetpid},
	228: {"clock_gettime", sysClockGettime},
	229: {"clock_getres", sysClockGetres},
	230: {"clock_nanosleep", sysClockNanosleep},
	231: {"exit_group", sysExit},
	234: {"tgkill", sysTgkill},
	257: {"openat", sysOpenatFS},
	258: {"mkdirat", sysMkdiratFS},
	262: {"newfstatat", sysNewfstatatFS},
	263: {"unlinkat", sysUnlinkatFS},
	264: {"renameat", sysRenameatFS},
	267: {"readlinkat", sysReadlinkatFS},
	271: {"ppoll", sysPpoll},
	269: {"faccessat", sysFaccessatFS},
	273: {"set_robust_list", sysZero},
	291: {"epoll_create1", nil}, // asyncio probes it at import and carries on without it
	292: {"dup3", sysDup3FS},
	302: {"prlimit64", sysPrlimit64},
	309: {"getcpu", sysGetcpu},
	316: {"renameat2", sysRenameat2FS},
	318: {"getrandom", sysGetrandom},
	322: {"execveat", nil},
	332: {"statx", sysStatxFS},
	334: {"rseq", nil},
	435: {"clone3", nil},
	439: {"faccessat2", sysFaccessat2FS},
}

// sysFatal are the calls that mean "this program needs a real kernel": the guest stops with
// Unsupported instead of limping on after ENOSYS (the caller re-runs it elsewhere).
var sysFatal = map[uint64]bool{56: true, 57: true, 58: true, 59: true, 322: true, 435: true}

// SyscallName returns the Linux x86-64 name of system call nr, or "syscall_<nr>".
func SyscallName(nr uint64) string {
	if e, ok := sysTable[nr]; ok {
		return e.name
	}
	return "syscall_" + itoa(nr)
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// errno encodes a Linux error number as a system call return value.
func errno(e unix.Errno) uint64 { return uint64(-int64(e)) }

func sysZero(k *kernel, a *sysArgs) uint64 { return 0 }
