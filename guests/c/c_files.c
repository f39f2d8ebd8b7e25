/* File system calls through wasi-libc under a preopen DIR (argv[1]): stdio files, mkdir,
 * rename, stat, a sorted directory listing, unlink, rmdir, and paths that leave the
 * sandbox ("../outside" after chdir(DIR), DIR/../outside, /etc/passwd, then every further
 * argument). Prints one line per step; exits 1 at the first step that fails unexpectedly.
 * Leaves DIR/kept.txt ("kept\nmore\n") behind and nothing else it created. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir;

static const char *at(const char *name) {
    static char buf[4][4096];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof buf[0], "%s/%s", dir, name);
    return out;
}

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAILED %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static void write_file(const char *name, const char *mode, const char *text) {
    FILE *f = fopen(at(name), mode);
    check(f != NULL, "fopen for writing");
    check(fwrite(text, 1, strlen(text), f) == strlen(text), "fwrite");
    check(fclose(f) == 0, "fclose");
}

static void print_file(const char *name) {
    char text[256];
    FILE *f = fopen(at(name), "r");
    check(f != NULL, "fopen for reading");
    size_t n = fread(text, 1, sizeof text - 1, f);
    check(!ferror(f), "fread");
    fclose(f);
    text[n] = 0;
    printf("read %s: %zu bytes: ", name, n);
    for (size_t i = 0; i < n; i++)
        fputs(text[i] == '\n' ? "\\n" : (char[]){text[i], 0}, stdout);
    printf("\n");
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *name) {
    char *names[64];
    int count = 0;
    DIR *d = opendir(at(name));
    check(d != NULL, "opendir");
    struct dirent *entry;
    errno = 0;
    while ((entry = readdir(d)) != NULL && count < 64)
        names[count++] = strdup(entry->d_name);
    check(errno == 0, "readdir");
    closedir(d);
    qsort(names, count, sizeof names[0], by_name);
    printf("list %s:", name);
    for (int i = 0; i < count; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

static void try_open(const char *path) {
    errno = 0;
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        printf("open %s: OPENED (outside the sandbox)\n", path);
        close(fd);
    } else {
        printf("open %s: refused: errno %d (%s)\n", path, errno, strerror(errno));
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: c_files DIR [PATH_TO_REFUSE...]\n");
        return 2;
    }
    dir = argv[1];
    struct stat st;

    write_file("a.txt", "w", "hello file\n");
    print_file("a.txt");
    errno = 0;
    check(fopen(at("missing.txt"), "r") == NULL && errno == ENOENT, "fopen of a missing file");
    printf("fopen missing.txt: %s\n", strerror(errno));

    check(mkdir(at("sub"), 0755) == 0, "mkdir sub");
    check(mkdir(at("sub"), 0755) != 0 && errno == EEXIST, "mkdir sub again");
    printf("mkdir sub again: %s\n", strerror(errno));
    check(rename(at("a.txt"), at("sub/b.txt")) == 0, "rename a.txt to sub/b.txt");
    check(stat(at("a.txt"), &st) != 0 && errno == ENOENT, "a.txt is gone");
    check(stat(at("sub/b.txt"), &st) == 0, "stat sub/b.txt");
    printf("stat sub/b.txt: size %lld, %s\n", (long long)st.st_size,
           S_ISREG(st.st_mode) ? "regular file" : "not a regular file");
    check(stat(at("sub"), &st) == 0 && S_ISDIR(st.st_mode), "stat sub");

    write_file("kept.txt", "w", "kept\n");
    write_file("kept.txt", "a", "more\n");
    print_file("kept.txt");

    list(".");
    list("sub");

    check(rmdir(at("sub")) != 0, "rmdir of a non-empty directory");
    printf("rmdir sub (not empty): %s\n", strerror(errno));
    check(unlink(at("sub/b.txt")) == 0, "unlink sub/b.txt");
    check(rmdir(at("sub")) == 0, "rmdir sub");
    check(stat(at("sub"), &st) != 0 && errno == ENOENT, "sub is gone");
    list(".");

    check(chdir(dir) == 0, "chdir");
    try_open("../outside");
    try_open(at("../outside"));
    try_open("/etc/passwd");
    for (int i = 2; i < argc; i++)
        try_open(argv[i]);
    printf("done\n");
    return 0;
}
