"""Code run in child processes by the tests (importable by multiprocessing's
spawn start method)."""

import shmpipe


def produce(address, count):
    """Opens the ring, sends `count` numbered messages, closes."""
    with shmpipe.Ring.open(address).producer() as tx:
        for i in range(count):
            tx.send(b"msg-%d" % i)


def echo(address_in, address_out, count):
    """Receives `count` messages on one ring and sends each back on another."""
    rx = shmpipe.Ring.open(address_in).consumer()
    tx = shmpipe.Ring.open(address_out).producer()
    for _ in range(count):
        tx.send(rx.recv(timeout=10))
