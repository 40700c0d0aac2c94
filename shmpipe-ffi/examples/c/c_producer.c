/*
 * A C producer for `shmpipe recv`: standard input into a ring, zero-copy.
 *
 * Seed: the writers of ../shared/seeds/002_b79f0c6242a1f099.txt and
 * ../shared/seeds/003_430d3908043dda4a.txt, made into a stream: any amount
 * of data, binary included, arrives byte-identical and in order.
 *
 * Each read(2) from standard input goes straight into a reserved slot of
 * the ring (shmpipe_producer_reserve / _commit); closing the producer at
 * the end of input ends the stream. Either side may start first.
 *
 *   ./c_producer shm:NAME < input     with     shmpipe recv --raw shm:NAME > output
 */
#include <errno.h>
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS < input\n", argv[0]);
        return 2;
    }
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 64;
    opts.slot_size = 4096; /* what `shmpipe send` and `recv` create */
    shmpipe_ring *ring = open_or_create(argv[1], &opts);
    shmpipe_producer *tx = NULL;
    check(shmpipe_ring_producer(ring, &tx), "claiming the producer");
    for (;;) {
        void *slot;
        size_t cap;
        check(shmpipe_producer_reserve(tx, &slot, &cap, -1), "reserving a slot");
        ssize_t n = read(STDIN_FILENO, slot, cap);
        if (n < 0 && errno == EINTR) {
            check(shmpipe_producer_abort(tx), "aborting");
            continue;
        }
        if (n <= 0) {
            check(shmpipe_producer_abort(tx), "aborting");
            if (n < 0) {
                perror("reading standard input");
                return 1;
            }
            break;
        }
        check(shmpipe_producer_commit(tx, (size_t)n), "committing");
    }
    shmpipe_producer_close(tx);
    shmpipe_ring_close(ring);
    return 0;
}
