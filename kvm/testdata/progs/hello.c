/* hello: writes to stdout and stderr and exits with status 7. */
#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello from %s with %d args\n", argv[0], argc);
    fprintf(stderr, "to stderr\n");
    return 7;
}
