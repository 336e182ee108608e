#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <math.h>
int main(int argc, char **argv) {
	volatile double x = 2.0;
	printf("hello from a dynamically linked guest, sqrt(2)=%.3f\n", sqrt(x));
	FILE *f = fopen("/data/msg.txt", "r");
	char buf[64] = {0};
	if (f) { fgets(buf, sizeof buf, f); fclose(f); }
	printf("file: %s\n", buf);
	printf("secret: %s\n", fopen("/etc/shadow", "r") ? "visible" : "hidden");
	return 0;
}
