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
 * exist yet (the library's open-or-create: exactly one of the peers
 * starting at once creates it). */
static inline shmpipe_ring *open_or_create(const char *address, const shmpipe_options *opts) {
    shmpipe_ring *ring = NULL;
    check(shmpipe_ring_open_or_create(address, opts, &ring), address);
    return ring;
}

#endif
