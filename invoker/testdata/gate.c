/* gate: a static actionloop executable that holds every activation until the file named by
 * its "gate" parameter exists, then answers {"passed":true}. Tests use it to keep activations
 * in flight for as long as they need, without timing. Build: gcc -static -O2 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    static char line[1 << 20];
    char path[4096];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        char *p = strstr(line, "\"gate\":\"");
        path[0] = 0;
        if (p) {
            p += 8;
            size_t n = 0;
            while (p[n] && p[n] != '"' && n < sizeof path - 1) { path[n] = p[n]; n++; }
            path[n] = 0;
        }
        struct timespec ts = {0, 10 * 1000000L};
        while (path[0] && access(path, F_OK) != 0) nanosleep(&ts, NULL);
        fputs("{\"passed\":true}\n", out);
        fflush(out);
    }
    return 0;
}
