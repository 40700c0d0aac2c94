/*
 * The System V reader, redone with shmpipe.
 *
 * Seeds: ../shared/seeds/003_430d3908043dda4a.txt (read_shm.c: shmget,
 * shmat, printf("shm = %s"), shmdt, then shmctl(IPC_RMID) and "delete shm
 * success.") and ../shared/seeds/002_b79f0c6242a1f099.txt (shm2.c, whose
 * reader spins on strlen(shmaddr) != 0 and bzero()s the segment).
 *
 * Here the reader blocks in shmpipe_consumer_recv, asleep on a futex while
 * nothing comes, instead of polling strlen; each message arrives whole,
 * whatever bytes it holds, and none is lost or read twice. When the writer
 * has closed and every message is read, it removes the ring (the seed's
 * IPC_RMID). Either side may start first.
 *
 *   ./sysv_reader [ADDRESS]                  (default: sysv:1000)
 */
#include "example.h"

int main(int argc, char **argv) {
    const char *address = argc > 1 ? argv[1] : "sysv:1000";
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 64;
    opts.max_message = 4000;
    opts.mode = 0666;
    shmpipe_ring *ring = open_or_create(address, &opts);

    shmpipe_consumer *rx = NULL;
    check(shmpipe_ring_consumer(ring, &rx), "claiming the consumer");
    char buf[4096];
    for (;;) {
        size_t len = 0;
        int rc = shmpipe_consumer_recv(rx, buf, sizeof buf - 1, &len, -1);
        if (rc == SHMPIPE_DISCONNECTED) break; /* the writer closed: all read */
        check(rc, "receiving");
        buf[len] = '\0';
        printf("shm = %s\n", buf);
    }
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(ring);
    check(shmpipe_ring_remove(address, 0), "removing the ring");
    printf("delete shm success.\n");
    return 0;
}
