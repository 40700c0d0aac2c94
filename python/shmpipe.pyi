"""Type stubs for shmpipe: lock-free SPSC message rings in Linux shared memory."""

from typing import Callable, Iterable, Iterator, List, Literal, Optional, Tuple, Union

try:  # Python 3.12+
    from collections.abc import Buffer as _Buffer
except ImportError:  # older: anything with the buffer protocol
    _Buffer = Union[bytes, bytearray, memoryview]  # type: ignore[misc]

__version__: str

WaitStrategy = Literal["spin_then_park", "spin", "park"]
HugePages = Literal["never", "prefer", "require"]

class Ring:
    """A shared-memory ring; take its producer() or consumer()."""

    @staticmethod
    def create(
        address: str,
        *,
        slots: int = 1024,
        max_message: Optional[int] = None,
        slot_size: Optional[int] = None,
        message_limit: Optional[int] = None,
        payload_align: Optional[int] = None,
        huge_pages: HugePages = "never",
        mode: int = 0o600,
        populate: bool = False,
        wait: WaitStrategy = "spin_then_park",
        reclaim_stale: bool = False,
        open_or_create: bool = False,
        accept_any_geometry: bool = False,
        timeout: float = 1.0,
    ) -> "Ring": ...
    @staticmethod
    def open(
        address: str,
        *,
        wait: WaitStrategy = "spin_then_park",
        timeout: float = 1.0,
        wait_for_creation: Optional[float] = None,
        slots: Optional[int] = None,
        max_message: Optional[int] = None,
        slot_size: Optional[int] = None,
    ) -> "Ring": ...
    @property
    def created(self) -> bool: ...
    @staticmethod
    def list() -> List[Tuple[str, Union["RingInfo", "Error"]]]: ...
    @staticmethod
    def remove(address: str, force: bool = False) -> None: ...
    def producer(self) -> "Producer": ...
    def consumer(self) -> "Consumer": ...
    def info(self) -> "RingInfo": ...
    @property
    def address(self) -> Optional[str]: ...
    def unlink(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Ring": ...
    def __exit__(self, *args: object) -> bool: ...

class Producer:
    """The writing end of a ring."""

    def send(self, data: _Buffer, timeout: Optional[float] = None) -> None: ...
    def try_send(self, data: _Buffer) -> None: ...
    def fileno(self) -> int: ...
    def arm(self) -> bool: ...
    def send_batch(self, messages: Iterable[_Buffer], timeout: Optional[float] = None) -> int: ...
    def try_send_batch(self, messages: Iterable[_Buffer]) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_message(self) -> int: ...
    @property
    def message_limit(self) -> int: ...
    @property
    def payload_align(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def peer_pid(self) -> Optional[int]: ...
    def peer_alive(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Producer": ...
    def __exit__(self, *args: object) -> bool: ...

class Consumer:
    """The reading end of a ring; iterate over it until the producer closes."""

    def recv(self, timeout: Optional[float] = None) -> bytes: ...
    def try_recv(self) -> bytes: ...
    def fileno(self) -> int: ...
    def arm(self) -> bool: ...
    def recv_into(self, buffer: _Buffer, timeout: Optional[float] = None) -> int: ...
    def try_recv_into(self, buffer: _Buffer) -> int: ...
    def borrow(self, timeout: Optional[float] = None) -> "Borrowed": ...
    def try_borrow(self) -> "Borrowed": ...
    def recv_batch(self, max: int = 64, timeout: Optional[float] = None) -> List[bytes]: ...
    def try_recv_batch(self, max: int = 64) -> List[bytes]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_message(self) -> int: ...
    @property
    def message_limit(self) -> int: ...
    @property
    def payload_align(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def pacing(self) -> bool: ...
    @pacing.setter
    def pacing(self, on: bool) -> None: ...
    @property
    def peer_pid(self) -> Optional[int]: ...
    def peer_alive(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Consumer": ...
    def __exit__(self, *args: object) -> bool: ...

class Borrowed:
    """A message borrowed in place; `with` gives its read-only memoryview."""

    @property
    def view(self) -> memoryview: ...
    def release(self) -> None: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> memoryview: ...
    def __exit__(self, *args: object) -> bool: ...

class PeerCredentials:
    """Who is at the other end of a connection."""
    pid: int
    uid: int
    gid: int

class Duplex:
    """Two rings, one each way: send, recv, and serving Client.call."""

    def send(self, data: _Buffer, timeout: Optional[float] = None) -> None: ...
    def try_send(self, data: _Buffer) -> None: ...
    def recv(self, timeout: Optional[float] = None) -> bytes: ...
    def try_recv(self) -> bytes: ...
    def try_serve(self, handler: Callable[[bytes], _Buffer]) -> bool: ...
    def serve(self, handler: Callable[[bytes], _Buffer]) -> int: ...
    def fileno(self) -> int: ...
    def arm(self) -> bool: ...
    @property
    def max_message(self) -> int: ...
    @property
    def message_limit(self) -> int: ...
    @property
    def peer_pid(self) -> Optional[int]: ...
    def peer_alive(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Duplex": ...
    def __exit__(self, *args: object) -> bool: ...

class Connection(Duplex):
    """A duplex to a peer that connected through a Listener."""

    @property
    def peer_cred(self) -> PeerCredentials: ...

class Client(Connection):
    """The calling end of a connection."""

    @staticmethod
    def connect(address: str, *, wait: WaitStrategy = "spin_then_park") -> "Client": ...
    def call(self, request: _Buffer, timeout: Optional[float] = None) -> bytes: ...

class Listener:
    """A server's listening socket; accept() gives each client a Connection."""

    @staticmethod
    def bind(
        address: str,
        *,
        mode: int = 0o600,
        slots: int = 1024,
        max_message: Optional[int] = None,
        slot_size: Optional[int] = None,
        message_limit: Optional[int] = None,
        wait: WaitStrategy = "spin_then_park",
    ) -> "Listener": ...
    def accept(self, timeout: Optional[float] = None) -> Connection: ...
    def try_accept(self) -> Optional[Connection]: ...
    def fileno(self) -> int: ...
    @property
    def path(self) -> str: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Listener": ...
    def __exit__(self, *args: object) -> bool: ...

def connect(address: str, *, wait: WaitStrategy = "spin_then_park") -> Connection: ...

class SideInfo:
    state: Literal["vacant", "attached", "closed", "invalid"]
    pid: Optional[int]
    alive: Optional[bool]
    parked: bool
    messages: int
    bytes: int
    stalls: int
    futex_waits: int
    futex_wakes: int
    spin_rounds: int

class RingInfo:
    address: str
    backend: str
    path: Optional[str]
    mode: Optional[int]
    page_size: int
    huge_page_fallback: Optional[str]
    mapped_len: int
    slots: int
    slot_size: int
    max_message: int
    message_limit: int
    payload_align: int
    total_len: int
    creator_pid: int
    creator_alive: bool
    head: int
    tail: int
    len: Optional[int]
    producer: SideInfo
    consumer: SideInfo

class Error(Exception):
    """Base class of every shmpipe error."""

class Full(Error): ...
class Empty(Error): ...
class Timeout(Error, TimeoutError): ...
class Disconnected(Error): ...

class PeerDied(Disconnected):
    pid: int

class TooLarge(Error, ValueError):
    max: int
    size: int

class BufferTooSmall(Error, ValueError):
    needed: int

class Corrupt(Error):
    field: str
    found: int
    expected: str
    address: Optional[str]

class InvalidAddress(Error, ValueError):
    address: str

class InvalidConfig(Error, ValueError):
    option: str
    value: int

class AlreadyExists(Error, FileExistsError):
    address: str

class NotFound(Error, FileNotFoundError):
    address: str

class PermissionDenied(Error, PermissionError):
    address: str
    op: str

class Symlink(Error): ...
class NotARegularFile(Error): ...
class NotInitialized(Error): ...

class BadMagic(Error):
    found: int

class VersionMismatch(Error):
    found: int
    expected: int

class AlreadyClaimed(Error):
    side: Literal["producer", "consumer"]
    pid: int

class InUse(Error):
    side: Literal["producer", "consumer"]
    pid: int

class HugePagesUnavailable(Error): ...
class Unsupported(Error): ...

class Removed(Disconnected):
    """The ring was removed while this handle used it; open or create it anew."""

class GeometryMismatch(Error):
    """The ring exists with another geometry than asked for."""
    address: str
    expected: Tuple[int, int]
    found: Tuple[int, int]

class NotCreated(NotFound):
    """No ring appeared within the time allowed to wait for its creator."""

class Vanished(Error):
    """The ring kept being removed or replaced while opening or creating it."""
    address: str
    attempts: int

class IncompatibleType(Error):
    """The ring was made for another message type (typed rings of the Rust crate)."""
    address: str

class Misaligned(Error):
    """A typed message type needs more alignment than the ring's payloads have."""
    address: str
    type_align: int
    ring_align: int

class TypeTooLarge(TooLarge):
    """A typed message type is larger than the ring's message limit."""
    address: str

class Protocol(Error):
    """The peer broke the listener handshake or the request/response protocol."""

class Io(Error, OSError):
    op: str
    target: str
