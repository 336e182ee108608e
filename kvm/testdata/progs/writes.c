/* writes: 1000 small write(2)s alternating between stdout and fd 3 (more than the output ring
 * holds), one 3000-byte write, then close(1) and a write to it, whose errno goes to stderr. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char buf[64];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(buf, sizeof buf, "out %d\n", i);
        write(1, buf, n);
        n = snprintf(buf, sizeof buf, "res %d\n", i);
        write(3, buf, n);
    }
    static char big[3000];
    memset(big, 'b', sizeof big);
    write(1, big, sizeof big);
    close(1);
    long r = write(1, "x", 1);
    int n = snprintf(buf, sizeof buf, "after close: %ld %d\n", r, errno);
    write(2, buf, n);
    return 0;
}
