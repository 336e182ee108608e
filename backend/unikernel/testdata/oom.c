/* oom: acks on fd 3, then on each activation allocates and touches memory until malloc fails,
 * and aborts there (as a runtime out of memory does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) abort();
            memset(p, 1, 1 << 20);
        }
    }
    return 0;
}
