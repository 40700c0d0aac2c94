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


def open_or_create(address, barrier, results):
    """Waits for the others, then races Ring.create(open_or_create=True);
    reports whether it created the ring and the ring's creator pid."""
    barrier.wait(timeout=30)
    ring = shmpipe.Ring.create(address, slots=64, max_message=100, open_or_create=True)
    results.put((ring.created, ring.info().creator_pid))
    ring.close()


def rpc_client(path, calls):
    """Connects to the listener and makes `calls` calls, checking each
    reply (the request reversed); exits 0 when all were right."""
    client = shmpipe.Client.connect(path)
    for i in range(calls):
        req = b"call %d from %d" % (i, __import__("os").getpid())
        reply = client.call(req, timeout=30)
        if reply != req[::-1]:
            raise SystemExit(f"call {i}: wrong reply {reply!r}")
    client.close()


def call_then_hang(path, ready):
    """Makes one call, says so, then waits to be killed."""
    client = shmpipe.Client.connect(path)
    client.call(b"first", timeout=30)
    ready.set()
    __import__("time").sleep(600)
