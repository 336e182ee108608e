/* logflood: acks on fd 3, then for each stdin line prints the "lines" parameter lines of 100
 * bytes (99 'y' and a newline) to stdout and answers {"lines": n}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    static char line[1 << 20];
    char y[100];
    memset(y, 'y', 99);
    y[99] = 0;
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        long n = 10;
        char *p = strstr(line, "\"lines\":");
        if (p) n = strtol(p + 8, NULL, 10);
        for (long i = 0; i < n; i++) puts(y);
        fflush(stdout);
        fprintf(out, "{\"lines\":%ld}\n", n);
        fflush(out);
    }
    return 0;
}
