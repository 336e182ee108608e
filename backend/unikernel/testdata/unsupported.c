/* unsupported: acks on fd 3, then on its first activation forks, which needs a real kernel: a
 * unikernel guest stops there and the activation must move to the container driver. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        pid_t pid = fork();
        fprintf(out, "{\"forked\":%d}\n", (int)pid);
        fflush(out);
    }
    return 0;
}
