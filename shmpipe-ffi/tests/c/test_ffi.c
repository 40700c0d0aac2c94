/*
 * The C test suite for libshmpipe: plain C11 with a CHECK macro that,
 * unlike assert(), stays on under NDEBUG and prints the library's last
 * error. Built twice by `make tests`, against libshmpipe.so and against
 * libshmpipe.a; run by `make check` (and so by .ci/run).
 *
 * Every ring gets a name with this process's pid in it and is removed at
 * the end of its test, so that concurrent runs do not meet and nothing is
 * left in /dev/shm or `ipcs -m`.
 */
#include "shmpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        checks++;                                                                       \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n  last error: %s\n", __FILE__,    \
                    __LINE__, #cond, shmpipe_last_error());                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* A status check that names both statuses on failure. */
#define CHECK_RC(call, want)                                                            \
    do {                                                                                \
        int rc_ = (call);                                                               \
        checks++;                                                                       \
        if (rc_ != (want)) {                                                            \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n  last error: %s\n",   \
                    __FILE__, __LINE__, #call, shmpipe_status_name(rc_),                \
                    shmpipe_status_name(want), shmpipe_last_error());                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

#define OK(call) CHECK_RC(call, SHMPIPE_OK)

static char *ring_name(const char *tag) {
    static char names[16][96];
    static int next;
    char *n = names[next++ % 16];
    snprintf(n, sizeof names[0], "shm:shmpipe-ffi-test-%d-%s", (int)getpid(), tag);
    return n;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int contains(const char *haystack, const char *needle) {
    return strstr(haystack, needle) != NULL;
}

/* A ring with both sides claimed, in one process. */
typedef struct {
    const char *name;
    shmpipe_ring *ring;
    shmpipe_producer *tx;
    shmpipe_consumer *rx;
} pair;

static pair make_pair(const char *tag, uint64_t slots, uint64_t max_message) {
    pair p = {ring_name(tag), NULL, NULL, NULL};
    (void)shmpipe_ring_remove(p.name, 1);
    OK(shmpipe_ring_create(p.name, slots, max_message, &p.ring));
    OK(shmpipe_ring_producer(p.ring, &p.tx));
    OK(shmpipe_ring_consumer(p.ring, &p.rx));
    return p;
}

static void drop_pair(pair *p) {
    shmpipe_producer_close(p->tx);
    shmpipe_consumer_close(p->rx);
    shmpipe_ring_close(p->ring);
    OK(shmpipe_ring_remove(p->name, 0));
}

static void test_names_and_version(void) {
    CHECK(strlen(shmpipe_version()) > 0);
    CHECK(strcmp(shmpipe_status_name(SHMPIPE_OK), "SHMPIPE_OK") == 0);
    CHECK(strcmp(shmpipe_status_name(SHMPIPE_PEER_DIED), "SHMPIPE_PEER_DIED") == 0);
    CHECK(strcmp(shmpipe_status_name(12345), "SHMPIPE_UNKNOWN") == 0);
    CHECK(shmpipe_last_error() != NULL);
}

static void test_null_arguments(void) {
    shmpipe_ring *ring = (shmpipe_ring *)1;
    char buf[8];
    size_t len = 0;
    void *slot = NULL;
    const void *msg = NULL;
    shmpipe_info info;

    CHECK_RC(shmpipe_ring_create(NULL, 8, 64, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK(ring == NULL); /* a failed call leaves *out NULL */
    CHECK(contains(shmpipe_last_error(), "address"));
    CHECK_RC(shmpipe_ring_create("shm:x", 8, 64, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK(contains(shmpipe_last_error(), "NULL"));
    CHECK_RC(shmpipe_ring_open(NULL, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_open_with("shm:x", NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_create_memfd(NULL, NULL, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_open_fd(-1, NULL, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_producer(NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    shmpipe_producer *tx = NULL;
    shmpipe_consumer *rx = NULL;
    CHECK_RC(shmpipe_ring_producer(NULL, &tx), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_consumer(NULL, &rx), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_info(NULL, &info), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_fd(NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_remove(NULL, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_ring_address(NULL) == NULL);
    CHECK(shmpipe_ring_huge_page_fallback(NULL) == NULL);

    CHECK_RC(shmpipe_producer_send(NULL, "x", 1, -1), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_try_send(NULL, "x", 1), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_reserve(NULL, &slot, &len, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_commit(NULL, 1), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_abort(NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_send_batch(NULL, NULL, 1, &len, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_fill_batch(NULL, 1, NULL, NULL, &len, 0),
             SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_producer_capacity(NULL) == 0);
    CHECK(shmpipe_producer_max_message(NULL) == 0);

    CHECK_RC(shmpipe_consumer_recv(NULL, buf, sizeof buf, &len, -1), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_try_recv(NULL, buf, sizeof buf, &len), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_borrow(NULL, &msg, &len, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_release(NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_recv_batch(NULL, 1, NULL, NULL, &len, 0),
             SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_consumer_capacity(NULL) == 0);
    CHECK(shmpipe_consumer_max_message(NULL) == 0);
    CHECK_RC(shmpipe_consumer_set_pacing(NULL, 1), SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_consumer_pacing(NULL) == -1);

    /* Every close accepts NULL. */
    shmpipe_producer_close(NULL);
    shmpipe_consumer_close(NULL);
    shmpipe_ring_close(NULL);

    /* NULL buffers and out-parameters on live handles. */
    pair p = make_pair("null", 4, 32);
    CHECK_RC(shmpipe_producer_send(p.tx, NULL, 3, 0), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_producer_send(p.tx, NULL, 0, 0)); /* an empty message is fine */
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, NULL, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_recv(p.rx, NULL, 5, &len, 0), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_consumer_recv(p.rx, NULL, 0, &len, 0));
    CHECK(len == 0);
    CHECK_RC(shmpipe_producer_reserve(p.tx, NULL, NULL, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_borrow(p.rx, NULL, &len, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_borrow(p.rx, &msg, NULL, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_info(p.ring, NULL), SHMPIPE_INVALID_ARGUMENT);
    drop_pair(&p);
}

static void test_addresses_and_options(void) {
    shmpipe_ring *ring = NULL;
    CHECK_RC(shmpipe_ring_create("bogus:x", 8, 64, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK(contains(shmpipe_last_error(), "bogus:x"));
    CHECK_RC(shmpipe_ring_create("sysv:not-a-key", 8, 64, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_ring_create("shm:\xff\xfe", 8, 64, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK(contains(shmpipe_last_error(), "UTF-8"));
    const char *name = ring_name("opts");
    CHECK_RC(shmpipe_ring_create(name, 3, 64, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK(contains(shmpipe_last_error(), "slot count"));
    CHECK_RC(shmpipe_ring_open(name, &ring), SHMPIPE_NOT_FOUND);
    CHECK_RC(shmpipe_ring_remove(name, 0), SHMPIPE_NOT_FOUND);

    shmpipe_options o = shmpipe_options_default();
    CHECK(o.slots == 1024 && o.slot_size == 256 && o.mode == 0600);
    o.huge_pages = 7;
    CHECK_RC(shmpipe_ring_create_with(name, &o, &ring), SHMPIPE_INVALID_ARGUMENT);
    CHECK(contains(shmpipe_last_error(), "huge_pages"));
    o = shmpipe_options_default();
    o.wait = 99;
    CHECK_RC(shmpipe_ring_create_with(name, &o, &ring), SHMPIPE_INVALID_ARGUMENT);
    o = shmpipe_options_default();
    o.mode = 01000;
    CHECK_RC(shmpipe_ring_create_with(name, &o, &ring), SHMPIPE_INVALID_ARGUMENT);

    /* Geometry, mode and the wait strategy reach the ring. */
    o = shmpipe_options_default();
    o.slots = 16;
    o.slot_size = 128;
    o.mode = 0640;
    o.wait = SHMPIPE_WAIT_SPIN;
    o.populate = 1;
    OK(shmpipe_ring_create_with(name, &o, &ring));
    shmpipe_info info;
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.backend == SHMPIPE_BACKEND_POSIX_SHM);
    CHECK(info.slots == 16 && info.slot_size == 128 && info.max_message == 112);
    CHECK(info.mode == 0640);
    CHECK(info.sysv_id == -1);
    CHECK(info.creator_pid == (uint32_t)getpid() && info.creator_alive);
    CHECK(info.producer.state == SHMPIPE_SIDE_VACANT);
    CHECK(strcmp(shmpipe_ring_address(ring), name) == 0);
    /* max_message overrides slot_size. */
    shmpipe_ring *again = NULL;
    CHECK_RC(shmpipe_ring_create_with(name, &o, &again), SHMPIPE_ALREADY_EXISTS);
    CHECK(again == NULL);
    shmpipe_ring_close(ring);
    OK(shmpipe_ring_remove(name, 0));

    o = shmpipe_options_default();
    o.slots = 8;
    o.max_message = 1000;
    OK(shmpipe_ring_create_with(name, &o, &ring));
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.max_message >= 1000 && info.slot_size == 1024);
    shmpipe_ring_close(ring);
    OK(shmpipe_ring_remove(name, 0));

    /* Huge pages, preferred: either used or the reason is given. */
    o = shmpipe_options_default();
    o.slots = 8;
    o.huge_pages = SHMPIPE_HUGE_PAGES_PREFER;
    OK(shmpipe_ring_create_memfd("prefer", &o, &ring));
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.backend == SHMPIPE_BACKEND_MEMFD);
    if (info.huge_page_fallback) {
        CHECK(shmpipe_ring_huge_page_fallback(ring) != NULL);
        CHECK(info.page_size == (uint64_t)sysconf(_SC_PAGESIZE));
    } else {
        CHECK(shmpipe_ring_huge_page_fallback(ring) == NULL);
        CHECK(info.page_size > (uint64_t)sysconf(_SC_PAGESIZE));
    }
    shmpipe_ring_close(ring);
}

static void test_send_recv_claims_remove(void) {
    const char *name = ring_name("basic");
    shmpipe_ring *a = NULL, *b = NULL;
    (void)shmpipe_ring_remove(name, 1);
    OK(shmpipe_ring_create(name, 8, 100, &a));
    OK(shmpipe_ring_open(name, &b));
    shmpipe_producer *tx = NULL, *tx2 = NULL;
    shmpipe_consumer *rx = NULL;
    OK(shmpipe_ring_producer(a, &tx));
    CHECK_RC(shmpipe_ring_producer(b, &tx2), SHMPIPE_ALREADY_CLAIMED);
    CHECK(tx2 == NULL);
    OK(shmpipe_ring_consumer(b, &rx));
    CHECK(shmpipe_producer_capacity(tx) == 8 && shmpipe_consumer_capacity(rx) == 8);
    CHECK(shmpipe_producer_max_message(tx) >= 100);
    CHECK(shmpipe_consumer_max_message(rx) == shmpipe_producer_max_message(tx));

    for (int i = 0; i < 5; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "message %d", i);
        OK(shmpipe_producer_send(tx, msg, (size_t)n, -1));
    }
    shmpipe_info info;
    OK(shmpipe_ring_info(a, &info));
    CHECK(info.tail - info.head == 5);
    CHECK(info.producer.state == SHMPIPE_SIDE_ATTACHED);
    CHECK(info.producer.pid == (uint32_t)getpid() && info.producer.alive);
    CHECK(info.producer.stats.messages == 5);
    for (int i = 0; i < 5; i++) {
        char want[32], buf[128];
        size_t len = 0;
        int n = snprintf(want, sizeof want, "message %d", i);
        OK(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1));
        CHECK(len == (size_t)n && memcmp(buf, want, len) == 0);
    }

    /* A live side blocks removal unless forced. */
    CHECK_RC(shmpipe_ring_remove(name, 0), SHMPIPE_IN_USE);
    CHECK(contains(shmpipe_last_error(), name + 4));
    shmpipe_producer_close(tx);
    shmpipe_consumer_close(rx);
    /* The ring handles can go in any order. */
    shmpipe_ring_close(a);
    OK(shmpipe_ring_info(b, &info));
    CHECK(info.producer.state == SHMPIPE_SIDE_CLOSED);
    CHECK(info.consumer.stats.messages == 5);
    shmpipe_ring_close(b);
    OK(shmpipe_ring_remove(name, 0));
    CHECK_RC(shmpipe_ring_open(name, &a), SHMPIPE_NOT_FOUND);
}

static void test_try_and_timeouts(void) {
    pair p = make_pair("timeouts", 4, 32);
    char buf[64];
    size_t len = 99;
    CHECK_RC(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len), SHMPIPE_EMPTY);
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0), SHMPIPE_EMPTY);
    CHECK(contains(shmpipe_last_error(), "empty"));
    double t0 = now_s();
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 20 * 1000 * 1000),
             SHMPIPE_TIMEOUT);
    double waited = now_s() - t0;
    CHECK(waited >= 0.019 && waited < 5.0);
    CHECK(contains(shmpipe_last_error(), "timed out"));
    const void *msg;
    CHECK_RC(shmpipe_consumer_try_borrow(p.rx, &msg, &len), SHMPIPE_EMPTY);
    CHECK(msg == NULL);

    for (int i = 0; i < 4; i++) OK(shmpipe_producer_try_send(p.tx, "abc", 3));
    CHECK_RC(shmpipe_producer_try_send(p.tx, "abc", 3), SHMPIPE_FULL);
    CHECK(contains(shmpipe_last_error(), "full"));
    void *slot;
    CHECK_RC(shmpipe_producer_try_reserve(p.tx, &slot, &len), SHMPIPE_FULL);
    CHECK(slot == NULL);
    t0 = now_s();
    CHECK_RC(shmpipe_producer_send(p.tx, "abc", 3, 20 * 1000 * 1000), SHMPIPE_TIMEOUT);
    CHECK(now_s() - t0 >= 0.019);
    CHECK_RC(shmpipe_producer_reserve(p.tx, &slot, &len, 1000), SHMPIPE_TIMEOUT);
    drop_pair(&p);
}

static void test_sizes(void) {
    pair p = make_pair("sizes", 4, 48);
    size_t max = shmpipe_producer_max_message(p.tx);
    size_t limit = shmpipe_producer_message_limit(p.tx);
    CHECK(max == 48 && limit == 4 * 64 - 16);
    CHECK(shmpipe_consumer_message_limit(p.rx) == limit);
    CHECK(shmpipe_producer_payload_align(p.tx) == 16);
    char big[4096];
    memset(big, 'x', sizeof big);
    CHECK_RC(shmpipe_producer_send(p.tx, big, limit + 1, 0), SHMPIPE_TOO_LARGE);
    CHECK(contains(shmpipe_last_error(), "240"));
    OK(shmpipe_producer_send(p.tx, big, max, 0));
    char small[8];
    size_t len = 0;
    CHECK_RC(shmpipe_consumer_recv(p.rx, small, sizeof small, &len, 0),
             SHMPIPE_BUFFER_TOO_SMALL);
    CHECK(len == max); /* the length needed */
    CHECK_RC(shmpipe_consumer_recv(p.rx, small, sizeof small, &len, -1),
             SHMPIPE_BUFFER_TOO_SMALL);
    char buf[4096];
    OK(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0)); /* still there */
    CHECK(len == max && memcmp(buf, big, max) == 0);
    drop_pair(&p);
}

static void test_disconnect(void) {
    pair p = make_pair("disconnect", 8, 32);
    char buf[64];
    size_t len;
    OK(shmpipe_producer_send(p.tx, "last", 4, -1));
    shmpipe_producer_close(p.tx);
    p.tx = NULL;
    OK(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, -1)); /* delivered first */
    CHECK(len == 4);
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, -1), SHMPIPE_DISCONNECTED);
    CHECK_RC(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len), SHMPIPE_DISCONNECTED);
    CHECK(contains(shmpipe_last_error(), "disconnected"));
    OK(shmpipe_ring_producer(p.ring, &p.tx)); /* a new producer may come */
    shmpipe_consumer_close(p.rx);
    p.rx = NULL;
    CHECK_RC(shmpipe_producer_send(p.tx, "x", 1, -1), SHMPIPE_DISCONNECTED);
    CHECK_RC(shmpipe_producer_try_send(p.tx, "x", 1), SHMPIPE_DISCONNECTED);
    drop_pair(&p);
}

static void test_reserve_commit(void) {
    pair p = make_pair("reserve", 4, 56);
    void *slot = NULL;
    size_t cap = 0, len = 0;
    char buf[64];
    OK(shmpipe_producer_reserve(p.tx, &slot, &cap, -1));
    CHECK(slot != NULL && cap == shmpipe_producer_max_message(p.tx));
    memcpy(slot, "in place", 8);
    /* Nothing else on this producer while the slot is out. */
    CHECK_RC(shmpipe_producer_send(p.tx, "x", 1, 0), SHMPIPE_BUSY);
    CHECK(contains(shmpipe_last_error(), "commit or abort"));
    CHECK_RC(shmpipe_producer_reserve(p.tx, &slot, &cap, 0), SHMPIPE_BUSY);
    CHECK(slot == NULL);
    /* The getters still work. */
    CHECK(shmpipe_producer_capacity(p.tx) == 4);
    CHECK_RC(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len), SHMPIPE_EMPTY);
    /* reserve again to get the pointer back (the BUSY call cleared it) */
    CHECK_RC(shmpipe_producer_commit(p.tx, cap + 1), SHMPIPE_TOO_LARGE);
    OK(shmpipe_producer_commit(p.tx, 8)); /* still reserved after TOO_LARGE */
    OK(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0));
    CHECK(len == 8 && memcmp(buf, "in place", 8) == 0);
    CHECK_RC(shmpipe_producer_commit(p.tx, 1), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_abort(p.tx), SHMPIPE_INVALID_ARGUMENT);

    /* An aborted slot publishes nothing. */
    OK(shmpipe_producer_try_reserve(p.tx, &slot, &cap));
    memcpy(slot, "dropped", 7);
    OK(shmpipe_producer_abort(p.tx));
    CHECK_RC(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len), SHMPIPE_EMPTY);
    OK(shmpipe_producer_send(p.tx, "next", 4, 0));
    OK(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len));
    CHECK(len == 4 && memcmp(buf, "next", 4) == 0);

    /* Closing with a slot reserved gives it back. */
    OK(shmpipe_producer_reserve(p.tx, &slot, &cap, 0));
    shmpipe_producer_close(p.tx);
    CHECK_RC(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len), SHMPIPE_DISCONNECTED);
    p.tx = NULL;
    drop_pair(&p);
}

/* Pacing (on by default on small slots): a stream taken with it on and
 * with it off arrives whole and in order; a borrowed message keeps the
 * setting from changing under it. */
static void test_pacing(void) {
    pair p = make_pair("pacing", 64, 32);
    CHECK(shmpipe_consumer_pacing(p.rx) == 1);
    char buf[64];
    size_t len = 0;
    for (int round = 0; round < 2; round++) {
        OK(shmpipe_consumer_set_pacing(p.rx, round == 0));
        CHECK(shmpipe_consumer_pacing(p.rx) == (round == 0));
        for (uint64_t i = 0; i < 200; i++) {
            OK(shmpipe_producer_send(p.tx, &i, sizeof i, -1));
            OK(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, -1));
            uint64_t got;
            memcpy(&got, buf, sizeof got);
            CHECK(len == sizeof i && got == i);
        }
    }
    const void *msg = NULL;
    OK(shmpipe_producer_send(p.tx, "held", 4, 0));
    OK(shmpipe_consumer_borrow(p.rx, &msg, &len, -1));
    CHECK_RC(shmpipe_consumer_set_pacing(p.rx, 1), SHMPIPE_BUSY);
    CHECK(shmpipe_consumer_pacing(p.rx) == 0);
    OK(shmpipe_consumer_release(p.rx));
    OK(shmpipe_consumer_set_pacing(p.rx, 7)); /* any non-zero value is on */
    CHECK(shmpipe_consumer_pacing(p.rx) == 1);
    drop_pair(&p);
}

static void test_borrow_release(void) {
    pair p = make_pair("borrow", 4, 56);
    const void *msg = NULL;
    size_t len = 0;
    char buf[64];
    OK(shmpipe_producer_send(p.tx, "first", 5, 0));
    OK(shmpipe_producer_send(p.tx, "second", 6, 0));
    OK(shmpipe_consumer_borrow(p.rx, &msg, &len, -1));
    CHECK(len == 5 && memcmp(msg, "first", 5) == 0);
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0), SHMPIPE_BUSY);
    CHECK(contains(shmpipe_last_error(), "release"));
    const void *again = NULL;
    CHECK_RC(shmpipe_consumer_borrow(p.rx, &again, &len, 0), SHMPIPE_BUSY);
    shmpipe_info info;
    OK(shmpipe_ring_info(p.ring, &info));
    CHECK(info.tail - info.head == 2); /* not released yet */
    OK(shmpipe_consumer_release(p.rx));
    CHECK_RC(shmpipe_consumer_release(p.rx), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_ring_info(p.ring, &info));
    CHECK(info.tail - info.head == 1);
    OK(shmpipe_consumer_try_borrow(p.rx, &msg, &len));
    CHECK(len == 6 && memcmp(msg, "second", 6) == 0);
    /* Closing with a message borrowed releases it. */
    shmpipe_consumer_close(p.rx);
    p.rx = NULL;
    OK(shmpipe_ring_info(p.ring, &info));
    CHECK(info.tail == info.head);
    drop_pair(&p);
}

typedef struct {
    int count;
    char got[32][16];
    size_t lens[32];
    shmpipe_consumer *rx;
    shmpipe_producer *tx;
    int reentry;
} collect;

static void collect_fn(void *ctx, const void *msg, size_t len) {
    collect *c = ctx;
    if (c->rx != NULL) {
        char buf[8];
        size_t n;
        c->reentry = shmpipe_consumer_try_recv(c->rx, buf, sizeof buf, &n);
        shmpipe_consumer_close(c->rx); /* ignored inside the callback */
    }
    memcpy(c->got[c->count], msg, len < 16 ? len : 16);
    c->lens[c->count] = len;
    c->count++;
}

static size_t fill_fn(void *ctx, size_t index, void *slot, size_t cap) {
    collect *c = ctx;
    if (c->tx != NULL) c->reentry = shmpipe_producer_try_send(c->tx, "x", 1);
    int n = snprintf(slot, cap, "fill %zu", index);
    return (size_t)n;
}

static size_t overfill_fn(void *ctx, size_t index, void *slot, size_t cap) {
    (void)ctx;
    (void)slot;
    return index == 1 ? cap + 1 : 1;
}

static void test_batches(void) {
    pair p = make_pair("batch", 8, 56);
    shmpipe_iovec msgs[20];
    char bodies[20][16];
    for (int i = 0; i < 20; i++) {
        int n = snprintf(bodies[i], sizeof bodies[i], "batch %d", i);
        msgs[i].data = bodies[i];
        msgs[i].len = (size_t)n;
    }
    size_t sent = 99, received = 99;
    CHECK_RC(shmpipe_producer_send_batch(p.tx, msgs, 0, &sent, 0), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_producer_send_batch(p.tx, msgs, 20, &sent, 0));
    CHECK(sent == 8); /* as many as there are slots */
    CHECK_RC(shmpipe_producer_send_batch(p.tx, msgs + 8, 12, &sent, 0), SHMPIPE_FULL);
    CHECK(sent == 0);
    shmpipe_info info;
    OK(shmpipe_ring_info(p.ring, &info));
    CHECK(info.tail == 8);

    collect c;
    memset(&c, 0, sizeof c);
    CHECK_RC(shmpipe_consumer_recv_batch(p.rx, 0, collect_fn, &c, &received, 0),
             SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_recv_batch(p.rx, 5, NULL, &c, &received, 0),
             SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_consumer_recv_batch(p.rx, 5, collect_fn, &c, &received, -1));
    CHECK(received == 5 && c.count == 5);
    c.rx = p.rx; /* the next callback calls back into the consumer */
    OK(shmpipe_consumer_recv_batch(p.rx, 100, collect_fn, &c, &received, 0));
    CHECK(received == 3 && c.count == 8);
    CHECK(c.reentry == SHMPIPE_BUSY);
    c.rx = NULL;
    for (int i = 0; i < 8; i++) {
        CHECK(c.lens[i] == msgs[i].len && memcmp(c.got[i], bodies[i], c.lens[i]) == 0);
    }
    CHECK_RC(shmpipe_consumer_recv_batch(p.rx, 4, collect_fn, &c, &received, 0),
             SHMPIPE_EMPTY);
    CHECK_RC(shmpipe_consumer_recv_batch(p.rx, 4, collect_fn, &c, &received, 1000000),
             SHMPIPE_TIMEOUT);

    /* A too-large message stops the batch before it. */
    char big[200];
    memset(big, 'b', sizeof big);
    shmpipe_iovec mixed[3] = {{"ok", 2}, {big, sizeof big}, {"later", 5}};
    OK(shmpipe_producer_send_batch(p.tx, mixed, 3, &sent, 0));
    CHECK(sent == 1);
    CHECK_RC(shmpipe_producer_send_batch(p.tx, mixed + 1, 2, &sent, 0), SHMPIPE_TOO_LARGE);
    shmpipe_iovec null_data[1] = {{NULL, 3}};
    CHECK_RC(shmpipe_producer_send_batch(p.tx, null_data, 1, &sent, 0),
             SHMPIPE_INVALID_ARGUMENT);

    /* Zero-copy fill, with a re-entrant call refused. */
    memset(&c, 0, sizeof c);
    c.tx = p.tx;
    OK(shmpipe_producer_fill_batch(p.tx, 4, fill_fn, &c, &sent, -1));
    CHECK(sent == 4 && c.reentry == SHMPIPE_BUSY);
    CHECK_RC(shmpipe_producer_fill_batch(p.tx, 4, NULL, &c, &sent, 0),
             SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_fill_batch(p.tx, 0, fill_fn, &c, &sent, 0),
             SHMPIPE_INVALID_ARGUMENT);
    /* A length above the slot's capacity publishes nothing of the batch. */
    CHECK_RC(shmpipe_producer_fill_batch(p.tx, 3, overfill_fn, NULL, &sent, 0),
             SHMPIPE_TOO_LARGE);
    CHECK(sent == 0);
    OK(shmpipe_ring_info(p.ring, &info));
    CHECK(info.tail - info.head == 5);
    char buf[64];
    size_t len;
    OK(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0));
    CHECK(len == 2 && memcmp(buf, "ok", 2) == 0);
    for (int i = 0; i < 4; i++) {
        char want[16];
        int n = snprintf(want, sizeof want, "fill %d", i);
        OK(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0));
        CHECK(len == (size_t)n && memcmp(buf, want, len) == 0);
    }
    CHECK_RC(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len), SHMPIPE_EMPTY);
    drop_pair(&p);
}

/* The parent and a forked child over a memfd ring. */
static void test_fork_memfd(void) {
    shmpipe_ring *ring = NULL;
    shmpipe_options o = shmpipe_options_default();
    o.slots = 16;
    o.max_message = 16;
    OK(shmpipe_ring_create_memfd("fork", &o, &ring));
    enum { N = 20000 };
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        shmpipe_producer *tx = NULL;
        if (shmpipe_ring_producer(ring, &tx) != SHMPIPE_OK) _exit(2);
        for (uint64_t i = 0; i < N; i++) {
            if (shmpipe_producer_send(tx, &i, sizeof i, -1) != SHMPIPE_OK) _exit(3);
        }
        shmpipe_producer_close(tx);
        shmpipe_ring_close(ring);
        _exit(0);
    }
    shmpipe_consumer *rx = NULL;
    OK(shmpipe_ring_consumer(ring, &rx));
    for (uint64_t i = 0; i < N; i++) {
        uint64_t got = 0;
        size_t len = 0;
        OK(shmpipe_consumer_recv(rx, &got, sizeof got, &len, 10LL * 1000 * 1000 * 1000));
        CHECK(len == sizeof got && got == i);
    }
    char buf[16];
    size_t len;
    CHECK_RC(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1), SHMPIPE_DISCONNECTED);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(ring);
}

/* A producer that dies without closing: the consumer gets every message it
 * committed, then SHMPIPE_PEER_DIED; a new producer takes over. */
static void test_peer_died(void) {
    shmpipe_ring *ring = NULL;
    shmpipe_options o = shmpipe_options_default();
    o.slots = 8;
    o.heartbeat_ns = 10 * 1000 * 1000;
    OK(shmpipe_ring_create_memfd("died", &o, &ring));
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        shmpipe_producer *tx = NULL;
        if (shmpipe_ring_producer(ring, &tx) != SHMPIPE_OK) _exit(2);
        for (int i = 0; i < 3; i++) shmpipe_producer_send(tx, "m", 1, -1);
        if (write(ready[1], "r", 1) != 1) _exit(4);
        pause(); /* killed here, holding the producer side */
        _exit(3);
    }
    char r;
    CHECK(read(ready[0], &r, 1) == 1);
    close(ready[0]);
    close(ready[1]);
    CHECK(kill(child, SIGKILL) == 0);
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    shmpipe_consumer *rx = NULL;
    OK(shmpipe_ring_consumer(ring, &rx));
    char buf[8];
    size_t len;
    for (int i = 0; i < 3; i++) OK(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, -1));
    CHECK_RC(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, 5LL * 1000 * 1000 * 1000),
             SHMPIPE_PEER_DIED);
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", (int)child);
    CHECK(contains(shmpipe_last_error(), pid_text));
    shmpipe_info info;
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.producer.state == SHMPIPE_SIDE_ATTACHED && !info.producer.alive);
    shmpipe_producer *tx = NULL;
    OK(shmpipe_ring_producer(ring, &tx)); /* taken over */
    OK(shmpipe_producer_send(tx, "after", 5, 0));
    OK(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, 0));
    CHECK(len == 5);
    shmpipe_producer_close(tx);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(ring);
}

static void test_fd_passing(void) {
    shmpipe_ring *ring = NULL, *other = NULL;
    OK(shmpipe_ring_create_memfd("fd", NULL, &ring));
    int fd = -1;
    OK(shmpipe_ring_fd(ring, &fd));
    CHECK(fd >= 0);
    OK(shmpipe_ring_open_fd(fd, NULL, &other));
    CHECK(fcntl(fd, F_GETFD) >= 0); /* duplicated, not taken */
    shmpipe_producer *tx = NULL;
    shmpipe_consumer *rx = NULL;
    OK(shmpipe_ring_producer(ring, &tx));
    OK(shmpipe_ring_consumer(other, &rx));
    OK(shmpipe_producer_send(tx, "via fd", 6, 0));
    char buf[16];
    size_t len;
    OK(shmpipe_consumer_recv(rx, buf, sizeof buf, &len, 0));
    CHECK(len == 6 && memcmp(buf, "via fd", 6) == 0);
    shmpipe_producer_close(tx);
    shmpipe_consumer_close(rx);
    shmpipe_ring_close(other);
    shmpipe_ring_close(ring);
    CHECK_RC(shmpipe_ring_open_fd(1000000, NULL, &other), SHMPIPE_INVALID_ARGUMENT);
}

static void test_sysv_and_file(void) {
    char address[128];
    snprintf(address, sizeof address, "sysv:%d", 0x5e000000 | (int)(getpid() & 0xffffff));
    shmpipe_ring *ring = NULL;
    (void)shmpipe_ring_remove(address, 1);
    OK(shmpipe_ring_create(address, 4, 32, &ring));
    shmpipe_info info;
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.backend == SHMPIPE_BACKEND_SYSV && info.sysv_id >= 0);
    int fd;
    CHECK_RC(shmpipe_ring_fd(ring, &fd), SHMPIPE_UNSUPPORTED);
    shmpipe_ring_close(ring);
    OK(shmpipe_ring_remove(address, 0));

    snprintf(address, sizeof address, "file:/tmp/shmpipe-ffi-test-%d.ring", (int)getpid());
    OK(shmpipe_ring_create(address, 4, 32, &ring));
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.backend == SHMPIPE_BACKEND_FILE);
    shmpipe_ring_close(ring);
    OK(shmpipe_ring_remove(address, 0));
    struct stat st;
    CHECK(stat(address + 5, &st) != 0 && errno == ENOENT);
}

enum { THREAD_N = 200000 };

static void *producer_thread(void *arg) {
    shmpipe_producer *tx = arg;
    for (uint32_t i = 0; i < THREAD_N; i++) {
        if (shmpipe_producer_send(tx, &i, sizeof i, -1) != SHMPIPE_OK) return (void *)1;
    }
    /* This thread's last error is its own. */
    if (shmpipe_producer_send(tx, NULL, 1, 0) != SHMPIPE_INVALID_ARGUMENT) return (void *)2;
    if (!contains(shmpipe_last_error(), "NULL")) return (void *)3;
    shmpipe_producer_close(tx);
    return NULL;
}

static void test_threads(void) {
    pair p = make_pair("threads", 64, 8);
    char buf[8];
    size_t len;
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, 0), SHMPIPE_EMPTY);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, producer_thread, p.tx) == 0);
    p.tx = NULL; /* moved to the thread */
    for (uint32_t i = 0; i < THREAD_N; i++) {
        uint32_t got;
        OK(shmpipe_consumer_recv(p.rx, &got, sizeof got, &len, -1));
        CHECK(len == sizeof got && got == i);
    }
    void *ret = (void *)9;
    CHECK(pthread_join(t, &ret) == 0 && ret == NULL);
    CHECK_RC(shmpipe_consumer_recv(p.rx, buf, sizeof buf, &len, -1), SHMPIPE_DISCONNECTED);
    CHECK(contains(shmpipe_last_error(), "disconnected")); /* not the thread's */
    drop_pair(&p);
}

static int readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static void test_readiness_fd(void) {
    pair p = make_pair("readiness", 2, 32);
    char buf[64];
    size_t len;
    int fd = -1, armed = -1, fd_tx = -1;
    CHECK_RC(shmpipe_consumer_readiness_fd(NULL, &fd), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_consumer_arm(p.rx, NULL), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_consumer_readiness_fd(p.rx, &fd));
    CHECK(fd >= 0);
    OK(shmpipe_consumer_arm(p.rx, &armed));
    CHECK(armed == 1); /* empty: wait for the descriptor */
    CHECK(!readable(fd, 20));
    OK(shmpipe_producer_send(p.tx, "ping", 4, 0));
    CHECK(readable(fd, 1000)); /* the send signalled it */
    OK(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len));
    CHECK(len == 4 && memcmp(buf, "ping", 4) == 0);
    OK(shmpipe_producer_send(p.tx, "x", 1, 0));
    OK(shmpipe_consumer_arm(p.rx, &armed));
    CHECK(armed == 0); /* a message is waiting: do not wait */
    /* The producer side: full ring, arm, a receive frees a slot. */
    OK(shmpipe_producer_send(p.tx, "y", 1, 0));
    OK(shmpipe_producer_readiness_fd(p.tx, &fd_tx));
    OK(shmpipe_producer_arm(p.tx, &armed));
    CHECK(armed == 1);
    OK(shmpipe_consumer_try_recv(p.rx, buf, sizeof buf, &len));
    CHECK(readable(fd_tx, 1000));
    drop_pair(&p);
}

static void test_waitset(void) {
    pair a = make_pair("ws-a", 4, 32), b = make_pair("ws-b", 4, 32);
    shmpipe_waitset *ws = NULL;
    uint64_t tokens[8];
    size_t n = 99, len;
    char buf[64];
    OK(shmpipe_waitset_create(&ws));
    OK(shmpipe_waitset_add_consumer(ws, a.rx, 10));
    OK(shmpipe_waitset_add_consumer(ws, b.rx, 20));
    CHECK_RC(shmpipe_waitset_add_consumer(ws, b.rx, 20), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_waitset_wait(ws, 20 * 1000 * 1000, tokens, 8, &n)); /* nothing: timeout */
    CHECK(n == 0);
    OK(shmpipe_producer_send(b.tx, "to b", 4, 0));
    OK(shmpipe_waitset_wait(ws, -1, tokens, 8, &n));
    CHECK(n == 1 && tokens[0] == 20);
    OK(shmpipe_consumer_try_recv(b.rx, buf, sizeof buf, &len));
    CHECK(len == 4 && memcmp(buf, "to b", 4) == 0);
    OK(shmpipe_waitset_remove(ws, 20));
    CHECK_RC(shmpipe_waitset_remove(ws, 20), SHMPIPE_INVALID_ARGUMENT);
    OK(shmpipe_producer_send(b.tx, "unseen", 6, 0));
    OK(shmpipe_waitset_wait(ws, 10 * 1000 * 1000, tokens, 8, &n));
    CHECK(n == 0); /* b is no longer a member */
    OK(shmpipe_producer_send(a.tx, "to a", 4, 0));
    OK(shmpipe_waitset_wait(ws, -1, tokens, 8, &n));
    CHECK(n == 1 && tokens[0] == 10);
    shmpipe_waitset_close(ws);
    shmpipe_waitset_close(NULL);
    drop_pair(&a);
    drop_pair(&b);
}

/* Several forked children race shmpipe_ring_open_or_create on one name:
 * exactly one creates, all end up on the same ring; a child started before
 * the ring exists waits for it (wait_for_creation_ns). */
static void test_open_or_create_race(void) {
    const char *name = ring_name("ooc");
    (void)shmpipe_ring_remove(name, 1);
    enum { KIDS = 6 };
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t kids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0);
        if (kids[k] == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) != 0) _exit(2); /* all start at once */
            shmpipe_options o = shmpipe_options_default();
            o.slots = 64;
            o.max_message = 100;
            o.check_geometry = 1;
            shmpipe_ring *r = NULL;
            if (shmpipe_ring_open_or_create(name, &o, &r) != SHMPIPE_OK) _exit(3);
            shmpipe_info info;
            if (shmpipe_ring_info(r, &info) != SHMPIPE_OK || info.slots != 64) _exit(4);
            /* Everyone stamps the ring's creator pid: all must agree. */
            int created = shmpipe_ring_created(r);
            shmpipe_ring_close(r);
            _exit(created ? 10 : 11);
        }
    }
    close(go[0]);
    close(go[1]); /* EOF: go */
    int creators = 0, openers = 0;
    for (int k = 0; k < KIDS; k++) {
        int status = 0;
        CHECK(waitpid(kids[k], &status, 0) == kids[k]);
        CHECK(WIFEXITED(status));
        if (WEXITSTATUS(status) == 10) creators++;
        if (WEXITSTATUS(status) == 11) openers++;
    }
    CHECK(creators == 1 && openers == KIDS - 1);
    shmpipe_ring *r = NULL;
    OK(shmpipe_ring_open(name, &r));
    CHECK(!shmpipe_ring_created(r));
    shmpipe_info info;
    OK(shmpipe_ring_info(r, &info));
    int found = 0;
    for (int k = 0; k < KIDS; k++) found += info.creator_pid == (uint32_t)kids[k];
    CHECK(found == 1);
    shmpipe_ring_close(r);
    OK(shmpipe_ring_remove(name, 0));

    /* The flag on create_with / open_with does the same. */
    shmpipe_options o = shmpipe_options_default();
    o.open_or_create = 1;
    shmpipe_ring *a = NULL, *b = NULL;
    OK(shmpipe_ring_open_with(name, &o, &a));
    OK(shmpipe_ring_create_with(name, &o, &b));
    CHECK(shmpipe_ring_created(a) && !shmpipe_ring_created(b));
    CHECK(!shmpipe_ring_created(NULL));
    shmpipe_ring_close(a);
    shmpipe_ring_close(b);
    OK(shmpipe_ring_remove(name, 0));

    /* A client before its server: waits, then finds the ring. */
    pid_t waiter = fork();
    CHECK(waiter >= 0);
    if (waiter == 0) {
        shmpipe_options w = shmpipe_options_default();
        w.wait_for_creation_ns = 20LL * 1000 * 1000 * 1000;
        shmpipe_ring *r2 = NULL;
        int rc = shmpipe_ring_open_with(name, &w, &r2);
        shmpipe_ring_close(r2);
        _exit(rc == SHMPIPE_OK ? 0 : 5);
    }
    usleep(100 * 1000);
    OK(shmpipe_ring_create(name, 8, 32, &a));
    int status = 0;
    CHECK(waitpid(waiter, &status, 0) == waiter);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmpipe_ring_close(a);
    OK(shmpipe_ring_remove(name, 0));
    /* Waiting in vain ends with NOT_FOUND. */
    shmpipe_options w = shmpipe_options_default();
    w.wait_for_creation_ns = 30 * 1000 * 1000;
    CHECK_RC(shmpipe_ring_open_with(name, &w, &a), SHMPIPE_NOT_FOUND);
}

static void test_geometry_mismatch(void) {
    const char *name = ring_name("geometry");
    (void)shmpipe_ring_remove(name, 1);
    shmpipe_ring *ring = NULL, *other = NULL;
    shmpipe_options o = shmpipe_options_default();
    o.slots = 16;
    o.slot_size = 128;
    OK(shmpipe_ring_create_with(name, &o, &ring));
    /* Same geometry, checked: fine. */
    o.check_geometry = 1;
    OK(shmpipe_ring_open_with(name, &o, &other));
    shmpipe_ring_close(other);
    /* Another slot count: refused, with both geometries in the message. */
    o.slots = 1024;
    CHECK_RC(shmpipe_ring_open_with(name, &o, &other), SHMPIPE_GEOMETRY_MISMATCH);
    CHECK(other == NULL);
    CHECK(contains(shmpipe_last_error(), "1024") && contains(shmpipe_last_error(), "16"));
    CHECK(strcmp(shmpipe_status_name(SHMPIPE_GEOMETRY_MISMATCH), "SHMPIPE_GEOMETRY_MISMATCH") == 0);
    o.open_or_create = 1;
    CHECK_RC(shmpipe_ring_open_with(name, &o, &other), SHMPIPE_GEOMETRY_MISMATCH);
    CHECK_RC(shmpipe_ring_open_or_create(name, &o, &other), SHMPIPE_GEOMETRY_MISMATCH);
    /* Another slot size via max_message. */
    o = shmpipe_options_default();
    o.slots = 16;
    o.max_message = 1000;
    o.check_geometry = 1;
    CHECK_RC(shmpipe_ring_open_with(name, &o, &other), SHMPIPE_GEOMETRY_MISMATCH);
    /* Without the check any geometry opens, as before. */
    o.check_geometry = 0;
    OK(shmpipe_ring_open_with(name, &o, &other));
    shmpipe_info info;
    OK(shmpipe_ring_info(other, &info));
    CHECK(info.slots == 16 && info.slot_size == 128);
    shmpipe_ring_close(other);
    shmpipe_ring_close(ring);
    OK(shmpipe_ring_remove(name, 0));
}

/* 1 MiB messages through 4 KiB slots: send/recv, borrow, reserve_len. */
static void test_large_messages(void) {
    const char *name = ring_name("large");
    (void)shmpipe_ring_remove(name, 1);
    enum { MIB = 1 << 20 };
    shmpipe_options o = shmpipe_options_default();
    o.slots = 512;
    o.slot_size = 4096;
    o.message_limit = MIB;
    o.payload_align = 64;
    shmpipe_ring *ring = NULL;
    OK(shmpipe_ring_create_with(name, &o, &ring));
    shmpipe_info info;
    OK(shmpipe_ring_info(ring, &info));
    CHECK(info.message_limit == MIB && info.payload_align == 64);
    CHECK(info.max_message == 4096 - 64);
    shmpipe_producer *tx = NULL;
    shmpipe_consumer *rx = NULL;
    OK(shmpipe_ring_producer(ring, &tx));
    OK(shmpipe_ring_consumer(ring, &rx));
    CHECK(shmpipe_producer_message_limit(tx) == MIB);
    CHECK(shmpipe_consumer_payload_align(rx) == 64);
    unsigned char *msg = malloc(MIB + 1), *buf = malloc(MIB);
    CHECK(msg != NULL && buf != NULL);
    for (size_t i = 0; i <= MIB; i++) msg[i] = (unsigned char)(i * 7 + i / 4096);

    size_t len = 0;
    OK(shmpipe_producer_send(tx, msg, MIB, 0));
    CHECK_RC(shmpipe_producer_send(tx, msg, MIB + 1, 0), SHMPIPE_TOO_LARGE);
    CHECK(contains(shmpipe_last_error(), "1048576"));
    /* Too small a buffer: the message stays, *len says what it needs. */
    CHECK_RC(shmpipe_consumer_recv(rx, buf, 4096, &len, 0), SHMPIPE_BUFFER_TOO_SMALL);
    CHECK(len == MIB);
    OK(shmpipe_consumer_recv(rx, buf, MIB, &len, 0));
    CHECK(len == MIB && memcmp(buf, msg, MIB) == 0);

    /* Zero-copy both ways: reserve_len, then borrow. */
    void *slot = NULL;
    OK(shmpipe_producer_reserve_len(tx, MIB, &slot, -1));
    CHECK(slot != NULL && (uintptr_t)slot % 64 == 0);
    CHECK_RC(shmpipe_producer_send(tx, "x", 1, 0), SHMPIPE_BUSY);
    memcpy(slot, msg + 1, MIB);
    CHECK_RC(shmpipe_producer_commit(tx, MIB + 1), SHMPIPE_TOO_LARGE); /* still reserved */
    OK(shmpipe_producer_commit(tx, MIB - 10));
    const void *view = NULL;
    OK(shmpipe_consumer_borrow(rx, &view, &len, 0));
    CHECK(len == MIB - 10 && (uintptr_t)view % 64 == 0);
    CHECK(memcmp(view, msg + 1, MIB - 10) == 0);
    OK(shmpipe_consumer_release(rx));
    CHECK_RC(shmpipe_producer_reserve_len(tx, MIB + 1, &slot, 0), SHMPIPE_TOO_LARGE);
    CHECK(slot == NULL);
    OK(shmpipe_producer_reserve_len(tx, 10, &slot, 0)); /* one slot */
    OK(shmpipe_producer_abort(tx));
    CHECK_RC(shmpipe_consumer_try_recv(rx, buf, MIB, &len), SHMPIPE_EMPTY);

    /* Streaming across processes: a forked consumer, many large messages
     * of varying sizes (wrapping the ring), checked byte for byte. */
    shmpipe_consumer_close(rx);
    enum { COUNT = 40 };
    int claimed[2];
    CHECK(pipe(claimed) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        shmpipe_consumer *c = NULL;
        if (shmpipe_ring_consumer(ring, &c) != SHMPIPE_OK) _exit(2);
        if (write(claimed[1], "c", 1) != 1) _exit(5);
        for (int i = 0; i < COUNT; i++) {
            size_t want = (size_t)MIB - (size_t)i * 12345;
            size_t n = 0;
            if (shmpipe_consumer_recv(c, buf, MIB, &n, 20LL * 1000 * 1000 * 1000) != SHMPIPE_OK)
                _exit(3);
            if (n != want || memcmp(buf, msg + i, n) != 0) _exit(4);
        }
        shmpipe_consumer_close(c);
        _exit(0);
    }
    char c;
    CHECK(read(claimed[0], &c, 1) == 1); /* the consumer is there */
    close(claimed[0]);
    close(claimed[1]);
    for (int i = 0; i < COUNT; i++) {
        size_t n = (size_t)MIB - (size_t)i * 12345;
        OK(shmpipe_producer_send(tx, msg + i, n, 20LL * 1000 * 1000 * 1000));
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(msg);
    free(buf);
    shmpipe_producer_close(tx);
    shmpipe_ring_close(ring);
    OK(shmpipe_ring_remove(name, 0));
}

static char *socket_path(const char *tag) {
    static char path[128];
    snprintf(path, sizeof path, "/tmp/shmpipe-ffi-test-%d-%s.sock", (int)getpid(), tag);
    return path;
}

/* The server's answer: the request with every byte + 1, and its length. */
static size_t plus_one(void *ctx, const void *req, size_t len, void *reply, size_t cap) {
    if (ctx != NULL) (*(uint64_t *)ctx)++;
    if (len > cap) return cap + 1; /* cannot happen: reply ring = request ring */
    const unsigned char *in = req;
    unsigned char *out = reply;
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)(in[i] + 1);
    return len;
}

/* A client process: `calls` calls, each checked; exit 0 if all were right. */
static void rpc_client(const char *path, int calls) {
    shmpipe_duplex *d = NULL;
    if (shmpipe_connect(path, NULL, &d) != SHMPIPE_OK) _exit(2);
    uint32_t pid = 0;
    if (shmpipe_duplex_peer_cred(d, &pid, NULL, NULL) != SHMPIPE_OK || pid != (uint32_t)getppid())
        _exit(3);
    for (int i = 0; i < calls; i++) {
        char req[64], reply[256];
        int n = snprintf(req, sizeof req, "%d call %d", (int)getpid(), i);
        size_t got = 0;
        if (shmpipe_duplex_call(d, req, (size_t)n, reply, sizeof reply, &got,
                                30LL * 1000 * 1000 * 1000) != SHMPIPE_OK)
            _exit(4);
        if (got != (size_t)n) _exit(5);
        for (int k = 0; k < n; k++)
            if ((unsigned char)reply[k] != (unsigned char)(req[k] + 1)) _exit(6);
    }
    shmpipe_duplex_close(d);
    _exit(0);
}

/* A handler that calls back into its own duplex (refused: BUSY) and then
 * returns more than the reply slot holds (no reply: TOO_LARGE). */
typedef struct {
    shmpipe_duplex *d;
    int inner_rc;
} reentry;

static size_t reenter_then_overflow(void *ctx, const void *req, size_t len, void *reply,
                                    size_t cap) {
    reentry *r = ctx;
    (void)req;
    (void)len;
    (void)reply;
    r->inner_rc = shmpipe_duplex_send(r->d, "x", 1, 0);
    return cap + 1;
}

/* One server thread, one wait set: the listener and every connection;
 * 4 client processes x 1000 calls, then a client killed mid-session. */
static void test_listener_calls(void) {
    const char *path = socket_path("rpc");
    unlink(path);
    shmpipe_options o = shmpipe_options_default();
    o.slots = 16;
    o.max_message = 248;
    shmpipe_listener *l = NULL;
    OK(shmpipe_listener_bind(path, &o, &l));
    CHECK(strcmp(shmpipe_listener_path(l), path) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    shmpipe_duplex *none = (shmpipe_duplex *)1;
    CHECK_RC(shmpipe_listener_accept_timeout(l, 0, &none), SHMPIPE_EMPTY);
    CHECK(none == NULL);
    CHECK_RC(shmpipe_listener_accept_timeout(l, 1000 * 1000, &none), SHMPIPE_TIMEOUT);

    enum { CLIENTS = 4, CALLS = 1000 };
    pid_t kids[CLIENTS];
    for (int k = 0; k < CLIENTS; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0);
        if (kids[k] == 0) rpc_client(path, CALLS);
    }
    shmpipe_waitset *ws = NULL;
    OK(shmpipe_waitset_create(&ws));
    OK(shmpipe_waitset_add_listener(ws, l, 0));
    shmpipe_duplex *conns[CLIENTS] = {0};
    int accepted = 0, finished = 0;
    uint64_t served = 0;
    double t0 = now_s();
    while (finished < CLIENTS) {
        CHECK(now_s() - t0 < 120); /* a watchdog, not a timing check */
        uint64_t ready[CLIENTS + 1];
        size_t n = 0;
        OK(shmpipe_waitset_wait(ws, 1000LL * 1000 * 1000, ready, CLIENTS + 1, &n));
        for (size_t i = 0; i < n; i++) {
            if (ready[i] == 0) {
                shmpipe_duplex *d = NULL;
                int rc = shmpipe_listener_accept_timeout(l, 0, &d);
                if (rc == SHMPIPE_EMPTY) continue;
                OK(rc);
                CHECK(accepted < CLIENTS);
                uint32_t pid = 0, uid = 1;
                OK(shmpipe_duplex_peer_cred(d, &pid, &uid, NULL));
                CHECK(uid == (uint32_t)getuid());
                int known = 0;
                for (int k = 0; k < CLIENTS; k++) known += pid == (uint32_t)kids[k];
                CHECK(known == 1);
                conns[accepted] = d;
                OK(shmpipe_waitset_add_duplex(ws, d, (uint64_t)accepted + 1));
                accepted++;
                continue;
            }
            int k = (int)ready[i] - 1;
            for (;;) {
                int did = 0;
                int rc = shmpipe_duplex_try_serve(conns[k], plus_one, &served, &did);
                if (rc == SHMPIPE_DISCONNECTED) {
                    OK(shmpipe_waitset_remove(ws, ready[i]));
                    shmpipe_duplex_close(conns[k]);
                    conns[k] = NULL;
                    finished++;
                    break;
                }
                OK(rc);
                if (!did) break;
            }
        }
    }
    CHECK(served == (uint64_t)CLIENTS * CALLS);
    for (int k = 0; k < CLIENTS; k++) {
        int status = 0;
        CHECK(waitpid(kids[k], &status, 0) == kids[k]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    shmpipe_waitset_close(ws);

    /* A client killed while connected: the server's serve ends with
     * PEER_DIED naming its pid, and the listener goes on. */
    int ready_pipe[2];
    CHECK(pipe(ready_pipe) == 0);
    pid_t victim = fork();
    CHECK(victim >= 0);
    if (victim == 0) {
        shmpipe_duplex *d = NULL;
        if (shmpipe_connect(path, NULL, &d) != SHMPIPE_OK) _exit(2);
        char reply[16];
        size_t got = 0;
        if (shmpipe_duplex_call(d, "a", 1, reply, sizeof reply, &got, -1) != SHMPIPE_OK) _exit(3);
        if (write(ready_pipe[1], "r", 1) != 1) _exit(4);
        pause(); /* killed here */
        _exit(5);
    }
    shmpipe_duplex *d = NULL;
    OK(shmpipe_listener_accept_timeout(l, 30LL * 1000 * 1000 * 1000, &d));
    char r;
    uint64_t count = 0;
    int did = 0;
    while (!did) OK(shmpipe_duplex_try_serve(d, plus_one, NULL, &did));
    CHECK(read(ready_pipe[0], &r, 1) == 1);
    close(ready_pipe[0]);
    close(ready_pipe[1]);
    CHECK(kill(victim, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(victim, &status, 0) == victim);
    CHECK_RC(shmpipe_duplex_serve(d, plus_one, NULL, &count), SHMPIPE_PEER_DIED);
    CHECK(count == 0);
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", (int)victim);
    CHECK(contains(shmpipe_last_error(), pid_text));
    shmpipe_duplex_close(d);

    /* Send/recv on a duplex, and a blocking serve ended by the client's
     * orderly close. */
    pid_t plain = fork();
    CHECK(plain >= 0);
    if (plain == 0) {
        shmpipe_duplex *c = NULL;
        if (shmpipe_connect(path, NULL, &c) != SHMPIPE_OK) _exit(2);
        char buf[64];
        size_t got = 0;
        if (shmpipe_duplex_send(c, "ping", 4, -1) != SHMPIPE_OK) _exit(3);
        if (shmpipe_duplex_recv(c, buf, sizeof buf, &got, -1) != SHMPIPE_OK) _exit(4);
        if (got != 4 || memcmp(buf, "pong", 4) != 0) _exit(5);
        for (int i = 0; i < 10; i++)
            if (shmpipe_duplex_call(c, "xyz", 3, buf, sizeof buf, &got, -1) != SHMPIPE_OK)
                _exit(6);
        if (shmpipe_duplex_call(c, "xyz", 3, buf, 1, &got, -1) != SHMPIPE_BUFFER_TOO_SMALL ||
            got != 3)
            _exit(7);
        if (shmpipe_duplex_call(c, "x", 1, buf, sizeof buf, &got, 0) != SHMPIPE_INVALID_ARGUMENT)
            _exit(8);
        shmpipe_duplex_close(c);
        _exit(0);
    }
    OK(shmpipe_listener_accept(l, &d));
    char buf[64];
    size_t got = 0;
    OK(shmpipe_duplex_recv(d, buf, sizeof buf, &got, 30LL * 1000 * 1000 * 1000));
    CHECK(got == 4 && memcmp(buf, "ping", 4) == 0);
    OK(shmpipe_duplex_send(d, "pong", 4, -1));
    CHECK(shmpipe_duplex_max_message(d) >= 248);
    OK(shmpipe_duplex_serve(d, plus_one, NULL, &count));
    CHECK(count == 11);
    CHECK(waitpid(plain, &status, 0) == plain);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmpipe_duplex_close(d);

    /* A handler that re-enters its duplex, then overflows its reply. */
    pid_t caller = fork();
    CHECK(caller >= 0);
    if (caller == 0) {
        shmpipe_duplex *c = NULL;
        char out[64];
        size_t got = 0;
        if (shmpipe_connect(path, NULL, &c) != SHMPIPE_OK) _exit(2);
        if (shmpipe_duplex_call(c, "a", 1, out, sizeof out, &got, 300 * 1000 * 1000) !=
            SHMPIPE_TIMEOUT)
            _exit(3); /* no reply came */
        if (shmpipe_duplex_call(c, "b", 1, out, sizeof out, &got, -1) != SHMPIPE_OK || got != 1 ||
            out[0] != 'c')
            _exit(4);
        shmpipe_duplex_close(c);
        _exit(0);
    }
    OK(shmpipe_listener_accept(l, &d));
    reentry re = {d, 0};
    int rc;
    do {
        did = 0;
        rc = shmpipe_duplex_try_serve(d, reenter_then_overflow, &re, &did);
    } while (rc == SHMPIPE_OK && !did);
    CHECK_RC(rc, SHMPIPE_TOO_LARGE);
    CHECK(re.inner_rc == SHMPIPE_BUSY);
    OK(shmpipe_duplex_serve(d, plus_one, NULL, &count)); /* "b", then the close */
    CHECK(count == 1);
    shmpipe_duplex_close(d);
    CHECK(waitpid(caller, &status, 0) == caller);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* A second bind at a live listener's path is refused; after close the
     * socket file is gone and nothing listens. */
    shmpipe_listener *again = NULL;
    CHECK_RC(shmpipe_listener_bind(path, NULL, &again), SHMPIPE_IN_USE);
    shmpipe_listener_close(l);
    CHECK(access(path, F_OK) != 0);
    CHECK_RC(shmpipe_connect(path, NULL, &d), SHMPIPE_NOT_FOUND);
}

static void test_session_null_arguments(void) {
    shmpipe_listener *l = (shmpipe_listener *)1;
    shmpipe_duplex *d = (shmpipe_duplex *)1;
    char buf[8];
    size_t len = 0;
    int did = 0, fd = -1;
    CHECK_RC(shmpipe_ring_open_or_create(NULL, NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_producer_reserve_len(NULL, 1, NULL, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_producer_message_limit(NULL) == 0 && shmpipe_consumer_message_limit(NULL) == 0);
    CHECK(shmpipe_producer_payload_align(NULL) == 0 && shmpipe_consumer_payload_align(NULL) == 0);
    CHECK_RC(shmpipe_listener_bind(NULL, NULL, &l), SHMPIPE_INVALID_ARGUMENT);
    CHECK(l == NULL);
    CHECK_RC(shmpipe_listener_bind("/tmp/x.sock", NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_listener_accept(NULL, &d), SHMPIPE_INVALID_ARGUMENT);
    CHECK(d == NULL);
    CHECK_RC(shmpipe_listener_accept_timeout(NULL, 0, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_listener_fd(NULL, &fd), SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_listener_path(NULL) == NULL);
    shmpipe_listener_close(NULL);
    CHECK_RC(shmpipe_connect(NULL, NULL, &d), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_send(NULL, "x", 1, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_recv(NULL, buf, sizeof buf, &len, 0), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_call(NULL, "x", 1, buf, sizeof buf, &len, -1),
             SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_try_serve(NULL, plus_one, NULL, &did), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_serve(NULL, plus_one, NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_peer_cred(NULL, NULL, NULL, NULL), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_readiness_fd(NULL, &fd), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_duplex_arm(NULL, &did), SHMPIPE_INVALID_ARGUMENT);
    CHECK(shmpipe_duplex_max_message(NULL) == 0);
    shmpipe_duplex_close(NULL);
    CHECK_RC(shmpipe_waitset_add_duplex(NULL, NULL, 1), SHMPIPE_INVALID_ARGUMENT);
    CHECK_RC(shmpipe_waitset_add_listener(NULL, NULL, 1), SHMPIPE_INVALID_ARGUMENT);
    CHECK(strcmp(shmpipe_status_name(SHMPIPE_PROTOCOL), "SHMPIPE_PROTOCOL") == 0);
}

int main(void) {
    struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"names_and_version", test_names_and_version},
        {"null_arguments", test_null_arguments},
        {"addresses_and_options", test_addresses_and_options},
        {"send_recv_claims_remove", test_send_recv_claims_remove},
        {"try_and_timeouts", test_try_and_timeouts},
        {"sizes", test_sizes},
        {"disconnect", test_disconnect},
        {"reserve_commit", test_reserve_commit},
        {"borrow_release", test_borrow_release},
        {"pacing", test_pacing},
        {"batches", test_batches},
        {"fork_memfd", test_fork_memfd},
        {"peer_died", test_peer_died},
        {"fd_passing", test_fd_passing},
        {"sysv_and_file", test_sysv_and_file},
        {"threads", test_threads},
        {"readiness_fd", test_readiness_fd},
        {"waitset", test_waitset},
        {"open_or_create_race", test_open_or_create_race},
        {"geometry_mismatch", test_geometry_mismatch},
        {"large_messages", test_large_messages},
        {"listener_calls", test_listener_calls},
        {"session_null_arguments", test_session_null_arguments},
    };
    size_t n = sizeof tests / sizeof tests[0];
    for (size_t i = 0; i < n; i++) {
        int before = checks;
        tests[i].run();
        printf("test %-26s ok (%d checks)\n", tests[i].name, checks - before);
    }
    printf("%zu C tests passed, %d checks\n", n, checks);
    return 0;
}
