"""One process: the API's behaviour, call by call."""

import array
import pickle
import threading

import pytest

import shmpipe


def test_create_open_info(address):
    ring = shmpipe.Ring.create(address, slots=16, max_message=100, mode=0o640)
    assert ring.address == address
    info = ring.info()
    assert (info.slots, info.slot_size, info.max_message) == (16, 128, 112)
    assert info.backend == "posix-shm"
    assert info.mode == 0o640
    assert info.len == 0
    assert info.producer.state == "vacant"
    other = shmpipe.Ring.open(address)
    assert other.info().slot_size == 128
    with ring.producer() as tx:
        tx.send(b"x")
        side = other.info().producer
        assert side.state == "attached" and side.alive and side.messages == 1
        assert other.info().len == 1
    assert other.info().producer.state == "closed"


def test_slot_size_and_geometry_errors(address):
    ring = shmpipe.Ring.create(address, slots=4, slot_size=1024)
    assert ring.info().max_message == 1008
    ring.close()
    shmpipe.Ring.remove(address)
    with pytest.raises(ValueError, match="not both"):
        shmpipe.Ring.create(address, max_message=10, slot_size=64)
    with pytest.raises(shmpipe.InvalidConfig) as e:
        shmpipe.Ring.create(address, slots=3)
    assert isinstance(e.value, ValueError) and e.value.option == "slot count"
    with pytest.raises(ValueError, match="huge_pages"):
        shmpipe.Ring.create(address, huge_pages="maybe")
    with pytest.raises(ValueError, match="wait"):
        shmpipe.Ring.create(address, wait="nap")


def test_send_accepts_bytes_bytearray_memoryview_and_buffers(address):
    ring = shmpipe.Ring.create(address, slots=8, max_message=64)
    tx, rx = ring.producer(), ring.consumer()
    tx.send(b"bytes")
    tx.send(bytearray(b"bytearray"))
    tx.send(memoryview(b"--memoryview--")[2:-2])
    tx.send(array.array("I", [1, 2]))
    tx.send(b"")
    assert rx.recv() == b"bytes"
    assert rx.recv() == b"bytearray"
    assert rx.recv() == b"memoryview"
    assert rx.recv() == array.array("I", [1, 2]).tobytes()
    assert rx.recv() == b""
    with pytest.raises(TypeError):
        tx.send("a str is not bytes")
    with pytest.raises(BufferError):
        tx.send(memoryview(b"abcdef")[::2])  # not contiguous


def test_try_calls_full_and_empty(address):
    ring = shmpipe.Ring.create(address, slots=2, max_message=8)
    tx, rx = ring.producer(), ring.consumer()
    with pytest.raises(shmpipe.Empty):
        rx.try_recv()
    tx.try_send(b"1")
    tx.try_send(b"2")
    assert len(tx) == 2 and len(rx) == 2
    with pytest.raises(shmpipe.Full):
        tx.try_send(b"3")
    with pytest.raises(shmpipe.Timeout):
        tx.send(b"3", timeout=0.05)
    assert rx.try_recv() == b"1"
    tx.send(b"3", timeout=0)
    assert [rx.recv(timeout=0), rx.recv(timeout=0)] == [b"2", b"3"]
    with pytest.raises(shmpipe.Timeout) as e:
        rx.recv(timeout=0.05)
    assert isinstance(e.value, TimeoutError)
    with pytest.raises(ValueError, match="timeout"):
        rx.recv(timeout=-1)
    assert tx.position == 3 and rx.position == 3


def test_recv_into(address):
    ring = shmpipe.Ring.create(address, slots=4, max_message=64)
    tx, rx = ring.producer(), ring.consumer()
    buf = bytearray(16)
    tx.send(b"hello")
    assert rx.recv_into(buf) == 5
    assert buf[:5] == b"hello"
    tx.send(b"0123456789abcdefXYZ")
    with pytest.raises(shmpipe.BufferTooSmall) as e:
        rx.recv_into(buf)
    assert e.value.needed == 19
    # The message stayed in the ring.
    big = bytearray(32)
    assert rx.recv_into(memoryview(big)[4:]) == 19
    assert big[4:23] == b"0123456789abcdefXYZ"
    with pytest.raises(shmpipe.Empty):
        rx.try_recv_into(buf)
    with pytest.raises(BufferError):
        rx.recv_into(b"read-only bytes", timeout=0)


def test_borrow_gives_the_message_in_place(address):
    ring = shmpipe.Ring.create(address, slots=4, max_message=64)
    tx, rx = ring.producer(), ring.consumer()
    tx.send(b"in place")
    tx.send(b"next")
    with rx.borrow() as view:
        assert isinstance(view, memoryview) and view.readonly
        assert bytes(view) == b"in place"
        assert len(tx) == 2  # not released yet
        with pytest.raises(shmpipe.Unsupported, match="borrowed"):
            rx.recv()
        with pytest.raises(TypeError):
            view[0] = 0
    with pytest.raises(ValueError):
        view[0]  # released with the block
    assert len(tx) == 1
    assert rx.recv() == b"next"
    with pytest.raises(shmpipe.Empty):
        rx.try_borrow()
    tx.send(b"again")
    b = rx.try_borrow()
    assert len(b) == 5 and bytes(b.view) == b"again"
    b.release()
    b.release()
    assert len(rx) == 0


def test_pacing_is_a_consumer_setting(address):
    ring = shmpipe.Ring.create(address, slots=64, max_message=32)
    tx, rx = ring.producer(), ring.consumer()
    assert rx.pacing is True  # on by default on small slots
    for on in (True, False):
        rx.pacing = on
        assert rx.pacing is on
        for i in range(100):
            tx.send(i.to_bytes(8, "little"))
            assert rx.recv() == i.to_bytes(8, "little")
    tx.send(b"held")
    with rx.borrow():
        with pytest.raises(shmpipe.Unsupported, match="borrowed"):
            rx.pacing = True
    big = address + "-big"
    try:
        ring = shmpipe.Ring.create(big, slots=4, max_message=8192)
        assert ring.consumer().pacing is False  # off on slots of 4 KiB or more
    finally:
        shmpipe.Ring.remove(big, force=True)


def test_borrow_refuses_to_release_while_exported(address):
    ring = shmpipe.Ring.create(address, slots=4, max_message=64)
    tx, rx = ring.producer(), ring.consumer()
    tx.send(b"exported")
    b = rx.borrow()
    held = pickle.PickleBuffer(b.view)  # holds an export, as numpy.frombuffer would
    with pytest.raises(BufferError, match="still exported"):
        b.release()
    assert len(tx) == 1 and bytes(b.view) == b"exported"
    held.release()
    b.release()
    assert len(tx) == 0


def test_batches(address):
    ring = shmpipe.Ring.create(address, slots=8, max_message=16)
    tx, rx = ring.producer(), ring.consumer()
    assert tx.send_batch([b"a", bytearray(b"b"), memoryview(b"c")]) == 3
    assert rx.try_recv_batch() == [b"a", b"b", b"c"]
    assert rx.try_recv_batch() == []
    assert tx.try_send_batch(bytes([i]) for i in range(20)) == 8
    assert tx.try_send_batch([b"x"]) == 0
    assert rx.recv_batch(max=3) == [bytes([0]), bytes([1]), bytes([2])]
    assert rx.recv_batch(timeout=1) == [bytes([i]) for i in range(3, 8)]
    with pytest.raises(shmpipe.TooLarge) as e:
        tx.send_batch([b"ok", b"x" * 100])
    assert (e.value.index, e.value.size, e.value.max) == (1, 100, 48)
    assert len(rx) == 0  # nothing sent
    # More than the ring holds: send_batch waits for room.
    got = []
    t = threading.Thread(target=lambda: got.extend(rx.recv(timeout=5) for _ in range(50)))
    t.start()
    assert tx.send_batch([b"%d" % i for i in range(50)], timeout=5) == 50
    t.join()
    assert got == [b"%d" % i for i in range(50)]


def test_iteration_ends_when_the_producer_closes(address):
    ring = shmpipe.Ring.create(address, slots=8, max_message=16)
    rx = ring.consumer()
    with ring.producer() as tx:
        for i in range(5):
            tx.send(b"%d" % i)
    assert tx.closed
    assert list(rx) == [b"%d" % i for i in range(5)]
    with pytest.raises(shmpipe.Disconnected):
        rx.recv()
    with pytest.raises(shmpipe.Disconnected):
        rx.try_recv_batch()


def test_closed_handles_and_claims(address):
    with shmpipe.Ring.create(address, slots=4) as ring:
        tx = ring.producer()
        with pytest.raises(shmpipe.AlreadyClaimed) as e:
            ring.producer()
        assert e.value.side == "producer"
        with ring.consumer() as rx:
            assert rx.peer_alive() and tx.peer_alive()
        assert not tx.peer_alive()
        with pytest.raises(shmpipe.Disconnected):
            tx.send(b"nobody reads")
        tx.close()
        tx.close()
        with pytest.raises(shmpipe.Unsupported, match="closed"):
            tx.send(b"x")
        assert "closed" in repr(tx)
    with pytest.raises(shmpipe.Unsupported, match="closed"):
        ring.producer()
    # The ring outlives its Python object until removed.
    assert shmpipe.Ring.open(address).info().producer.state == "closed"


def test_handles_outlive_the_ring_object(address):
    ring = shmpipe.Ring.create(address, slots=4)
    tx, rx = ring.producer(), ring.consumer()
    ring.close()
    del ring
    tx.send(b"still mapped")
    assert rx.recv() == b"still mapped"


def test_list_and_remove(address):
    ring = shmpipe.Ring.create(address, slots=4)
    found = dict(shmpipe.Ring.list())
    assert address in found
    assert found[address].slots == 4
    tx = ring.producer()
    with pytest.raises(shmpipe.InUse) as e:
        shmpipe.Ring.remove(address)
    assert e.value.side == "producer"
    tx.close()
    shmpipe.Ring.remove(address)
    with pytest.raises(shmpipe.NotFound):
        shmpipe.Ring.remove(address)
    assert address not in dict(shmpipe.Ring.list())


def test_a_handle_serves_one_thread_at_a_time(address):
    ring = shmpipe.Ring.create(address, slots=4)
    rx = ring.consumer()
    started = threading.Event()

    def blocked():
        started.set()
        with pytest.raises(shmpipe.Timeout):
            rx.recv(timeout=1)

    t = threading.Thread(target=blocked)
    t.start()
    started.wait()
    import time

    time.sleep(0.2)
    with pytest.raises(shmpipe.Unsupported, match="another thread"):
        rx.try_recv()
    t.join()
    with pytest.raises(shmpipe.Empty):
        rx.try_recv()
