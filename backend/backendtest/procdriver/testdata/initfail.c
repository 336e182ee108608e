/* initfail: fails while loading: writes a reason to stderr and exits before acknowledging on
 * fd 3. Expected: init failure (the runtime went away before answering). */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "initfail: cannot load the action\n");
    return 1;
}
