"""Across processes: subprocess and multiprocessing children, the Rust
command line, a producer killed with SIGKILL, Ctrl-C, the GIL, 1 GiB."""

import hashlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import shmpipe
import _children

HERE = os.path.dirname(os.path.abspath(__file__))


def python_child(code, *args, **kw):
    """Starts `python -c code args...` with unbuffered output."""
    return subprocess.Popen(
        [sys.executable, "-u", "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=HERE,
        **kw,
    )


def test_subprocess_producer(address):
    ring = shmpipe.Ring.create(address, slots=16, max_message=64)
    rx = ring.consumer()
    child = python_child(
        """
        import sys, shmpipe
        with shmpipe.Ring.open(sys.argv[1]).producer() as tx:
            for i in range(10000):
                tx.send(i.to_bytes(4, "little"))
        """,
        address,
    )
    got = [int.from_bytes(m, "little") for m in rx]
    assert child.wait(timeout=30) == 0, child.stderr.read()
    assert got == list(range(10000))


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing(address, method):
    ctx = multiprocessing.get_context(method)
    ring = shmpipe.Ring.create(address, slots=8, max_message=32)
    rx = ring.consumer()
    p = ctx.Process(target=_children.produce, args=(address, 500))
    p.start()
    got = list(rx)
    p.join(timeout=30)
    assert p.exitcode == 0
    assert got == [b"msg-%d" % i for i in range(500)]


def test_multiprocessing_round_trip(address):
    back = address + "-back"
    try:
        out = shmpipe.Ring.create(address, slots=4, max_message=64)
        inbound = shmpipe.Ring.create(back, slots=4, max_message=64)
        tx, rx = out.producer(), inbound.consumer()
        p = multiprocessing.get_context("spawn").Process(
            target=_children.echo, args=(address, back, 200)
        )
        p.start()
        for i in range(200):
            tx.send(b"ping %d" % i, timeout=10)
            assert rx.recv(timeout=10) == b"ping %d" % i
        p.join(timeout=30)
        assert p.exitcode == 0
    finally:
        try:
            shmpipe.Ring.remove(back, force=True)
        except shmpipe.NotFound:
            pass


def test_python_to_the_command_line(address, cli):
    # Raw messages: `shmpipe send`/`recv` frame their own streams unless
    # `--raw` (docs/cli.md).
    ring = shmpipe.Ring.create(address, slots=16, max_message=4096)
    tx = ring.producer()
    reader = subprocess.Popen([cli, "recv", "--raw", "--no-create", address], stdout=subprocess.PIPE)
    out = []
    # Drain its standard output meanwhile, or a full pipe would stop it.
    drain = threading.Thread(target=lambda: out.append(reader.stdout.read()))
    drain.start()
    rng = random.Random(1)
    sent = [rng.randbytes(rng.randrange(0, 4097)) for _ in range(500)]
    for m in sent:
        tx.send(m, timeout=10)
    tx.close()
    drain.join(timeout=30)
    assert reader.wait(timeout=30) == 0
    assert out == [b"".join(sent)]


def test_the_command_line_to_python(address, cli):
    ring = shmpipe.Ring.create(address, slots=16, max_message=65536)
    rx = ring.consumer()
    data = random.Random(2).randbytes(3 << 20)
    writer = subprocess.Popen([cli, "send", "--raw", "--no-create", address], stdin=subprocess.PIPE)
    feeder = threading.Thread(target=lambda: (writer.stdin.write(data), writer.stdin.close()))
    feeder.start()
    got = b"".join(rx)
    feeder.join()
    assert writer.wait(timeout=30) == 0
    assert got == data


def test_a_killed_producer_is_peer_died(address):
    ring = shmpipe.Ring.create(address, slots=8, max_message=32)
    rx = ring.consumer()
    child = python_child(
        """
        import sys, time, shmpipe
        tx = shmpipe.Ring.open(sys.argv[1]).producer()
        for i in range(3):
            tx.send(b"%d" % i)
        print("sent", flush=True)
        time.sleep(60)
        """,
        address,
    )
    assert child.stdout.readline() == b"sent\n"
    child.kill()
    child.wait()
    got = []
    with pytest.raises(shmpipe.PeerDied) as e:
        for m in rx:  # the messages it committed, then PeerDied (not the end)
            got.append(m)
    assert got == [b"0", b"1", b"2"]
    assert e.value.pid == child.pid
    assert isinstance(e.value, shmpipe.Disconnected)
    # A new producer takes the dead one's side over.
    ring.producer().send(b"resumed")
    assert rx.recv(timeout=1) == b"resumed"


def test_the_gil_is_released_while_recv_waits(address):
    rx = shmpipe.Ring.create(address, slots=4).consumer()
    stop = threading.Event()
    count = [0]

    def counter():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=counter)
    t.start()
    try:
        time.sleep(0.05)
        before = count[0]
        start = time.monotonic()
        with pytest.raises(shmpipe.Timeout):
            rx.recv(timeout=0.5)
        waited = time.monotonic() - start
        during = count[0] - before
    finally:
        stop.set()
        t.join()
    assert 0.45 < waited < 2
    # A thread that got no GIL would not count at all; this one counts
    # millions of times per second when it has it.
    assert during > 10000, during


def test_ctrl_c_interrupts_a_blocking_recv(address):
    shmpipe.Ring.create(address, slots=4).close()
    child = python_child(
        """
        import sys, time, shmpipe
        ring = shmpipe.Ring.open(sys.argv[1])
        rx = ring.consumer()
        print("waiting", flush=True)
        start = time.monotonic()
        try:
            rx.recv()
        except KeyboardInterrupt:
            print("interrupted after %.3f s" % (time.monotonic() - start), flush=True)
        # The consumer is still usable.
        ring.producer().send(b"after")
        print(rx.recv(timeout=1).decode(), flush=True)
        """,
        address,
    )
    assert child.stdout.readline() == b"waiting\n"
    time.sleep(0.3)
    sent_at = time.monotonic()
    child.send_signal(signal.SIGINT)
    line = child.stdout.readline()
    latency = time.monotonic() - sent_at
    assert line.startswith(b"interrupted"), line + child.stderr.read()
    assert latency < 1.0, latency
    assert child.stdout.readline() == b"after\n"
    assert child.wait(timeout=10) == 0


def test_ctrl_c_interrupts_a_blocking_send(address):
    shmpipe.Ring.create(address, slots=1).close()
    child = python_child(
        """
        import sys, shmpipe
        ring = shmpipe.Ring.open(sys.argv[1])
        rx, tx = ring.consumer(), ring.producer()
        tx.send(b"fills the ring")
        print("waiting", flush=True)
        try:
            tx.send(b"never")
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        assert rx.recv() == b"fills the ring"
        tx.send(b"after", timeout=1)
        print(rx.recv(timeout=1).decode(), flush=True)
        """,
        address,
    )
    assert child.stdout.readline() == b"waiting\n"
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline() == b"interrupted\n", child.stderr.read()
    assert child.stdout.readline() == b"after\n"
    assert child.wait(timeout=10) == 0


def test_one_gib_through_recv_into_is_byte_identical(address):
    chunk = 1 << 20
    count = 1024  # 1 GiB in all
    ring = shmpipe.Ring.create(address, slots=16, max_message=chunk)
    rx = ring.consumer()
    child = python_child(
        """
        import hashlib, random, sys, shmpipe
        chunk, count = int(sys.argv[2]), int(sys.argv[3])
        base = random.Random(17).randbytes(chunk)
        digest = hashlib.sha256()
        with shmpipe.Ring.open(sys.argv[1]).producer() as tx:
            for i in range(count):
                msg = i.to_bytes(8, "little") + base[8:]
                tx.send(msg)
                digest.update(msg)
        print(digest.hexdigest(), flush=True)
        """,
        address,
        chunk,
        count,
    )
    buf = bytearray(chunk * count)
    view = memoryview(buf)
    start = time.monotonic()
    off = 0
    for _ in range(count):
        off += rx.recv_into(view[off : off + chunk], timeout=30)
    elapsed = time.monotonic() - start
    with pytest.raises(shmpipe.Disconnected):
        rx.recv(timeout=30)
    assert child.wait(timeout=60) == 0, child.stderr.read()
    assert off == chunk * count
    base = random.Random(17).randbytes(chunk)
    for i in range(count):
        at = i * chunk
        assert buf[at : at + 8] == i.to_bytes(8, "little")
        assert view[at + 8 : at + chunk] == base[8:], f"message {i} differs"
    assert hashlib.sha256(buf).hexdigest() == child.stdout.read().decode().strip()
    print(f"1 GiB through recv_into in {elapsed:.2f} s ({chunk * count / elapsed / 1e9:.2f} GB/s)")
