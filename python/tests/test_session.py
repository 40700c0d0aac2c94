"""Sessions and large messages: open_or_create raced by several processes,
geometry checks, 1 MiB messages through 4 KiB slots, a listener serving 4
client processes x 1000 calls, a client killed mid-session."""

import multiprocessing
import os
import selectors
import signal
import time

import pytest

import shmpipe
import _children


@pytest.fixture
def socket_path(tmp_path):
    path = str(tmp_path / "rpc.sock")
    yield path
    assert not os.path.exists(path), "the listener left its socket behind"


def test_open_or_create_from_several_processes(address):
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=_children.open_or_create, args=(address, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    created = [c for c, _ in got]
    assert created.count(True) == 1, got
    creators = {pid for _, pid in got}
    assert len(creators) == 1 and creators <= {p.pid for p in procs}
    ring = shmpipe.Ring.open(address, slots=64, max_message=100)
    assert not ring.created
    ring.close()


def test_created_and_wait_for_creation(address):
    import threading

    found = []

    def late_client():
        found.append(shmpipe.Ring.open(address, wait_for_creation=20))

    t = threading.Thread(target=late_client)
    t.start()
    time.sleep(0.1)
    ring = shmpipe.Ring.create(address, slots=8)
    t.join(timeout=30)
    assert ring.created and found and not found[0].created
    found[0].close()
    ring.close()
    with pytest.raises(shmpipe.NotCreated) as e:
        shmpipe.Ring.open(address + "-never", wait_for_creation=0.05)
    assert isinstance(e.value, shmpipe.NotFound)


def test_geometry_mismatch(address):
    ring = shmpipe.Ring.create(address, slots=16, slot_size=128)
    with pytest.raises(shmpipe.GeometryMismatch) as e:
        shmpipe.Ring.open(address, slots=1024)
    assert e.value.expected == (1024, 128) and e.value.found == (16, 128)
    with pytest.raises(shmpipe.GeometryMismatch):
        shmpipe.Ring.create(address, slots=32, open_or_create=True)
    other = shmpipe.Ring.create(address, slots=32, open_or_create=True, accept_any_geometry=True)
    assert other.info().slots == 16 and not other.created
    same = shmpipe.Ring.open(address, slots=16, slot_size=128)
    for r in (other, same, ring):
        r.close()


def test_one_mib_message_through_4k_slots(address):
    mib = 1 << 20
    ring = shmpipe.Ring.create(address, slots=512, slot_size=4096, message_limit=mib, payload_align=64)
    info = ring.info()
    assert info.message_limit == mib and info.payload_align == 64
    tx, rx = ring.producer(), ring.consumer()
    assert tx.message_limit == mib and rx.message_limit == mib
    assert tx.max_message == 4096 - 64 and rx.payload_align == 64
    msg = os.urandom(mib)
    tx.send(msg)
    assert rx.recv(timeout=10) == msg
    tx.try_send(memoryview(msg)[: mib - 3])
    with rx.borrow(timeout=10) as view:
        assert len(view) == mib - 3 and bytes(view) == msg[: mib - 3]
    buf = bytearray(mib)
    tx.send(msg[:5000])
    assert rx.recv_into(buf, timeout=10) == 5000 and bytes(buf[:5000]) == msg[:5000]
    with pytest.raises(shmpipe.TooLarge) as e:
        tx.send(msg + b"x")
    assert e.value.max == mib
    with pytest.raises(shmpipe.TooLarge):
        tx.send_batch([msg])  # a batch message is one slot
    tx.close()
    rx.close()
    ring.close()


def test_large_messages_across_processes(address):
    """A child producer streams 1 MiB messages; the ring holds two."""
    mib = 1 << 20
    ring = shmpipe.Ring.create(address, slots=512, slot_size=4096)
    rx = ring.consumer()
    code = """
import sys, hashlib, shmpipe
tx = shmpipe.Ring.open(sys.argv[1]).producer()
for i in range(12):
    tx.send(hashlib.sha256(b"%d" % i).digest() * (32768 - i), timeout=30)
tx.close()
"""
    import subprocess, sys, hashlib

    child = subprocess.Popen([sys.executable, "-c", code, address])
    for i in range(12):
        got = rx.recv(timeout=30)
        assert got == hashlib.sha256(b"%d" % i).digest() * (32768 - i)
    with pytest.raises(shmpipe.Disconnected):
        rx.recv(timeout=30)
    assert child.wait(timeout=30) == 0
    rx.close()
    ring.close()


def reverse(req):
    return req[::-1]


def test_listener_serves_four_client_processes(socket_path):
    clients, calls = 4, 1000
    with shmpipe.Listener.bind(socket_path, slots=16, max_message=248) as listener:
        assert listener.path == socket_path
        assert os.stat(socket_path).st_mode & 0o777 == 0o600
        assert listener.try_accept() is None
        with pytest.raises(shmpipe.Timeout):
            listener.accept(timeout=0.01)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_children.rpc_client, args=(socket_path, calls)) for _ in range(clients)]
        for p in procs:
            p.start()
        pids = {p.pid for p in procs}
        sel = selectors.DefaultSelector()
        sel.register(listener.fileno(), selectors.EVENT_READ, None)
        conns, served, done = [], 0, 0
        deadline = time.monotonic() + 120  # a watchdog, not a timing check
        while done < clients:
            assert time.monotonic() < deadline
            busy = False
            for conn in conns:
                try:
                    busy |= not conn.arm()  # False: work waiting now
                except shmpipe.Disconnected:
                    busy = True
            for key, _ in sel.select(timeout=0 if busy else 1.0):
                if key.data is None:
                    conn = listener.try_accept()
                    if conn is not None:
                        assert conn.peer_cred.pid in pids
                        assert conn.peer_cred.uid == os.getuid()
                        conns.append(conn)
                        sel.register(conn.fileno(), selectors.EVENT_READ, conn)
            for conn in list(conns):
                try:
                    while conn.try_serve(reverse):
                        served += 1
                except shmpipe.Disconnected:
                    sel.unregister(conn.fileno())
                    conns.remove(conn)
                    conn.close()
                    done += 1
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert served == clients * calls


def test_killed_client_raises_peer_died(socket_path):
    ctx = multiprocessing.get_context("spawn")
    with shmpipe.Listener.bind(socket_path) as listener:
        ready = ctx.Event()
        victim = ctx.Process(target=_children.call_then_hang, args=(socket_path, ready))
        victim.start()
        conn = listener.accept(timeout=60)
        assert conn.peer_cred.pid == victim.pid
        while not conn.try_serve(reverse):
            time.sleep(0.001)
        assert ready.wait(timeout=60)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(timeout=30)
        with pytest.raises(shmpipe.PeerDied) as e:
            conn.serve(reverse)
        assert e.value.pid == victim.pid
        conn.close()


def test_duplex_send_recv_and_a_server_that_dies(socket_path):
    import threading

    with shmpipe.Listener.bind(socket_path) as listener:
        result = {}

        def server():
            conn = listener.accept(timeout=30)
            result["first"] = conn.recv(timeout=30)
            conn.send(b"pong")
            result["served"] = conn.serve(lambda r: b"<" + r + b">")

        t = threading.Thread(target=server)
        t.start()
        conn = shmpipe.connect(socket_path)
        assert isinstance(conn, shmpipe.Duplex) and conn.peer_cred.pid == os.getpid()
        conn.send(b"ping")
        assert conn.recv(timeout=30) == b"pong"
        conn.close()
        t.join(timeout=30)
        assert result == {"first": b"ping", "served": 0}

        t = threading.Thread(target=lambda: listener.accept(timeout=30).serve(lambda r: r * 2))
        t.start()
        client = shmpipe.Client.connect(socket_path)
        assert client.call(b"ab") == b"abab"
        with pytest.raises(shmpipe.TooLarge):
            client.call(b"x" * client.max_message)
        assert isinstance(client.fileno(), int)
        client.close()
        t.join(timeout=30)
    with pytest.raises(shmpipe.NotFound):
        shmpipe.connect(socket_path)
