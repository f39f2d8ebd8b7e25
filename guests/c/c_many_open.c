/* Opens DIR/many.txt N times (argv[2]) keeping every descriptor open, prints "opened N",
 * then keeps opening until the first failure and prints its errno. Exits 0 if the first N
 * opens worked, 3 otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: c_many_open DIR N\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/many.txt", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "m", 1) != 1 || close(fd) != 0) {
        printf("create %s: %s\n", path, strerror(errno));
        return 2;
    }
    long n = atol(argv[2]);
    int last = -1;
    for (long i = 0; i < n; i++) {
        last = open(path, O_RDONLY);
        if (last < 0) {
            printf("stopped after %ld: errno %d (%s)\n", i, errno, strerror(errno));
            return 3;
        }
    }
    char byte = 0;
    if (n > 0 && (read(last, &byte, 1) != 1 || byte != 'm')) {
        printf("the last descriptor does not read back\n");
        return 3;
    }
    printf("opened %ld\n", n);
    fflush(stdout);
    for (long more = 0;; more++) {
        if (open(path, O_RDONLY) < 0) {
            printf("then failed after %ld more: errno %d (%s)\n", more, errno, strerror(errno));
            return 0;
        }
    }
}
