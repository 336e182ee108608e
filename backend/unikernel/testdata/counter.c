/* counter: acks on fd 3, then answers {"count": n} where n counts the activations this process
 * has served. A driver that starts every activation from the function snapshot always gets 1. */
#include <stdio.h>

static int count; /* state an activation leaves behind */

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        count++;
        fprintf(out, "{\"count\":%d}\n", count);
        fflush(out);
    }
    return 0;
}
