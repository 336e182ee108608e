/* timedwait: runs each argument as a timed wait nothing can end and checks on CLOCK_MONOTONIC
 * that it lasted at least as long as asked. Steps: "futex:MS" (FUTEX_WAIT with a relative
 * timeout on a word nobody changes: ETIMEDOUT expected), "futexabs:MS" (FUTEX_WAIT_BITSET with
 * an absolute CLOCK_MONOTONIC time), "poll:MS" (poll for input on one end of a socketpair
 * nobody writes: 0 expected), "ppoll:MS" (ppoll on it). Before each step it prints
 * "start KIND MS", after it "waited KIND MS ret=R elapsed=NS ok=0|1". Exits with the number of
 * steps that ended early or returned something else. */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long sc(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r < 0 ? -errno : r;
}

int main(int argc, char **argv) {
    int bad = 0, sv[2];
    static unsigned int word = 7;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 100;
    for (int i = 1; i < argc; i++) {
        char kind[16];
        long ms;
        if (sscanf(argv[i], "%15[a-z]:%ld", kind, &ms) != 2) return 101;
        printf("start %s %ld\n", kind, ms);
        fflush(stdout);
        long long ns = ms * 1000000LL, t0 = mono();
        struct timespec rel = {ns / 1000000000, ns % 1000000000}, at;
        struct pollfd p = {.fd = sv[0], .events = POLLIN};
        long r, want;
        if (strcmp(kind, "futex") == 0) {
            r = sc(SYS_futex, (long)&word, FUTEX_WAIT_PRIVATE, 7, (long)&rel, 0, 0);
            want = -ETIMEDOUT;
        } else if (strcmp(kind, "futexabs") == 0) {
            clock_gettime(CLOCK_MONOTONIC, &at);
            at.tv_sec += rel.tv_sec, at.tv_nsec += rel.tv_nsec;
            if (at.tv_nsec >= 1000000000) at.tv_sec++, at.tv_nsec -= 1000000000;
            r = sc(SYS_futex, (long)&word, FUTEX_WAIT_BITSET_PRIVATE, 7, (long)&at, 0, FUTEX_BITSET_MATCH_ANY);
            want = -ETIMEDOUT;
        } else if (strcmp(kind, "poll") == 0) {
            r = sc(SYS_poll, (long)&p, 1, ms, 0, 0, 0);
            want = 0;
        } else if (strcmp(kind, "ppoll") == 0) {
            r = sc(SYS_ppoll, (long)&p, 1, (long)&rel, 0, 8, 0);
            want = 0;
        } else {
            return 102;
        }
        long long el = mono() - t0;
        int ok = r == want && el >= ns && p.revents == 0;
        bad += !ok;
        printf("waited %s %ld ret=%ld elapsed=%lld ok=%d\n", kind, ms, r, el, ok);
        fflush(stdout);
    }
    return bad;
}
