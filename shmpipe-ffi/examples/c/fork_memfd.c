/*
 * A parent and a child over an anonymous ring, redone with shmpipe.
 *
 * Seeds: ../shared/seeds/000_22a4d8898b801211.txt (open("file"),
 * ftruncate, mmap MAP_SHARED, fork; the child writes 'H' five times and a
 * NUL, the parent wait()s and prints "i gets:%s") and
 * ../shared/seeds/001_fb5abe4a9910af80.txt (mmap of /dev/zero or MAP_ANON
 * shared across fork).
 *
 * The ring lives in a memfd: no file to create, truncate or delete, and
 * nothing left behind. The parent need not wait() for the child to finish
 * before reading: it blocks until the message is there.
 *
 *   ./fork_memfd
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "example.h"

int main(void) {
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 4;
    opts.max_message = 1 << 10; /* the seed's 1<<10 bytes */
    shmpipe_ring *ring = NULL;
    check(shmpipe_ring_create_memfd("fork_memfd", &opts, &ring), "creating the ring");

    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        /* The child inherited the mapping and claims the producer. */
        shmpipe_producer *tx = NULL;
        check(shmpipe_ring_producer(ring, &tx), "child: claiming the producer");
        char msg[5];
        memset(msg, 'H', sizeof msg);
        check(shmpipe_producer_send(tx, msg, sizeof msg, -1), "child: sending");
        shmpipe_producer_close(tx);
        shmpipe_ring_close(ring);
        _exit(0);
    }
    shmpipe_consumer *rx = NULL;
    check(shmpipe_ring_consumer(ring, &rx), "claiming the consumer");
    char buf[1 << 10];
    size_t len = 0;
    check(shmpipe_consumer_recv(rx, buf, sizeof buf - 1, &len, -1), "receiving");
    buf[len] = '\0';
    printf("i gets:%s\n", buf);
    waitpid(child, NULL, 0);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(ring);
    return 0;
}
