"""A consumer awaited in asyncio: the ring's readiness descriptor goes into
the event loop with `loop.add_reader`, so a task waits for messages while
the loop keeps running other tasks.

    python examples/asyncio_recv.py
"""

import asyncio
import os
import threading
import time

import shmpipe


async def recv_async(rx):
    loop = asyncio.get_running_loop()
    while True:
        try:
            return rx.try_recv()
        except shmpipe.Empty:
            pass
        if not rx.arm():  # something is there already: try again
            continue
        ready = loop.create_future()
        loop.add_reader(rx.fileno(), ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_reader(rx.fileno())


async def main(rx, n):
    heartbeat = asyncio.ensure_future(asyncio.sleep(3600))
    for _ in range(n):
        msg = await recv_async(rx)
        print("got", msg.decode())
    heartbeat.cancel()


if __name__ == "__main__":
    address = f"shm:shmpipe-example-asyncio-{os.getpid()}"
    ring = shmpipe.Ring.create(address, slots=16)
    try:
        tx, rx = ring.producer(), ring.consumer()

        def produce():
            for i in range(5):
                time.sleep(0.05)
                tx.send(f"message {i}".encode())

        t = threading.Thread(target=produce)
        t.start()
        asyncio.run(main(rx, 5))
        t.join()
    finally:
        shmpipe.Ring.remove(address, force=True)
