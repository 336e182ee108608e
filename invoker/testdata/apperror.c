/* apperror: a static actionloop executable whose every activation returns an application
 * error: {"error":{"statusCode":422,"message":"bad input"}}. Build: gcc -static -O2 */
#include <stdio.h>
#include <string.h>

int main(void) {
    static char line[1 << 20];
    FILE *out = fdopen(3, "w");
    if (!out) return 1;
    fputs("{\"ok\":true}\n", out);
    fflush(out);
    while (fgets(line, sizeof line, stdin)) {
        fprintf(stdout, "about to fail\n");
        fflush(stdout);
        fputs("{\"error\":{\"statusCode\":422,\"message\":\"bad input\"}}\n", out);
        fflush(out);
    }
    return 0;
}
