/* socket: acks on fd 3, then needs a socket for every activation and gives up (exit 1) without
 * answering when it cannot have one: the guest's library OS refuses socket with ENOSYS, so the
 * activation must move to the next driver. */
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            perror("socket");
            return 1;
        }
        fprintf(out, "{\"socket\":%d}\n", fd);
        fflush(out);
    }
    return 0;
}
