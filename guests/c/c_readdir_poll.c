/* Preview1 calls made directly (wasi/api.h), for the corner cases libc hides:
 *   c_readdir_poll readdir DIR BUFLEN  lists DIR with __wasi_fd_readdir into a BUFLEN-byte
 *       buffer, resuming from the cookie (d_next) of the last complete entry whenever an
 *       entry was cut; prints the sorted names, then a read from a cookie past the end.
 *   c_readdir_poll poll  runs poll_oneoff with clocks (relative, absolute in the past, the
 *       earliest of two), stdout's fd_write readiness, and no subscriptions at all. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

static int compare(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list(const char *dir, size_t buflen) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    static uint8_t buf[65536];
    if (buflen > sizeof buf) buflen = sizeof buf;
    char *names[256];
    int count = 0, calls = 0;
    __wasi_dircookie_t cookie = 0;
    for (;;) {
        __wasi_size_t used = 0;
        __wasi_errno_t err = __wasi_fd_readdir(fd, buf, buflen, cookie, &used);
        calls++;
        if (err != 0) {
            printf("fd_readdir: errno %d\n", err);
            return 1;
        }
        size_t pos = 0;
        int complete = 0;
        while (pos + sizeof(__wasi_dirent_t) <= used) {
            __wasi_dirent_t entry;
            memcpy(&entry, buf + pos, sizeof entry);
            if (pos + sizeof entry + entry.d_namlen > used) break; /* cut: ask again */
            if (count == 256) {
                printf("too many entries\n");
                return 1;
            }
            names[count] = strndup((const char *)buf + pos + sizeof entry, entry.d_namlen);
            count++;
            complete++;
            cookie = entry.d_next;
            pos += sizeof entry + entry.d_namlen;
        }
        if (used < buflen) break; /* the buffer was not filled: the end */
        if (complete == 0) {
            printf("buffer of %zu bytes holds no whole entry\n", buflen);
            return 1;
        }
        if (calls > 1000) {
            printf("no progress\n");
            return 1;
        }
    }
    qsort(names, count, sizeof names[0], compare);
    printf("entries:");
    for (int i = 0; i < count; i++) printf(" %s", names[i]);
    printf("\nseveral calls: %s\n", calls > 1 ? "yes" : "no");
    __wasi_size_t used = 12345;
    __wasi_errno_t err = __wasi_fd_readdir(fd, buf, buflen, 1000000, &used);
    printf("past the end: errno %d, %u bytes\n", err, (unsigned)used);
    return 0;
}

static __wasi_timestamp_t now(void) {
    __wasi_timestamp_t t = 0;
    (void)__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t);
    return t;
}

static __wasi_subscription_t clock_sub(__wasi_userdata_t userdata, __wasi_timestamp_t timeout,
                                       __wasi_subclockflags_t flags) {
    __wasi_subscription_t sub;
    memset(&sub, 0, sizeof sub);
    sub.userdata = userdata;
    sub.u.tag = __WASI_EVENTTYPE_CLOCK;
    sub.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    sub.u.u.clock.timeout = timeout;
    sub.u.u.clock.flags = flags;
    return sub;
}

static void report(const char *what, __wasi_subscription_t *subs, size_t n,
                   __wasi_timestamp_t at_least, __wasi_timestamp_t below) {
    __wasi_event_t events[4];
    __wasi_size_t got = 0;
    __wasi_timestamp_t start = now();
    __wasi_errno_t err = __wasi_poll_oneoff(subs, events, n, &got);
    __wasi_timestamp_t waited = now() - start;
    printf("%s: errno %d, %u events", what, err, (unsigned)got);
    for (unsigned i = 0; i < got; i++)
        printf(" [userdata %llu type %d error %d]", (unsigned long long)events[i].userdata,
               events[i].type, events[i].error);
    printf(", waited %s\n", waited >= at_least && waited < below ? "as expected" : "WRONG");
}

static int poll(void) {
    const __wasi_timestamp_t ms = 1000000;
    __wasi_subscription_t subs[2];
    subs[0] = clock_sub(7, 50 * ms, 0);
    report("relative 50 ms", subs, 1, 50 * ms, 5000 * ms);
    subs[0] = clock_sub(1, 10 * ms, 0);
    subs[1] = clock_sub(2, 5000 * ms, 0);
    report("10 ms and 5 s", subs, 2, 10 * ms, 4000 * ms);
    subs[0] = clock_sub(3, now() - 1000 * ms, __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME);
    report("absolute, in the past", subs, 1, 0, 1000 * ms);
    memset(&subs[0], 0, sizeof subs[0]);
    subs[0].userdata = 4;
    subs[0].u.tag = __WASI_EVENTTYPE_FD_WRITE;
    subs[0].u.u.fd_write.file_descriptor = 1;
    subs[1] = clock_sub(5, 5000 * ms, 0);
    report("stdout writable and 5 s", subs, 2, 0, 1000 * ms);
    report("no subscriptions", subs, 0, 0, 1000 * ms);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "readdir") == 0) return list(argv[2], atoi(argv[3]));
    if (argc == 2 && strcmp(argv[1], "poll") == 0) return poll();
    fprintf(stderr, "usage: c_readdir_poll readdir DIR BUFLEN | c_readdir_poll poll\n");
    return 2;
}
