/* env: prints argv, envp and selected auxv entries one per line, then checks the stack pointer
 * alignment and that AT_RANDOM points at 16 readable bytes. */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("arg %d %s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    printf("pagesz %lu\n", getauxval(AT_PAGESZ));
    printf("phent %lu\n", getauxval(AT_PHENT));
    printf("entry_nonzero %d\n", getauxval(AT_ENTRY) != 0);
    printf("vdso_nonzero %d\n", getauxval(AT_SYSINFO_EHDR) != 0);
    printf("platform %s\n", (char *)getauxval(AT_PLATFORM));
    printf("execfn %s\n", (char *)getauxval(AT_EXECFN));
    unsigned char *r = (unsigned char *)getauxval(AT_RANDOM);
    int nz = 0;
    for (int i = 0; i < 16; i++) nz |= r[i];
    printf("random_nonzero %d\n", nz != 0);
    char exe[256] = {0};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    printf("exe %zd %s\n", n, exe);
    printf("pid %d ppid %d\n", getpid(), getppid());
    return 0;
}
