//! async/await with tokio (feature `tokio`): [`AsyncConsumer`] and
//! [`AsyncProducer`] wrap a handle and its readiness descriptor in tokio's
//! `AsyncFd`, so a task awaits a message or a free slot without blocking
//! the executor and without a thread per ring.
//!
//! Every future is cancellation-safe: a message is taken from the ring only
//! in the same poll that returns it, so dropping a future (in `select!`, a
//! timeout) loses nothing and leaves the handle usable. They run on a
//! `current_thread` runtime too. The feature needs tokio 1.54 (Rust 1.85);
//! the rest of the library builds on Rust 1.80.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::io::unix::AsyncFd;

use crate::duplex::Duplex;
use crate::error::{Error, RecvError, SendError, TryRecvError, TrySendError};
use crate::handles::{Consumer, Message, Producer, ReadSlot, WriteSlot};
use crate::listener::{Connection, Listener};

/// The readiness descriptor's number, for `AsyncFd` (which must own
/// something `AsRawFd`). The handle owns the descriptor and outlives this.
#[derive(Debug)]
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn io_recv(e: io::Error) -> RecvError {
    RecvError::Corrupt(crate::error::Corruption {
        field: "readiness descriptor",
        found: e.raw_os_error().unwrap_or(0) as u64,
        expected: crate::error::Expected::Exactly(0),
    })
}

/// A [`Consumer`] for async code.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmpipe::{AsyncConsumer, RingBuilder};
///
/// let ring = RingBuilder::new().slots(8).create_in_process()?;
/// let mut tx = ring.producer()?;
/// let mut rx = AsyncConsumer::new(ring.consumer()?)?;
/// let task = tokio::spawn(async move {
///     let mut buf = [0u8; 64];
///     let n = rx.recv(&mut buf).await.unwrap();
///     buf[..n].to_vec()
/// });
/// tokio::task::yield_now().await;
/// tx.try_send(b"hello")?;
/// assert_eq!(task.await?, b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncConsumer {
    // Dropped before `inner`, which owns the descriptor.
    fd: AsyncFd<Fd>,
    inner: Consumer,
}

impl AsyncConsumer {
    /// Wraps `consumer`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as tokio's `AsyncFd` does).
    ///
    /// # Errors
    ///
    /// The error making the readiness descriptor or registering it with
    /// the runtime.
    pub fn new(mut consumer: Consumer) -> io::Result<AsyncConsumer> {
        let raw = consumer
            .readiness_fd()
            .map_err(io::Error::other)?
            .as_raw_fd();
        // SAFETY: `raw` is the readiness descriptor owned by `consumer`,
        // which lives in the returned value next to the `AsyncFd` and is
        // dropped after it (field order, and `into_inner` drops the
        // `AsyncFd` first); the descriptor is never replaced while the
        // handle lives, and `Fd::as_raw_fd` always returns `raw`.
        let fd = unsafe { AsyncFd::register(Fd(raw)) }.map_err(io::Error::from)?;
        Ok(AsyncConsumer {
            fd,
            inner: consumer,
        })
    }

    /// The consumer, for the synchronous calls.
    pub fn get_mut(&mut self) -> &mut Consumer {
        &mut self.inner
    }

    /// The consumer back.
    pub fn into_inner(self) -> Consumer {
        let AsyncConsumer { fd, inner } = self;
        drop(fd);
        inner
    }

    /// Waits until a receive would find something (a message, or an error
    /// to report).
    async fn ready(&mut self) -> Result<(), RecvError> {
        loop {
            if self.inner.ready_now() {
                return Ok(());
            }
            if !self.inner.arm()? {
                continue;
            }
            let mut guard = self.fd.readable().await.map_err(io_recv)?;
            guard.clear_ready();
        }
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_deadline`], never `Timeout` (wrap the future in
    /// `tokio::time::timeout` for that).
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        loop {
            self.ready().await?;
            match self.inner.try_recv(buf) {
                Ok(n) => return Ok(n),
                Err(TryRecvError::Empty) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives the next message into a new `Vec`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), never `BufferTooSmall`.
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        loop {
            self.ready().await?;
            match self.inner.try_recv_vec() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Empty) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Borrows the next message in place; it is released when the
    /// [`ReadSlot`] is dropped.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub async fn borrow(&mut self) -> Result<ReadSlot<'_>, RecvError> {
        self.ready().await?;
        // `ready` returned: a message (or an error) is there, and only this
        // handle can take it.
        Ok(self.inner.try_borrow()?)
    }
}

impl AsyncConsumer {
    /// The messages as a [`Stream`] (`futures_core`'s, which
    /// `futures::StreamExt` and `tokio_stream::StreamExt` extend).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmpipe::{AsyncConsumer, RingBuilder};
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    ///
    /// let ring = RingBuilder::new().slots(8).create_in_process()?;
    /// let mut tx = ring.producer()?;
    /// let mut messages = AsyncConsumer::new(ring.consumer()?)?.into_stream();
    /// tx.try_send(b"one")?;
    /// tx.try_send(b"two")?;
    /// drop(tx); // the stream ends after the last message
    /// let mut got = Vec::new();
    /// while let Some(m) = poll_fn(|cx| Pin::new(&mut messages).poll_next(cx)).await {
    ///     got.push(m?);
    /// }
    /// assert_eq!(got, [b"one", b"two"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_stream(self) -> MessageStream {
        MessageStream {
            inner: self,
            done: false,
        }
    }
}

/// The messages of an [`AsyncConsumer`], one `Vec` each: a
/// [`Stream`]`<Item = Result<Vec<u8>, RecvError>>`, made by
/// [`AsyncConsumer::into_stream`].
///
/// It ends (`None`) once the producer closed and every message it sent was
/// yielded. Any other error ([`RecvError::PeerDied`],
/// [`RecvError::Removed`], [`RecvError::Corrupt`]) is yielded once and
/// ends the stream too; [`into_inner`](Self::into_inner) gives the consumer
/// back, for example to wait for a new producer after `PeerDied`.
///
/// Cancellation-safe: a message leaves the ring only in the poll that
/// yields it, so dropping a `next()` future loses nothing.
#[derive(Debug)]
pub struct MessageStream {
    inner: AsyncConsumer,
    /// The stream has ended: every later poll says `None`.
    done: bool,
}

impl MessageStream {
    /// The async consumer back (also after the stream ended).
    pub fn into_inner(self) -> AsyncConsumer {
        self.inner
    }

    /// Whether the stream has ended.
    pub fn is_terminated(&self) -> bool {
        self.done
    }

    fn end_with(&mut self, e: RecvError) -> Poll<Option<Result<Vec<u8>, RecvError>>> {
        self.done = true;
        match e {
            RecvError::Disconnected => Poll::Ready(None),
            e => Poll::Ready(Some(Err(e))),
        }
    }
}

impl Stream for MessageStream {
    type Item = Result<Vec<u8>, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.inner.inner.try_recv_vec() {
                Ok(v) => return Poll::Ready(Some(Ok(v))),
                Err(TryRecvError::Empty) => {}
                Err(e) => return this.end_with(e.into()),
            }
            match this.inner.inner.arm() {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return this.end_with(e),
            }
            match this.inner.fd.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                Poll::Ready(Err(e)) => return this.end_with(io_recv(e)),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, None)
        }
    }
}

/// A [`Producer`] for async code.
#[derive(Debug)]
pub struct AsyncProducer {
    fd: AsyncFd<Fd>,
    inner: Producer,
}

fn io_send(e: io::Error) -> SendError<()> {
    SendError::Corrupt {
        msg: (),
        corruption: crate::error::Corruption {
            field: "readiness descriptor",
            found: e.raw_os_error().unwrap_or(0) as u64,
            expected: crate::error::Expected::Exactly(0),
        },
    }
}

impl AsyncProducer {
    /// Wraps `producer`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as tokio's `AsyncFd` does).
    ///
    /// # Errors
    ///
    /// The error making the readiness descriptor or registering it with
    /// the runtime.
    pub fn new(mut producer: Producer) -> io::Result<AsyncProducer> {
        let raw = producer
            .readiness_fd()
            .map_err(io::Error::other)?
            .as_raw_fd();
        // SAFETY: `raw` is the readiness descriptor owned by `producer`,
        // which lives in the returned value next to the `AsyncFd` and is
        // dropped after it (field order, and `into_inner` drops the
        // `AsyncFd` first); the descriptor is never replaced while the
        // handle lives, and `Fd::as_raw_fd` always returns `raw`.
        let fd = unsafe { AsyncFd::register(Fd(raw)) }.map_err(io::Error::from)?;
        Ok(AsyncProducer {
            fd,
            inner: producer,
        })
    }

    /// The producer, for the synchronous calls.
    pub fn get_mut(&mut self) -> &mut Producer {
        &mut self.inner
    }

    /// The producer back.
    pub fn into_inner(self) -> Producer {
        let AsyncProducer { fd, inner } = self;
        drop(fd);
        inner
    }

    /// Waits until the descriptor says a send may succeed (the descriptor
    /// signals by becoming readable, in this direction too).
    async fn writable(&mut self) -> Result<(), SendError<()>> {
        loop {
            if !self.inner.arm()? {
                return Ok(());
            }
            let mut guard = self.fd.readable().await.map_err(io_send)?;
            guard.clear_ready();
        }
    }

    /// Sends a message, waiting for a free slot.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_deadline`], never `Timeout`; the message comes
    /// back inside the error if it is owned (see [`Message`]).
    pub async fn send<M: Message>(&mut self, msg: M) -> Result<(), SendError<M::Unsent>> {
        loop {
            match self.inner.try_send(msg.as_ref()) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(())) => {}
                Err(e) => return Err(SendError::from(e).map(|()| msg.unsent())),
            }
            if let Err(e) = self.writable().await {
                return Err(e.map(|()| msg.unsent()));
            }
        }
    }

    /// Reserves the next slot for writing in place, waiting for one.
    ///
    /// # Errors
    ///
    /// As [`Producer::reserve_deadline`], never `Timeout`.
    pub async fn reserve(&mut self) -> Result<WriteSlot<'_>, SendError<()>> {
        while !self.inner.space_now()? {
            self.writable().await?;
        }
        // A slot is free, and only this handle can fill it.
        Ok(self.inner.try_reserve()?)
    }
}

/// A [`Duplex`] for async code: an [`AsyncProducer`] and an
/// [`AsyncConsumer`] used as one value. Make one with
/// [`Duplex::into_async`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmpipe::{Duplex, RingBuilder};
///
/// let (a, b) = Duplex::pair(RingBuilder::new().slots(8))?;
/// let (mut a, mut b) = (a.into_async()?, b.into_async()?);
/// let echo = tokio::spawn(async move {
///     let msg = b.recv_vec().await.unwrap();
///     b.send(msg).await.unwrap();
/// });
/// a.send(b"hello").await?;
/// assert_eq!(a.recv_vec().await?, b"hello");
/// echo.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncDuplex {
    tx: AsyncProducer,
    rx: AsyncConsumer,
}

impl Duplex {
    /// Wraps both halves for async code (feature `tokio`).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as tokio's `AsyncFd` does).
    ///
    /// # Errors
    ///
    /// As [`AsyncConsumer::new`] and [`AsyncProducer::new`].
    pub fn into_async(self) -> io::Result<AsyncDuplex> {
        let (tx, rx) = self.into_split();
        Ok(AsyncDuplex {
            tx: AsyncProducer::new(tx)?,
            rx: AsyncConsumer::new(rx)?,
        })
    }
}

impl AsyncDuplex {
    /// Sends a message, waiting for a free slot.
    ///
    /// # Errors
    ///
    /// As [`AsyncProducer::send`].
    pub async fn send<M: Message>(&mut self, msg: M) -> Result<(), SendError<M::Unsent>> {
        self.tx.send(msg).await
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// # Errors
    ///
    /// As [`AsyncConsumer::recv`].
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.rx.recv(buf).await
    }

    /// Receives the next message into a new `Vec`.
    ///
    /// # Errors
    ///
    /// As [`AsyncConsumer::recv_vec`].
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        self.rx.recv_vec().await
    }

    /// The halves, for two tasks.
    pub fn into_split(self) -> (AsyncProducer, AsyncConsumer) {
        (self.tx, self.rx)
    }

    /// The synchronous duplex back.
    pub fn into_inner(self) -> Duplex {
        Duplex::from_parts(self.tx.into_inner(), self.rx.into_inner())
    }
}

/// A [`Listener`] for async code: [`accept`](Self::accept)`.await`
/// (feature `tokio`).
///
/// The handshake with a waiting client is one round trip over the socket,
/// done inside the poll that accepts it (bounded by the listener's
/// handshake timeout).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmpipe::{connect, AsyncListener, Listener};
///
/// # let path = format!("/tmp/shmpipe-doc-async-listener-{}.sock", std::process::id());
/// let mut listener = AsyncListener::new(Listener::bind(&path)?)?;
/// let client = std::thread::spawn({
///     let path = path.clone();
///     move || connect(&path).map(|c| c.peer_cred())
/// });
/// let conn = listener.accept().await?;
/// assert_eq!(conn.peer_cred().pid, std::process::id());
/// assert_eq!(client.join().unwrap()?.pid, std::process::id());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncListener {
    fd: AsyncFd<Fd>,
    inner: Listener,
}

impl AsyncListener {
    /// Wraps `listener`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as tokio's `AsyncFd` does).
    ///
    /// # Errors
    ///
    /// The error registering its socket with the runtime.
    pub fn new(listener: Listener) -> io::Result<AsyncListener> {
        let raw = listener.as_raw_fd();
        // SAFETY: `raw` is the listening socket owned by `listener`, which
        // lives in the returned value next to the `AsyncFd` and is dropped
        // after it (field order, and `into_inner` drops the `AsyncFd`
        // first).
        let fd = unsafe { AsyncFd::register(Fd(raw)) }.map_err(io::Error::from)?;
        Ok(AsyncListener {
            fd,
            inner: listener,
        })
    }

    /// Waits for the next client and accepts it.
    ///
    /// # Errors
    ///
    /// As [`Listener::try_accept`], and [`Error::Io`] if the runtime's
    /// readiness fails.
    pub async fn accept(&mut self) -> Result<Connection, Error> {
        loop {
            if let Some(c) = self.inner.try_accept()? {
                return Ok(c);
            }
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Error::io("epoll", "listener", e))?;
            guard.clear_ready();
        }
    }

    /// The listener, for the synchronous calls.
    pub fn get_mut(&mut self) -> &mut Listener {
        &mut self.inner
    }

    /// The listener back.
    pub fn into_inner(self) -> Listener {
        let AsyncListener { fd, inner } = self;
        drop(fd);
        inner
    }
}
