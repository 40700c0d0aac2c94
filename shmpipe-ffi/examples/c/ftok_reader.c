/*
 * The ftok-keyed reader with its SIGINT clean-up, redone with shmpipe.
 *
 * Seed: ../shared/seeds/002_b79f0c6242a1f099.txt (shm2.c, which busy-polls
 * strlen(shmaddr); shm2_upgrade.c, which sends its pid through a FIFO,
 * pause()s until SIGUSR1, prints "recv data:%s" and bzero()s the segment;
 * and signal_fun, which on SIGINT calls shmdt, shmctl(IPC_RMID) and
 * removes the key file and the FIFO, from inside the signal handler).
 *
 * Here the reader sleeps in shmpipe_consumer_recv until a message comes.
 * The SIGINT handler only sets a flag (shmdt, shmctl and remove are not
 * async-signal-safe); the receive loop waits at most 100 ms at a time, sees
 * the flag, and cleans up from normal code: it closes its handle, removes
 * the ring and the key file, and exits with 130 as a shell would report.
 * At the end of the stream (the writer closed) it cleans up the same way
 * and exits 0.
 *
 *   ./ftok_reader [KEYFILE]                 (default KEYFILE: ./shmfile)
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int signum) {
    (void)signum;
    interrupted = 1;
}

int main(int argc, char **argv) {
    const char *keyfile = argc > 1 ? argv[1] : "./shmfile";
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

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
    opts.max_message = 300;
    opts.mode = 0664;
    shmpipe_ring *ring = open_or_create(address, &opts);
    shmpipe_consumer *rx = NULL;
    check(shmpipe_ring_consumer(ring, &rx), "claiming the consumer");
    printf("mypid=%d, reading %s\n", (int)getpid(), address);
    fflush(stdout);

    char buf[301];
    while (!interrupted) {
        size_t len = 0;
        int rc = shmpipe_consumer_recv(rx, buf, sizeof buf - 1, &len, 100 * 1000 * 1000);
        if (rc == SHMPIPE_TIMEOUT) continue; /* look at the flag again */
        if (rc == SHMPIPE_DISCONNECTED) break;
        check(rc, "receiving");
        buf[len] = '\0';
        printf("recv data:%s\n", buf);
        fflush(stdout);
    }
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(ring);
    check(shmpipe_ring_remove(address, 0), "removing the ring");
    remove(keyfile);
    if (interrupted) {
        printf("interrupted: ring and %s removed\n", keyfile);
        return 130;
    }
    printf("end of stream: ring and %s removed\n", keyfile);
    return 0;
}
