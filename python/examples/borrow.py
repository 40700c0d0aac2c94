"""Read messages in place: a fixed header parsed straight from shared memory.

    python borrow.py

A child process sends records (a 4-byte id, a 4-byte float, a payload);
the parent parses each header from the borrowed view without copying the
message, and copies only the payloads it keeps.
"""

import multiprocessing
import os
import struct

import shmpipe

HEADER = struct.Struct("<If")


def producer(address, count):
    with shmpipe.Ring.open(address).producer() as tx:
        for i in range(count):
            tx.send(HEADER.pack(i, i / 2) + b"payload %d" % i)


def main():
    address = f"shm:borrow-example-{os.getpid()}"
    ring = shmpipe.Ring.create(address, slots=64, max_message=248)
    try:
        rx = ring.consumer()
        child = multiprocessing.Process(target=producer, args=(address, 1000))
        child.start()
        kept = []
        while True:
            try:
                with rx.borrow(timeout=10) as view:
                    ident, value = HEADER.unpack_from(view)
                    if ident % 100 == 0:
                        kept.append((ident, value, bytes(view[HEADER.size:])))
            except shmpipe.Disconnected:
                break
        child.join()
        for record in kept:
            print(*record)
    finally:
        shmpipe.Ring.remove(address, force=True)


if __name__ == "__main__":
    main()
