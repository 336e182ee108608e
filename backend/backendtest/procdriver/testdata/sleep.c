/* sleep: acks on fd 3, then for each stdin line sleeps the "ms" parameter milliseconds and
 * answers {"slept": ms}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        long ms = 0;
        char *p = strstr(line, "\"ms\":");
        if (p) ms = strtol(p + 5, NULL, 10);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {}
        fprintf(out, "{\"slept\":%ld}\n", ms);
        fflush(out);
    }
    return 0;
}
