/*
 * The shared counter of parent and child, redone with shmpipe.
 *
 * Seed: ../shared/seeds/001_fb5abe4a9910af80.txt (incr1.c, incr2.c,
 * incr3.c: a parent and a forked child each add 1 to a counter nloop
 * times, the counter in a mapped file or /dev/zero and guarded by a named
 * or process-shared POSIX semaphore; the output interleaves "parent: %d"
 * and "child: %d").
 *
 * Instead of a counter guarded by a semaphore, the counter travels: the
 * parent sends it to the child over one ring, the child adds one and sends
 * it back over another. Whoever holds the value is the only one who can
 * change it, so no lock is needed and the turns alternate strictly.
 *
 *   ./fork_counter [NLOOP]                  (default 5)
 */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv) {
    int nloop = argc > 1 ? atoi(argv[1]) : 5;
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 2;
    opts.max_message = sizeof(int64_t);
    shmpipe_ring *to_child = NULL, *to_parent = NULL;
    check(shmpipe_ring_create_memfd("to_child", &opts, &to_child), "creating a ring");
    check(shmpipe_ring_create_memfd("to_parent", &opts, &to_parent), "creating a ring");
    setbuf(stdout, NULL); /* as the seed: unbuffered, so lines interleave */

    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    int is_child = child == 0;
    shmpipe_consumer *rx = NULL;
    shmpipe_producer *tx = NULL;
    check(shmpipe_ring_consumer(is_child ? to_child : to_parent, &rx), "claiming");
    check(shmpipe_ring_producer(is_child ? to_parent : to_child, &tx), "claiming");

    int64_t count = 0;
    for (int i = 0; i < nloop; i++) {
        size_t len;
        if (is_child || i > 0) {
            check(shmpipe_consumer_recv(rx, &count, sizeof count, &len, -1), "receiving");
        }
        printf("%s: %lld\n", is_child ? "child" : "parent", (long long)count++);
        check(shmpipe_producer_send(tx, &count, sizeof count, -1), "sending");
    }
    if (!is_child) {
        size_t len;
        check(shmpipe_consumer_recv(rx, &count, sizeof count, &len, -1), "receiving");
        printf("final count: %lld\n", (long long)count);
    }
    shmpipe_producer_close(tx);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(to_child);
    shmpipe_ring_close(to_parent);
    if (is_child) _exit(0);
    waitpid(child, NULL, 0);
    return 0;
}
