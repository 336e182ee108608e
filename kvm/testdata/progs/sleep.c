/* sleep: runs each argument as a sleep step and checks on CLOCK_MONOTONIC that it lasted at least
 * as long as asked. Steps: "rel:MS" (the nanosleep system call), "abs:MS" (clock_nanosleep on
 * CLOCK_MONOTONIC with TIMER_ABSTIME), "libc:MS" (glibc's nanosleep: a relative clock_nanosleep
 * on CLOCK_REALTIME), "absreal:MS" (TIMER_ABSTIME on CLOCK_REALTIME). Before each step it prints
 * "start KIND MS", after it "slept KIND MS elapsed=NS ok=0|1". "bad" passes hostile arguments
 * and prints "name=result" (-errno on failure). Exits with the number of short sleeps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static long long mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long sc(long n, long a, long b, long c, long d) {
    long r = syscall(n, a, b, c, d);
    return r < 0 ? -errno : r;
}

static void show(const char *name, long r) { printf("%s=%ld\n", name, r); }

static void bad(void) {
    struct timespec ts = {0, 1000000000};
    show("nanosleep_null", sc(SYS_nanosleep, 0, 0, 0, 0));
    show("nanosleep_vmm", sc(SYS_nanosleep, 0x1000, 0, 0, 0)); /* the VMM's pages */
    show("nanosleep_wrap", sc(SYS_nanosleep, -8L, 0, 0, 0));
    show("nanosleep_nsec_1e9", sc(SYS_nanosleep, (long)&ts, 0, 0, 0));
    ts.tv_nsec = -1;
    show("nanosleep_nsec_neg", sc(SYS_nanosleep, (long)&ts, 0, 0, 0));
    ts.tv_sec = -1, ts.tv_nsec = 0;
    show("nanosleep_sec_neg", sc(SYS_nanosleep, (long)&ts, 0, 0, 0));
    ts.tv_sec = 0, ts.tv_nsec = 1;
    show("nanosleep_bad_rem", sc(SYS_nanosleep, (long)&ts, 0x1000, 0, 0)); /* rem is unused */
    show("clock_bad_clock", sc(SYS_clock_nanosleep, 99, 0, (long)&ts, 0));
    show("clock_thread_cpu", sc(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, (long)&ts, 0));
    show("clock_process_cpu", sc(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, 0, (long)&ts, 0));
    show("clock_coarse", sc(SYS_clock_nanosleep, CLOCK_MONOTONIC_COARSE, 0, (long)&ts, 0));
    show("clock_null", sc(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, 0, 0));
    show("clock_abs_null", sc(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, 0, 0));
    ts.tv_nsec = 1000000000;
    show("clock_abs_nsec_1e9", sc(SYS_clock_nanosleep, CLOCK_REALTIME, TIMER_ABSTIME, (long)&ts, 0));
    ts.tv_sec = 0, ts.tv_nsec = 0;
    show("clock_abs_past", sc(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, (long)&ts, 0));
    ts.tv_sec = 1; /* 1970 */
    show("clock_abs_past_real", sc(SYS_clock_nanosleep, CLOCK_REALTIME, TIMER_ABSTIME, (long)&ts, 0x1000));
    show("clock_zero", sc(SYS_clock_nanosleep, CLOCK_BOOTTIME, 0, (long)&(struct timespec){0, 0}, 0));
}

int main(int argc, char **argv) {
    int short_sleeps = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "bad") == 0) {
            bad();
            continue;
        }
        char kind[16];
        long ms;
        if (sscanf(argv[i], "%15[a-z]:%ld", kind, &ms) != 2) return 100;
        printf("start %s %ld\n", kind, ms);
        fflush(stdout);
        long long ns = ms * 1000000LL, t0 = mono();
        struct timespec req = {ns / 1000000000, ns % 1000000000}, at;
        long r;
        if (strcmp(kind, "rel") == 0) {
            r = sc(SYS_nanosleep, (long)&req, 0, 0, 0);
        } else if (strcmp(kind, "libc") == 0) {
            r = nanosleep(&req, 0) ? -errno : 0;
        } else {
            clockid_t c = strcmp(kind, "abs") == 0 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
            clock_gettime(c, &at);
            at.tv_sec += req.tv_sec, at.tv_nsec += req.tv_nsec;
            if (at.tv_nsec >= 1000000000) at.tv_sec++, at.tv_nsec -= 1000000000;
            r = -clock_nanosleep(c, TIMER_ABSTIME, &at, 0);
        }
        long long el = mono() - t0;
        int ok = r == 0 && el >= ns;
        short_sleeps += !ok;
        printf("slept %s %ld elapsed=%lld ok=%d\n", kind, ms, el, ok);
        fflush(stdout);
    }
    return short_sleeps;
}
