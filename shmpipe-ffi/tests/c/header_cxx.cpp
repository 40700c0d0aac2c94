// The header included from C++: `g++ -std=c++11 -Wall -Wextra -Werror
// -pedantic -c` (make tests). The declarations must be extern "C" and
// usable without casts.
#include "shmpipe.h"

#include <cstring>

static_assert(SHMPIPE_OK == 0, "SHMPIPE_OK is 0");

extern "C" int header_cxx_probe();

int header_cxx_probe() {
    shmpipe_options o = shmpipe_options_default();
    o.wait = SHMPIPE_WAIT_SPIN;
    shmpipe_ring *ring = nullptr;
    int rc = shmpipe_ring_create_with("shm:never-created", &o, &ring);
    if (rc != SHMPIPE_OK) {
        return static_cast<int>(std::strlen(shmpipe_last_error()));
    }
    shmpipe_producer *tx = nullptr;
    rc = shmpipe_ring_producer(ring, &tx);
    const char msg[] = "hi";
    if (rc == SHMPIPE_OK) {
        rc = shmpipe_producer_send(tx, msg, sizeof msg, -1);
    }
    shmpipe_producer_close(tx);
    shmpipe_ring_close(ring);
    return rc;
}
