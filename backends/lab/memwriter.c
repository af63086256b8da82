/*
 * memwriter: the lab's synthetic stateful workload.
 *
 * Holds --size bytes of pseudo-random data and rewrites one 8-byte word per 4 KiB page at
 * --rate bytes per second, walking the first --hot bytes round-robin, so that the number of
 * distinct pages dirtied over an interval T is min(rate * T, hot) / 4096: exactly what a
 * dirty-rate probe should measure. It keeps a counter of writes and an XOR fold of every
 * 64-bit word of its state, updated on each write; a TCP client on --port gets one JSON line:
 *   status  -> counter, checksum, ...
 *   verify  -> the same, plus "verify": "ok" when a full recomputation of the fold over the
 *              memory matches the running one (so a restore that lost or garbled a page shows).
 * Single-threaded and poll()-driven, so CRIU dumps one simple task.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ULL
#define WORDS_PER_PAGE (PAGE / 8)

static uint64_t parse_bytes(const char *s, const char *what) {
    char *end;
    double v = strtod(s, &end);
    uint64_t f = 1;
    if (*end == 'K' || *end == 'k') f = 1ULL << 10, end++;
    else if (*end == 'M' || *end == 'm') f = 1ULL << 20, end++;
    else if (*end == 'G' || *end == 'g') f = 1ULL << 30, end++;
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    if (strcmp(end, "/s") == 0) end += 2;
    if (*end || v < 0) {
        fprintf(stderr, "memwriter: %s: cannot read %s (e.g. 64MiB, 8MiB/s)\n", what, s);
        exit(2);
    }
    return (uint64_t)(v * (double)f);
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t fold(const uint64_t *buf, uint64_t words) {
    uint64_t x = 0;
    for (uint64_t i = 0; i < words; i++) x ^= buf[i];
    return x;
}

int main(int argc, char **argv) {
    uint64_t size = 64ULL << 20, rate = 1ULL << 20, hot = 0, seed = 1;
    int port = 7070;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "memwriter: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--size")) size = parse_bytes(v, a);
        else if (!strcmp(a, "--rate")) rate = parse_bytes(v, a);
        else if (!strcmp(a, "--hot")) hot = parse_bytes(v, a);
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else { fprintf(stderr, "memwriter: unknown option %s\n", a); return 2; }
        i++;
    }
    size = (size + PAGE - 1) / PAGE * PAGE;
    if (size == 0) size = PAGE;
    if (hot == 0 || hot > size) hot = size;
    uint64_t pages = size / PAGE, hot_pages = hot / PAGE ? hot / PAGE : 1;
    uint64_t words = size / 8;

    uint64_t *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) { perror("memwriter: mmap"); return 1; }
    for (uint64_t i = 0; i < words; i++) buf[i] = splitmix(seed * 0x100000001B3ULL + i);
    uint64_t checksum = fold(buf, words);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 16)) {
        perror("memwriter: listen");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("memwriter: %llu bytes, hot %llu bytes, %llu bytes/s, port %d\n",
           (unsigned long long)size, (unsigned long long)hot, (unsigned long long)rate, port);
    fflush(stdout);

    uint64_t counter = 0, done_at_base = 0;
    double base = now();
    const double tick = 0.005;
    for (;;) {
        /* Writes due since `base`; a long gap (a freeze, a restore elsewhere) is not caught up
           in a burst, which would fake a dirty-rate spike: restart the schedule instead. */
        double t = now();
        uint64_t due = done_at_base + (uint64_t)((t - base) * (double)rate / PAGE);
        if (due > counter + (uint64_t)(rate / PAGE) / 10 + 16) {
            base = t;
            done_at_base = counter;
            due = counter;
        }
        for (; counter < due; counter++) {
            uint64_t page = counter % hot_pages;
            uint64_t idx = page * WORDS_PER_PAGE + (counter / hot_pages) % WORDS_PER_PAGE;
            uint64_t next = splitmix(counter ^ (seed << 32));
            checksum ^= buf[idx] ^ next;
            buf[idx] = next;
        }
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(tick * 1000)) > 0) {
            int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (cfd < 0) continue;
            struct timeval tv = {.tv_sec = 1};
            setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            char cmd[64] = {0};
            ssize_t n = recv(cfd, cmd, sizeof cmd - 1, 0);
            int verify = n > 0 && strncmp(cmd, "verify", 6) == 0;
            char out[512];
            int len = snprintf(out, sizeof out,
                "{\"counter\": %llu, \"checksum\": \"%016llx\", \"size\": %llu, \"hot\": %llu, "
                "\"rate\": %llu, \"pages\": %llu, \"pid\": %d%s%s}\n",
                (unsigned long long)counter, (unsigned long long)checksum,
                (unsigned long long)size, (unsigned long long)hot, (unsigned long long)rate,
                (unsigned long long)pages, getpid(),
                verify ? ", \"verify\": " : "",
                verify ? (fold(buf, words) == checksum ? "\"ok\"" : "\"mismatch\"") : "");
            if (send(cfd, out, len, 0) < 0 && errno != EPIPE) perror("memwriter: send");
            close(cfd);
        }
    }
}
