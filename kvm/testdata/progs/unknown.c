/* unknown: calls system calls the library OS does not serve and prints their results, then
 * exits 0; with argument "fork" it calls fork, which the VMM refuses as unsupported. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        pid_t p = fork();
        printf("fork returned %d\n", (int)p);
        return 1;
    }
    long r = syscall(SYS_socket, 2, 1, 0);
    printf("socket=%ld errno=%d\n", r, errno);
    r = syscall(999);
    printf("999=%ld errno=%d\n", r, errno);
    r = syscall(SYS_socket, 2, 1, 0);
    return 0;
}
