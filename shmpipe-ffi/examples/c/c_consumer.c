/*
 * A C consumer fed by `shmpipe send`: a ring onto standard output,
 * zero-copy.
 *
 * Seed: the readers of ../shared/seeds/002_b79f0c6242a1f099.txt and
 * ../shared/seeds/003_430d3908043dda4a.txt, made into a stream.
 *
 * Each message is borrowed in place (shmpipe_consumer_borrow), written to
 * standard output and released. At the end of the stream (the producer
 * closed and everything was read) the ring is removed, as `shmpipe recv`
 * does. A producer that dies is reported after everything it committed.
 *
 *   shmpipe send --raw shm:NAME < input     with     ./c_consumer shm:NAME > output
 */
#include <errno.h>
#include <unistd.h>

#include "example.h"

static int write_all(const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS > output\n", argv[0]);
        return 2;
    }
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 64;
    opts.slot_size = 4096;
    shmpipe_ring *ring = open_or_create(argv[1], &opts);
    shmpipe_consumer *rx = NULL;
    check(shmpipe_ring_consumer(ring, &rx), "claiming the consumer");
    for (;;) {
        const void *msg;
        size_t len;
        int rc = shmpipe_consumer_borrow(rx, &msg, &len, -1);
        if (rc == SHMPIPE_DISCONNECTED) break;
        check(rc, "receiving");
        if (write_all(msg, len) != 0) {
            perror("writing standard output");
            return 1;
        }
        check(shmpipe_consumer_release(rx), "releasing");
    }
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(ring);
    check(shmpipe_ring_remove(argv[1], 0), "removing the ring");
    return 0;
}
