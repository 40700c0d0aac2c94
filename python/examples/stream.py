"""Stream a file between two processes through a shmpipe ring.

    python stream.py recv shm:demo > copy.bin     # terminal 1 (creates the ring)
    python stream.py send shm:demo < file.bin     # terminal 2

The receiver creates the ring, writes every message to standard output
until the sender closes, then removes the ring. Either end can also be the
Rust command line: `shmpipe send shm:demo < file.bin`.
"""

import sys

import shmpipe

CHUNK = 64 * 1024


def send(address):
    # Wait for the receiver to create the ring.
    for _ in range(100):
        try:
            ring = shmpipe.Ring.open(address)
            break
        except shmpipe.NotFound:
            import time

            time.sleep(0.05)
    else:
        sys.exit(f"no ring at {address}: start `stream.py recv {address}` first")
    buf = bytearray(CHUNK)
    with ring.producer() as tx:
        while n := sys.stdin.buffer.readinto(buf):
            tx.send(memoryview(buf)[:n])


def recv(address):
    ring = shmpipe.Ring.create(address, slots=64, max_message=CHUNK)
    out = sys.stdout.buffer
    try:
        with ring.consumer() as rx:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while True:
                try:
                    n = rx.recv_into(buf)
                except shmpipe.Disconnected:
                    break
                out.write(view[:n])
        out.flush()
    finally:
        shmpipe.Ring.remove(address, force=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("send", "recv"):
        sys.exit(__doc__)
    (send if sys.argv[1] == "send" else recv)(sys.argv[2])
