/*
 * The C side of the FFI benchmark (make bench; bench/run.sh runs it
 * interleaved with bench_rust.rs, which has the same shape in Rust).
 *
 *   bench_c stream N      64 B messages from a parent to a forked child,
 *                         prints "stream_msgs_per_s <rate>"
 *   bench_c pingpong N    64 B round trips parent -> child -> parent over
 *                         two rings, prints "pingpong_p50_ns <p50>"
 *
 * Both processes busy-spin (SHMPIPE_WAIT_SPIN), the parent pinned to CPU 0
 * and the child to CPU 1; every message goes through shmpipe_producer_send
 * and shmpipe_consumer_recv, one call per message.
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmpipe.h"

#define MSG 64

static void check(int rc, const char *what) {
    if (rc != SHMPIPE_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, shmpipe_status_name(rc), shmpipe_last_error());
        exit(1);
    }
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set); /* best effort */
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static shmpipe_ring *ring(const char *name) {
    shmpipe_options o = shmpipe_options_default();
    o.slots = 1024;
    o.max_message = MSG;
    o.wait = SHMPIPE_WAIT_SPIN;
    shmpipe_ring *r = NULL;
    check(shmpipe_ring_create_memfd(name, &o, &r), "creating a ring");
    return r;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void stream(uint64_t n) {
    shmpipe_ring *r = ring("bench-stream");
    int result[2];
    if (pipe(result) != 0) exit(1);
    pid_t child = fork();
    if (child == 0) {
        pin(1);
        shmpipe_consumer *rx = NULL;
        check(shmpipe_ring_consumer(r, &rx), "consumer");
        char buf[MSG];
        size_t len;
        check(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1), "recv");
        uint64_t t0 = now_ns();
        for (uint64_t i = 1; i < n; i++) {
            check(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1), "recv");
        }
        double rate = (double)(n - 1) / ((double)(now_ns() - t0) / 1e9);
        if (write(result[1], &rate, sizeof rate) != sizeof rate) _exit(1);
        shmpipe_consumer_close(rx);
        _exit(0);
    }
    pin(0);
    shmpipe_producer *tx = NULL;
    check(shmpipe_ring_producer(r, &tx), "producer");
    char msg[MSG];
    memset(msg, 7, sizeof msg);
    for (uint64_t i = 0; i < n; i++) check(shmpipe_producer_send(tx, msg, MSG, -1), "send");
    double rate = 0;
    if (read(result[0], &rate, sizeof rate) != sizeof rate) exit(1);
    waitpid(child, NULL, 0);
    printf("stream_msgs_per_s %.0f\n", rate);
    shmpipe_producer_close(tx);
    shmpipe_ring_close(r);
}

static void pingpong(uint64_t n) {
    shmpipe_ring *there = ring("bench-ping"), *back = ring("bench-pong");
    pid_t child = fork();
    if (child == 0) {
        pin(1);
        shmpipe_consumer *rx = NULL;
        shmpipe_producer *tx = NULL;
        check(shmpipe_ring_consumer(there, &rx), "consumer");
        check(shmpipe_ring_producer(back, &tx), "producer");
        char buf[MSG];
        size_t len;
        for (;;) {
            int rc = shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1);
            if (rc == SHMPIPE_DISCONNECTED) break;
            check(rc, "recv");
            check(shmpipe_producer_send(tx, buf, len, -1), "send");
        }
        _exit(0);
    }
    pin(0);
    shmpipe_producer *tx = NULL;
    shmpipe_consumer *rx = NULL;
    check(shmpipe_ring_producer(there, &tx), "producer");
    check(shmpipe_ring_consumer(back, &rx), "consumer");
    uint64_t warmup = n / 10, *samples = malloc(n * sizeof *samples);
    char msg[MSG], buf[MSG];
    memset(msg, 7, sizeof msg);
    size_t len;
    for (uint64_t i = 0; i < warmup + n; i++) {
        uint64_t t0 = now_ns();
        check(shmpipe_producer_send(tx, msg, MSG, -1), "send");
        check(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1), "recv");
        if (i >= warmup) samples[i - warmup] = now_ns() - t0;
    }
    shmpipe_producer_close(tx);
    waitpid(child, NULL, 0);
    qsort(samples, n, sizeof *samples, cmp_u64);
    printf("pingpong_p50_ns %llu\n", (unsigned long long)samples[n / 2]);
    free(samples);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(there);
    shmpipe_ring_close(back);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s stream|pingpong N\n", argv[0]);
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    if (n < 2) return 2;
    if (strcmp(argv[1], "stream") == 0) {
        stream(n);
    } else if (strcmp(argv[1], "pingpong") == 0) {
        pingpong(n);
    } else {
        return 2;
    }
    return 0;
}
