/* The guest's vDSO: clock_gettime, gettimeofday, time and getcpu without leaving the guest.
 *
 * The VMM keeps a clock page (struct vvar, at VVAR_ADDR, user read-only) with a TSC reading and
 * the guest's CLOCK_MONOTONIC and CLOCK_REALTIME at that reading, plus the TSC's scale. The guest
 * reads the TSC (rdtsc runs natively at CPL3) and extrapolates. Any clock the page does not cover
 * falls back to the real system call, which the VMM serves.
 *
 * Built by build.sh into vdso.so, which the Go package embeds. Keep struct vvar in step with
 * vdso.go. */
#include <stdint.h>

#define VVAR_ADDR 0xB000UL

struct vvar {
    uint32_t seq;      /* odd while the VMM rewrites the page (never while the guest runs) */
    uint32_t mode;     /* 1: the fields below are valid; 0: use the system call */
    uint64_t tsc_base; /* TSC value the bases were taken at */
    int64_t mono_base; /* guest CLOCK_MONOTONIC at tsc_base, ns */
    int64_t real_base; /* CLOCK_REALTIME at tsc_base, ns */
    uint64_t mult;     /* ns = (tsc - tsc_base) * mult >> shift */
    uint32_t shift;
    uint32_t pad;
};

struct kts { int64_t sec, nsec; };
struct ktv { int64_t sec, usec; };

static inline long sys2(long nr, long a, long b) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* now_ns returns 0 and the time on clock clk, or -1 when the page cannot answer. */
static int now_ns(long clk, int64_t *ns) {
    const volatile struct vvar *v = (const volatile struct vvar *)VVAR_ADDR;
    uint32_t seq;
    int64_t base, off;
    do {
        seq = v->seq;
        if (v->mode != 1 || (seq & 1)) return -1;
        switch (clk) {
        case 0: case 5: case 11: base = v->real_base; break;          /* REALTIME, _COARSE, TAI */
        case 1: case 4: case 6: case 7: base = v->mono_base; break;   /* MONOTONIC, _RAW, _COARSE, BOOTTIME */
        default: return -1;
        }
        uint64_t d = rdtsc() - v->tsc_base;
        if ((int64_t)d < 0) d = 0;
        off = (int64_t)(((unsigned __int128)d * v->mult) >> v->shift);
    } while (seq != v->seq);
    *ns = base + off;
    return 0;
}

int __vdso_clock_gettime(long clk, struct kts *ts) {
    int64_t ns;
    if (now_ns(clk, &ns)) return (int)sys2(228, clk, (long)ts);
    ts->sec = ns / 1000000000;
    ts->nsec = ns % 1000000000;
    return 0;
}

int __vdso_gettimeofday(struct ktv *tv, void *tz) {
    int64_t ns;
    if (now_ns(0, &ns)) return (int)sys2(96, (long)tv, (long)tz);
    if (tv) {
        tv->sec = ns / 1000000000;
        tv->usec = ns % 1000000000 / 1000;
    }
    if (tz) {
        ((int32_t *)tz)[0] = 0;
        ((int32_t *)tz)[1] = 0;
    }
    return 0;
}

long __vdso_time(long *t) {
    int64_t ns;
    if (now_ns(0, &ns)) return sys2(201, (long)t, 0);
    long s = ns / 1000000000;
    if (t) *t = s;
    return s;
}

int __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused) {
    (void)unused;
    if (cpu) *cpu = 0;
    if (node) *node = 0;
    return 0;
}

int __vdso_clock_getres(long clk, struct kts *res) { return (int)sys2(229, clk, (long)res); }

int clock_gettime(long, struct kts *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct ktv *, void *) __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
int getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
int clock_getres(long, struct kts *) __attribute__((weak, alias("__vdso_clock_getres")));
