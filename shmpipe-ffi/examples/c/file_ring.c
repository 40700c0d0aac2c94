/*
 * A ring in a mapped file, redone with shmpipe.
 *
 * Seed: ../shared/seeds/004_da8ef8d4358d015d.txt (Go: open tmp.txt, grow it
 * with Truncate so the mapping is not past the end, syscall.Mmap
 * MAP_SHARED, write "hello mmap!" byte by byte, Munmap) and the mmap'ed
 * file of ../shared/seeds/000_22a4d8898b801211.txt.
 *
 * The ring sizes the file itself before mapping it (no SIGBUS from a short
 * file) and frames each message, so a reader that opens the same path gets
 * exactly what was written.
 *
 *   ./file_ring [PATH]                      (default: ./tmp.ring)
 */
#include <stdio.h>
#include <string.h>

#include "example.h"

int main(int argc, char **argv) {
    char address[4200];
    snprintf(address, sizeof address, "file:%s", argc > 1 ? argv[1] : "./tmp.ring");
    shmpipe_ring *writer = NULL, *reader = NULL;
    check(shmpipe_ring_create(address, 8, 64, &writer), "creating the ring");
    shmpipe_producer *tx = NULL;
    check(shmpipe_ring_producer(writer, &tx), "claiming the producer");
    const char *msg = "hello mmap!";
    check(shmpipe_producer_send(tx, msg, strlen(msg), -1), "sending");
    shmpipe_producer_close(tx);
    shmpipe_ring_close(writer);

    /* Another handle (another process would do the same) opens the path. */
    check(shmpipe_ring_open(address, &reader), "opening the ring");
    shmpipe_consumer *rx = NULL;
    check(shmpipe_ring_consumer(reader, &rx), "claiming the consumer");
    char buf[64];
    size_t len = 0;
    check(shmpipe_consumer_recv(rx, buf, sizeof buf - 1, &len, -1), "receiving");
    buf[len] = '\0';
    printf("%s holds: %s\n", address, buf);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(reader);
    check(shmpipe_ring_remove(address, 0), "removing the ring");
    return 0;
}
