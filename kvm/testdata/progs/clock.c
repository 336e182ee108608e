/* clock: reads the clocks many times through libc (so through the vDSO when there is one),
 * checks CLOCK_MONOTONIC never goes backwards, and prints "real=<s> mono_ok=<0|1> tod=<s>
 * time=<s> cpu=<n>". */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
int main(void) {
    struct timespec prev = {0}, ts, rt;
    int ok = 1;
    for (int i = 0; i < 100000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (ts.tv_sec < prev.tv_sec || (ts.tv_sec == prev.tv_sec && ts.tv_nsec < prev.tv_nsec)) ok = 0;
        prev = ts;
    }
    clock_gettime(CLOCK_REALTIME, &rt);
    struct timeval tv;
    gettimeofday(&tv, 0);
    printf("real=%ld mono_ok=%d tod=%ld time=%ld cpu=%d\n", (long)rt.tv_sec, ok, (long)tv.tv_sec, (long)time(0), sched_getcpu());
    return 0;
}
