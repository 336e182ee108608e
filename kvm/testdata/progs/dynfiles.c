/* dynfiles: opens a file of its tree and one in /tmp, reads part of the first, writes the
 * second, then blocks reading stdin (a snapshot can be taken there); after each stdin line it
 * prints the rest of the first file from where it stopped and the /tmp file's contents. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
	int f = open("/data/msg.txt", O_RDONLY);
	int t = open("/tmp/state", O_RDWR | O_CREAT, 0600);
	char head[5], line[64], buf[128];
	if (f < 0 || t < 0 || read(f, head, 5) != 5 || write(t, "before", 6) != 6)
		return 1;
	while (read(0, line, sizeof line) > 0) {
		off_t pos = lseek(f, 0, SEEK_CUR);
		ssize_t n = read(f, buf, sizeof buf - 1);
		buf[n < 0 ? 0 : n] = 0;
		char tb[32] = {0};
		pread(t, tb, sizeof tb - 1, 0);
		printf("at %ld: %s|tmp=%s\n", (long)pos, buf, tb);
		fflush(stdout);
		lseek(f, pos, SEEK_SET);
		pwrite(t, "after!", 6, 0);
	}
	return 0;
}
