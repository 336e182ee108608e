/* wild: reads an address inside guest memory that was never mapped (96 MiB). */
int main(void) {
    volatile char *p = (volatile char *)0x6000000;
    return *p;
}
