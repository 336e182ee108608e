/* skeleton: the dockerskeleton convention: the parameters arrive as JSON in argv[1], logs go to
 * stdout and stderr, and the last line of stdout is the result. It never touches fd 3. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *params = argc > 1 ? argv[1] : "{}";
    printf("skeleton: got %zu bytes of parameters\n", strlen(params));
    fprintf(stderr, "skeleton: a line on stderr\n");
    printf("{\"params\":%s}\n", params);
    return 0;
}
