/* badptr: passes hostile pointers and lengths to system calls and reports each result on stdout
 * as "name=-errno"; then exits 0. */
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <errno.h>
static void show(const char *name, long r) { printf("%s=%ld\n", name, r < 0 ? r : r); fflush(stdout); }
static long sc(long n, long a, long b, long c, long d) { long r = syscall(n, a, b, c, d); return r < 0 ? -errno : r; }
int main(void) {
    show("write_null", sc(SYS_write, 1, 0, 10, 0));
    show("write_kernel", sc(SYS_write, 1, 0xA000, 16, 0));          /* the VMM's stub page */
    show("write_huge", sc(SYS_write, 2, 0x400000, -1L, 0));     /* capped at 1 MiB */
    show("write_wrap", sc(SYS_write, 1, -16L, 32, 0));
    show("read_gdt", sc(SYS_read, 0, 0x8000, 64, 0));                /* must not overwrite the GDT */
    show("uname_oob", sc(SYS_uname, 0x7fffffffffffL, 0, 0, 0));
    show("clock_bad", sc(SYS_clock_gettime, 0, 0x1000, 0, 0));
    show("writev_bad", sc(SYS_writev, 1, 0x10, 1, 0));
    show("getrandom_oob", sc(SYS_getrandom, 0xfffffffff000L, 4096, 0, 0));
    show("readlink_bad", sc(SYS_readlink, 0x9000, 0x400000, 100, 0));
    show("munmap_kernel", sc(SYS_munmap, 0x1000, 4096, 0, 0));
    show("mmap_fixed_kernel", sc(SYS_mmap, 0x1000, 4096, 3, 0x32));
    puts("still alive");
    return 0;
}
