/*
 * The ftok-keyed writer, redone with shmpipe.
 *
 * Seed: ../shared/seeds/002_b79f0c6242a1f099.txt (shm1.c and
 * shm1_upgrade.c: open("./shmfile", O_CREAT), ftok("./shmfile", 'b'),
 * shmget(key, 4096, 0664|IPC_CREAT), then a loop of scanf into a buffer,
 * memcpy into the segment and kill(peer_pid, SIGUSR1), after reading the
 * reader's pid from a FIFO).
 *
 * The address `sysv:./shmfile:98` names the same System V key
 * (ftok("./shmfile", 'b'), 'b' being 98). No FIFO, no pid exchange, no
 * signal and no sleep(1): a message sent wakes the reader if it sleeps, and
 * a full ring makes the writer wait instead of overwriting what the reader
 * has not read yet.
 *
 *   ./ftok_writer [KEYFILE]  < lines        (default KEYFILE: ./shmfile)
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv) {
    const char *keyfile = argc > 1 ? argv[1] : "./shmfile";
    /* ftok needs the file to exist, as in the seed's create_or_get_shm. */
    int fd = open(keyfile, O_RDWR | O_CREAT, 0664);
    if (fd < 0) {
        perror(keyfile);
        return 1;
    }
    close(fd);
    char address[4200];
    snprintf(address, sizeof address, "sysv:%s:%d", keyfile, 'b');
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 16;
    opts.max_message = 300; /* the seed's char buf[300] */
    opts.mode = 0664;
    shmpipe_ring *ring = open_or_create(address, &opts);
    shmpipe_producer *tx = NULL;
    check(shmpipe_ring_producer(ring, &tx), "claiming the producer");

    char line[300];
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t len = strcspn(line, "\n");
        check(shmpipe_producer_send(tx, line, len, -1), "sending");
    }
    shmpipe_producer_close(tx); /* the reader sees the end of the stream */
    shmpipe_ring_close(ring);
    return 0;
}
