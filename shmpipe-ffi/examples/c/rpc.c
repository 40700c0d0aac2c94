/*
 * rpc.c: one server, several client processes, request/response calls
 * through the listener (the C twin of the crate's examples/rpc_server.rs).
 *
 *   ./rpc [CLIENTS [CALLS]]      (default 4 clients x 1000 calls)
 *
 * The server binds a listener, forks the clients, and serves every
 * connection and the listener from one thread with one wait set. Each
 * client connects (its own private duplex: two memfd rings, nothing named
 * in /dev/shm), makes CALLS calls ("sum A B" -> "A+B"), checks every reply
 * and exits. The server notices each client's close, then prints a summary
 * and removes the socket. No seed program had this: the seeds' FIFO +
 * SIGUSR1 notification (seed 002) is what a connection replaces.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "example.h"

/* "sum A B" -> the decimal of A+B. */
static size_t answer(void *ctx, const void *req, size_t len, void *reply, size_t cap) {
    uint64_t *served = ctx;
    char text[64];
    long long a = 0, b = 0;
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, req, n);
    text[n] = '\0';
    if (sscanf(text, "sum %lld %lld", &a, &b) != 2) return 0; /* an empty reply: bad request */
    (*served)++;
    int w = snprintf(reply, cap, "%lld", a + b);
    return w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap;
}

static void client(const char *path, int calls) {
    shmpipe_duplex *d = NULL;
    check(shmpipe_connect(path, NULL, &d), "connect");
    for (int i = 0; i < calls; i++) {
        char req[64], reply[64];
        size_t len = 0;
        int n = snprintf(req, sizeof req, "sum %d %d", (int)getpid(), i);
        check(shmpipe_duplex_call(d, req, (size_t)n, reply, sizeof reply - 1, &len,
                                  10LL * 1000 * 1000 * 1000),
              "call");
        reply[len] = '\0';
        if (strtoll(reply, NULL, 10) != (long long)getpid() + i) {
            fprintf(stderr, "client %d: call %d: wrong reply '%s'\n", (int)getpid(), i, reply);
            exit(1);
        }
    }
    shmpipe_duplex_close(d);
    exit(0);
}

int main(int argc, char **argv) {
    int clients = argc > 1 ? atoi(argv[1]) : 4;
    int calls = argc > 2 ? atoi(argv[2]) : 1000;
    if (clients < 1 || clients > 64 || calls < 0) {
        fprintf(stderr, "usage: %s [CLIENTS (1-64) [CALLS]]\n", argv[0]);
        return 2;
    }
    char path[96];
    snprintf(path, sizeof path, "/tmp/shmpipe-rpc-example-%d.sock", (int)getpid());

    shmpipe_options o = shmpipe_options_default();
    o.slots = 64;
    o.max_message = 120;
    shmpipe_listener *l = NULL;
    check(shmpipe_listener_bind(path, &o, &l), "bind");
    for (int k = 0; k < clients; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) client(path, calls);
    }

    shmpipe_waitset *ws = NULL;
    check(shmpipe_waitset_create(&ws), "waitset");
    check(shmpipe_waitset_add_listener(ws, l, 0), "add listener");
    shmpipe_duplex *conns[65] = {0};
    int accepted = 0, done = 0, failed = 0;
    uint64_t served = 0;
    while (done < clients) {
        uint64_t ready[65];
        size_t n = 0;
        check(shmpipe_waitset_wait(ws, -1, ready, 65, &n), "wait");
        for (size_t i = 0; i < n; i++) {
            if (ready[i] == 0) { /* a client is connecting */
                shmpipe_duplex *d = NULL;
                int rc = shmpipe_listener_accept_timeout(l, 0, &d);
                if (rc == SHMPIPE_EMPTY) continue;
                check(rc, "accept");
                conns[++accepted] = d;
                check(shmpipe_waitset_add_duplex(ws, d, (uint64_t)accepted), "add client");
                continue;
            }
            shmpipe_duplex *d = conns[ready[i]];
            int did = 1, rc = SHMPIPE_OK;
            while (did && rc == SHMPIPE_OK) rc = shmpipe_duplex_try_serve(d, answer, &served, &did);
            if (rc == SHMPIPE_OK) continue;
            if (rc != SHMPIPE_DISCONNECTED) { /* PEER_DIED: the others go on */
                fprintf(stderr, "client %" PRIu64 ": %s\n", ready[i], shmpipe_last_error());
                failed++;
            }
            check(shmpipe_waitset_remove(ws, ready[i]), "remove");
            shmpipe_duplex_close(d);
            done++;
        }
    }
    shmpipe_waitset_close(ws);
    shmpipe_listener_close(l); /* removes the socket */
    int bad = failed;
    for (int k = 0; k < clients; k++) {
        int status = 0;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad++;
    }
    printf("served %" PRIu64 " calls from %d clients, %d failed\n", served, clients, bad);
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "the socket %s was left behind\n", path);
        return 1;
    }
    return bad == 0 ? 0 : 1;
}
