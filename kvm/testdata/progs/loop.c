/* loop: "loop sys N" makes N getppid system calls; "loop clock N" reads CLOCK_MONOTONIC N times
 * (through the vDSO when there is one). Exits 0. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    struct timespec ts;
    if (strcmp(argv[1], "sys") == 0)
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
    else
        for (long i = 0; i < n; i++) clock_gettime(CLOCK_MONOTONIC, &ts);
    return 0;
}
