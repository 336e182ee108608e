/* fault: writes a line, then dereferences a null pointer. */
#include <stdio.h>
int main(void) {
    puts("before fault");
    fflush(stdout);
    volatile int *p = 0;
    *p = 1;
    return 0;
}
