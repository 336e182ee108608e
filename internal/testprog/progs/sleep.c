/* sleep: acks on fd 3, then for each stdin line waits the "ms" parameter milliseconds of the
 * monotonic clock (in short naps, so a library OS that caps one nanosleep cannot shorten it) and
 * answers {"slept": ms}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

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
        long long end = now_ms() + ms;
        while (now_ms() < end) {
            struct timespec nap = {0, 50 * 1000000L};
            nanosleep(&nap, NULL);
        }
        fprintf(out, "{\"slept\":%ld}\n", ms);
        fflush(out);
    }
    return 0;
}
