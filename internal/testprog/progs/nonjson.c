/* nonjson: acks on fd 3, then answers every activation with a line that is not JSON. */
#include <stdio.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        fputs("this is not json\n", out);
        fflush(out);
    }
    return 0;
}
