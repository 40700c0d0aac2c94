"""The exceptions: one class per Rust error, under shmpipe.Error, each
message saying what to do."""

import os
import struct

import pytest

import shmpipe

ALL = [
    "Full", "Empty", "Timeout", "Disconnected", "PeerDied", "TooLarge", "BufferTooSmall",
    "Corrupt", "InvalidAddress", "InvalidConfig", "AlreadyExists", "NotFound",
    "PermissionDenied", "Symlink", "NotARegularFile", "NotInitialized", "BadMagic",
    "VersionMismatch", "AlreadyClaimed", "InUse", "HugePagesUnavailable", "Unsupported", "Io",
]


def test_one_base_and_the_builtin_bases():
    assert issubclass(shmpipe.Error, Exception)
    for name in ALL:
        cls = getattr(shmpipe, name)
        assert issubclass(cls, shmpipe.Error), name
        assert cls.__module__ == "shmpipe" and cls.__doc__, name
    assert issubclass(shmpipe.Timeout, TimeoutError)
    assert issubclass(shmpipe.PeerDied, shmpipe.Disconnected)
    assert issubclass(shmpipe.NotFound, FileNotFoundError)
    assert issubclass(shmpipe.AlreadyExists, FileExistsError)
    assert issubclass(shmpipe.PermissionDenied, PermissionError)
    assert issubclass(shmpipe.Io, OSError)
    for name in ("TooLarge", "BufferTooSmall", "InvalidAddress", "InvalidConfig"):
        assert issubclass(getattr(shmpipe, name), ValueError), name


def test_setup_errors_carry_their_remedy(address):
    with pytest.raises(shmpipe.NotFound, match="create it first") as e:
        shmpipe.Ring.open(address)
    assert e.value.address == address
    shmpipe.Ring.create(address, slots=4)
    with pytest.raises(shmpipe.AlreadyExists, match="open it instead") as e:
        shmpipe.Ring.create(address)
    with pytest.raises(shmpipe.InvalidAddress, match="expected shm:NAME") as e:
        shmpipe.Ring.open("nosuch:scheme")
    assert e.value.address == "nosuch:scheme"


def test_claims(address):
    ring = shmpipe.Ring.create(address, slots=4)
    rx = ring.consumer()
    with pytest.raises(shmpipe.AlreadyClaimed, match="one producer and one consumer") as e:
        shmpipe.Ring.open(address).consumer()
    assert (e.value.side, e.value.pid) == ("consumer", os.getpid())
    with pytest.raises(shmpipe.InUse, match="force") as e:
        shmpipe.Ring.remove(address)
    assert (e.value.side, e.value.pid) == ("consumer", os.getpid())
    rx.close()


def test_bad_magic_is_never_touched(address):
    name = address.split(":", 1)[1]
    path = os.path.join("/dev/shm", name)
    with open(path, "wb") as f:
        f.write(b"not a ring" * 1000)
    try:
        with pytest.raises(shmpipe.BadMagic, match="not a shmpipe ring") as e:
            shmpipe.Ring.open(address)
        assert e.value.found == struct.unpack("<Q", b"not a ri")[0]
        with pytest.raises(shmpipe.BadMagic):
            shmpipe.Ring.remove(address, force=True)
        assert os.path.exists(path)
    finally:
        os.unlink(path)


def test_a_corrupt_slot_length_is_corrupt(address):
    ring = shmpipe.Ring.create(address, slots=4, max_message=48)
    tx, rx = ring.producer(), ring.consumer()
    tx.send(b"fine")
    # Slot 0 starts at slots_offset (header + 0x60: 0x400 on this padded
    # ring, one page on a ring whose slot area is mapped twice); its first 4
    # bytes are the message length. Writing the file changes the shared
    # pages the consumer reads.
    with open(os.path.join("/dev/shm", address.split(":", 1)[1]), "r+b") as f:
        f.seek(0x60)
        (slot0,) = struct.unpack("<Q", f.read(8))
        assert slot0 == 0x400
        f.seek(slot0)
        f.write(struct.pack("<I", 1 << 20))
    with pytest.raises(shmpipe.Corrupt) as e:
        rx.try_recv()
    assert e.value.field == "slot length"
    assert e.value.found == 1 << 20
    assert "0..=48" in e.value.expected
    with pytest.raises(shmpipe.Corrupt):
        rx.recv(timeout=0)


def test_symlink_and_not_a_regular_file(tmp_path):
    target = tmp_path / "real"
    link = tmp_path / "link"
    shmpipe.Ring.create(f"file:{target}", slots=4).close()
    link.symlink_to(target)
    with pytest.raises(shmpipe.Symlink, match="real file"):
        shmpipe.Ring.open(f"file:{link}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(shmpipe.NotARegularFile):
        shmpipe.Ring.open(f"file:{fifo}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root is never denied")
def test_permission_denied(tmp_path):
    path = tmp_path / "ring"
    shmpipe.Ring.create(f"file:{path}", slots=4).close()
    os.chmod(path, 0)
    with pytest.raises(shmpipe.PermissionDenied, match="--mode"):
        shmpipe.Ring.open(f"file:{path}")


def test_data_path_errors(address):
    ring = shmpipe.Ring.create(address, slots=1, max_message=8)
    tx, rx = ring.producer(), ring.consumer()
    with pytest.raises(shmpipe.Empty, match="empty ring"):
        rx.try_recv()
    with pytest.raises(shmpipe.TooLarge, match="larger slot size") as e:
        tx.send(b"x" * 57)
    assert (e.value.size, e.value.max) == (57, 48)
    tx.send(b"1")
    with pytest.raises(shmpipe.Full, match="full ring"):
        tx.try_send(b"2")
    with pytest.raises(shmpipe.Timeout, match="timed out"):
        tx.send(b"2", timeout=0.01)
    with pytest.raises(shmpipe.BufferTooSmall, match="stays in the ring"):
        rx.recv_into(bytearray(0))
    rx.close()
    with pytest.raises(shmpipe.Disconnected, match="consumer has disconnected"):
        tx.send(b"2")
    with pytest.raises(shmpipe.Unsupported, match="closed"):
        rx.recv()
