"""asyncio through the readiness descriptor: `loop.add_reader(fileno())`
after `arm()`, with the event loop free while a consumer waits."""

import asyncio
import threading
import time

import shmpipe


async def recv_async(rx):
    """Receives one message without blocking the event loop."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return rx.try_recv()
        except shmpipe.Empty:
            pass
        if not rx.arm():
            continue
        ready = loop.create_future()
        loop.add_reader(rx.fileno(), ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_reader(rx.fileno())


def test_asyncio_waits_on_the_readiness_descriptor(address):
    ring = shmpipe.Ring.create(address, slots=8)
    tx, rx = ring.producer(), ring.consumer()

    def later():
        time.sleep(0.2)
        for i in range(50):
            tx.send(b"msg %d" % i)
            time.sleep(0.002)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        got = [await recv_async(rx) for _ in range(50)]
        t.cancel()
        return got, ticks

    sender = threading.Thread(target=later)
    sender.start()
    got, ticks = asyncio.run(main())
    sender.join()
    assert got == [b"msg %d" % i for i in range(50)]
    assert ticks >= 20, f"the event loop stalled: {ticks} ticks"


def test_arm_reports_a_message_already_waiting(address):
    ring = shmpipe.Ring.create(address, slots=2)
    tx, rx = ring.producer(), ring.consumer()
    assert rx.arm() is True
    tx.send(b"x")
    assert rx.arm() is False
    assert rx.try_recv() == b"x"
    tx.send(b"y")
    tx.send(b"z")
    assert tx.arm() is True  # full: wait for room
    rx.try_recv()
    assert tx.arm() is False
    assert isinstance(tx.fileno(), int) and isinstance(rx.fileno(), int)
