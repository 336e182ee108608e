/* initfail: fails while loading: writes a reason to stderr and exits with status 1 before it
 * acknowledges on fd 3. Expected: /init fails (the executable exited during initialization). */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "initfail: cannot load the action\n");
    return 1;
}
