/*
 * The System V writer, redone with shmpipe.
 *
 * Seeds: ../shared/seeds/000_22a4d8898b801211.txt (shmget(1000, 1<<20,
 * IPC_CREAT|0666), shmat, strcpy(p, "zyq")) and
 * ../shared/seeds/003_430d3908043dda4a.txt (write_shm.c: shmget(13, ...),
 * memcpy "This is share memory", shmdt).
 *
 * The seeds copy a string to the start of the segment and hope the reader
 * comes after; here each argument is one message in a ring at `sysv:1000`
 * (the same System V key), kept until a reader takes it, and closing the
 * producer tells the reader the stream is over.
 *
 *   ./sysv_writer [ADDRESS] [MESSAGE...]     (default: sysv:1000 zyq)
 */
#include <string.h>

#include "example.h"

int main(int argc, char **argv) {
    const char *address = argc > 1 ? argv[1] : "sysv:1000";
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 64;
    opts.max_message = 4000;
    opts.mode = 0666; /* as the seed's IPC_CREAT|0666: any user may read */
    shmpipe_ring *ring = open_or_create(address, &opts);

    shmpipe_producer *tx = NULL;
    check(shmpipe_ring_producer(ring, &tx), "claiming the producer");
    static const char *const zyq[] = {"zyq"};
    int count = argc > 2 ? argc - 2 : 1;
    const char *const *msgs = argc > 2 ? (const char *const *)argv + 2 : zyq;
    for (int i = 0; i < count; i++) {
        check(shmpipe_producer_send(tx, msgs[i], strlen(msgs[i]), -1), "sending");
        printf("sent \"%s\" to %s\n", msgs[i], shmpipe_ring_address(ring));
    }
    /* The messages stay in the ring after we exit (as the seed's segment
     * does); the reader removes it. */
    shmpipe_producer_close(tx);
    shmpipe_ring_close(ring);
    return 0;
}
