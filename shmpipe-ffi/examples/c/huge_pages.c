/*
 * Huge-page shared memory, redone with shmpipe.
 *
 * Seed: ../shared/seeds/000_22a4d8898b801211.txt (the huge-page sections:
 * `echo 20 > /proc/sys/vm/nr_hugepages`, shmget with SHM_HUGETLB and a
 * hand-defined SHM_HUGE_2MB, or mmap of a file on a hugetlbfs mount).
 *
 * One option asks for huge pages on any backend; PREFER falls back to base
 * pages and says why, REQUIRE fails with a message saying what to reserve
 * or mount. The ring reports the page size it really got.
 *
 *   ./huge_pages [ADDRESS [require]]        (default: an anonymous memfd ring)
 */
#include <string.h>

#include "example.h"

int main(int argc, char **argv) {
    shmpipe_options opts = shmpipe_options_default();
    opts.slots = 4096;
    opts.slot_size = 1024; /* 4 MiB: two 2 MiB pages */
    opts.huge_pages = argc > 2 && strcmp(argv[2], "require") == 0 ? SHMPIPE_HUGE_PAGES_REQUIRE
                                                                 : SHMPIPE_HUGE_PAGES_PREFER;
    opts.populate = 1;
    shmpipe_ring *ring = NULL;
    int rc = argc > 1 ? shmpipe_ring_create_with(argv[1], &opts, &ring)
                      : shmpipe_ring_create_memfd("huge_pages", &opts, &ring);
    if (rc == SHMPIPE_HUGE_PAGES_UNAVAILABLE) {
        printf("no huge pages: %s\n", shmpipe_last_error());
        return 2;
    }
    check(rc, "creating the ring");
    shmpipe_info info;
    check(shmpipe_ring_info(ring, &info), "reading the ring's info");
    printf("ring %s: %llu bytes mapped, page size %llu KiB\n", shmpipe_ring_address(ring),
           (unsigned long long)info.mapped_len, (unsigned long long)(info.page_size >> 10));
    const char *why = shmpipe_ring_huge_page_fallback(ring);
    if (why != NULL) printf("fell back to base pages: %s\n", why);
    shmpipe_ring_close(ring);
    if (argc > 1) check(shmpipe_ring_remove(argv[1], 0), "removing the ring");
    return 0;
}
