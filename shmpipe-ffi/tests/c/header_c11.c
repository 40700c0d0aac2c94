/* The header alone, as strict C11: `cc -std=c11 -Wall -Wextra -Werror
 * -pedantic -c` (make tests). Uses a few declarations so that a broken
 * prototype or type would not go unnoticed. */
#include "shmpipe.h"

_Static_assert(SHMPIPE_OK == 0, "SHMPIPE_OK is 0");
_Static_assert(SHMPIPE_TIMEOUT < 0, "statuses are negative");
_Static_assert(sizeof(shmpipe_iovec) == sizeof(void *) + sizeof(size_t), "iovec layout");

int header_c11_probe(void);

int header_c11_probe(void) {
    shmpipe_options o = shmpipe_options_default();
    shmpipe_info info;
    shmpipe_ring *ring = NULL;
    shmpipe_fill_fn fill = NULL;
    shmpipe_read_fn read = NULL;
    (void)fill;
    (void)read;
    (void)info;
    return shmpipe_ring_create_with("shm:never-created", &o, &ring);
}
