/* crash: acks on fd 3, then dereferences a null pointer on its first activation. */
#include <stdio.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        volatile int *p = NULL;
        fprintf(out, "{\"value\":%d}\n", *p);
        fflush(out);
    }
    return 0;
}
