/* What every example needs: stop with the library's own words on failure,
 * and open a ring or create it, whichever side comes first. */
#ifndef SHMPIPE_EXAMPLE_H
#define SHMPIPE_EXAMPLE_H

#include <stdio.h>
#include <stdlib.h>

#include "shmpipe.h"

/* Exits with a message when `rc` is not SHMPIPE_OK. */
static inline void check(int rc, const char *what) {
    if (rc != SHMPIPE_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, shmpipe_status_name(rc), shmpipe_last_error());
        exit(1);
    }
}

/* Opens the ring at `address`, or creates it with `opts` if it does not
 * exist yet; tolerates the peer creating it at the same moment. */
static inline shmpipe_ring *open_or_create(const char *address, const shmpipe_options *opts) {
    shmpipe_ring *ring = NULL;
    int rc = shmpipe_ring_open_with(address, opts, &ring);
    if (rc == SHMPIPE_NOT_FOUND) {
        rc = shmpipe_ring_create_with(address, opts, &ring);
        if (rc == SHMPIPE_ALREADY_EXISTS) rc = shmpipe_ring_open_with(address, opts, &ring);
    }
    check(rc, address);
    return ring;
}

#endif
