//! `shmpipe send` and `shmpipe recv`: a ring used as a pipe from the shell.
//!
//! Both frame the stream ([`super::frame`]) so that `recv` exits 0 only for
//! a stream it received whole, and both stop at once on a signal or a
//! closed standard output, close their side and remove a ring nothing can
//! use any more ([`leave`]).
//!
//! Every wait is one `poll(2)` with no timeout (or `recv --timeout`'s
//! deadline) over what can end it: the handle's readiness descriptor
//! (armed first: a message or room, the peer closing, dying or the ring
//! being removed), the signal handler's self-pipe
//! ([`interrupt::wake_fd`]) and, for `recv`, standard output (a pipe whose
//! reader left reports `POLLERR`). A parked side makes no periodic
//! wake-ups.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use shmpipe::{
    Address, Consumer, Error, Producer, ReadSlot, RecvError, Ring, RingBuilder, RingInfo,
    SendError, Side, SideState, TryRecvError, TrySendError, WriteSlot,
};

use super::frame::{self, Frame};
use super::{CreateOptions, CreatePolicy, RecvArgs, SendArgs};
use crate::fail::{exit, CmdResult, Failure};
use crate::interrupt;

/// How long `recv` waits, after the end mark, for the producer to close
/// before it leaves the ring alone.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why `send` or `recv` stopped before the end of its stream.
enum Stop {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(i32),
    /// `recv`: standard output was closed.
    BrokenPipe,
    /// The peer closed its side.
    Disconnected,
    /// The peer process died holding its side.
    PeerDied(u32),
    /// `recv --timeout` elapsed.
    Timeout,
    /// The ring was removed (`shmpipe rm --force`).
    Removed,
    /// Anything else, with its message and exit code.
    Failed(Failure),
}

/// Opens the ring, or creates it (as the policy allows), with the
/// library's `open_or_create`: the peer may be creating it at the same
/// moment. Says whether this process created it. Creation options given
/// for an existing ring of another geometry are refused (exit 7).
fn open_or_create(
    address: &Address,
    policy: CreatePolicy,
    options: &CreateOptions,
) -> Result<(Ring, bool), Failure> {
    if policy.create {
        if options.reclaim {
            super::admin::refuse_unread(address, "--reclaim would drop")?;
        }
        return Ok((super::create_ring(options, address)?, true));
    }
    let mut b = options.builder();
    // Without --create an existing ring is used as it is, stale or not.
    b.reclaim_stale(false);
    let ring = if policy.no_create {
        b.open(address)
    } else {
        b.open_or_create(address)
    }
    .map_err(|e| super::open_failure(e, address))?;
    let created = ring.created();
    Ok((ring, created))
}

/// Standard input or output as an unbuffered `File` (std's stdout is
/// line-buffered, which would split binary data at every newline).
fn std_file(fd: std::os::fd::BorrowedFd<'_>) -> Result<File, Failure> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

fn signal_check() -> Result<(), Stop> {
    match interrupt::caught() {
        Some(sig) => Err(Stop::Signal(sig)),
        None => Ok(()),
    }
}

/// Sleeps in one `poll(2)` until `fd` reports `flags`, a signal is caught,
/// `deadline` passes or (with `output`) standard output's reader is gone;
/// returns early on `EINTR`. The caller re-checks everything after it.
/// `Err(BrokenPipe)` when `output` reports `POLLERR` or `POLLHUP`.
fn sleep(
    fd: BorrowedFd<'_>,
    flags: PollFlags,
    output: Option<&File>,
    deadline: Option<Instant>,
) -> Result<(), Stop> {
    let wake = interrupt::wake_fd();
    let mut fds = Vec::with_capacity(3);
    fds.push(PollFd::from_borrowed_fd(fd, flags));
    if let Some(w) = wake {
        fds.push(PollFd::from_borrowed_fd(w, PollFlags::IN));
    }
    if let Some(out) = output {
        // No events asked: only POLLERR/POLLHUP (the reader left).
        fds.push(PollFd::new(out, PollFlags::empty()));
    }
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        }
    });
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => {
            return Err(Stop::Failed(Failure::new(
                exit::ERROR,
                format!("waiting in poll(2): {e}"),
            )))
        }
    }
    if output.is_some() {
        let gone = PollFlags::ERR | PollFlags::HUP;
        if fds.last().is_some_and(|f| f.revents().intersects(gone)) {
            return Err(Stop::BrokenPipe);
        }
    }
    Ok(())
}

/// Waits until `file` is ready for `flags` (or a signal is caught, which
/// the caller checks next).
fn ready(file: &File, flags: PollFlags) -> Result<(), Stop> {
    sleep(file.as_fd(), flags, None, None)
}

/// One read from standard input, interruptible by a signal.
fn read_input(input: &mut File, buf: &mut [u8]) -> Result<usize, Stop> {
    loop {
        signal_check()?;
        ready(input, PollFlags::IN)?;
        signal_check()?;
        match input.read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Stop::Failed(Failure::new(
                    exit::ERROR,
                    format!("reading standard input: {e}"),
                )))
            }
        }
    }
}

/// Writes all of `data` to standard output, interruptible by a signal.
fn write_output(mut output: &File, mut data: &[u8]) -> Result<(), Stop> {
    while !data.is_empty() {
        signal_check()?;
        ready(output, PollFlags::OUT)?;
        signal_check()?;
        match output.write(data) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Ok(0) => {
                return Err(Stop::Failed(Failure::new(
                    exit::ERROR,
                    "writing standard output: it accepts no more bytes",
                )))
            }
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Err(Stop::BrokenPipe),
            Err(e) => {
                return Err(Stop::Failed(Failure::new(
                    exit::ERROR,
                    format!("writing standard output: {e}"),
                )))
            }
        }
    }
    Ok(())
}

/// Makes the handle's readiness descriptor now, so that a later `arm`
/// cannot fail to make it (it would return "do not wait", and the waits
/// would spin).
fn readiness(fd: Result<BorrowedFd<'_>, Error>) -> Result<(), Failure> {
    fd.map(|_| ()).map_err(|e| {
        Failure::new(
            exit::ERROR,
            format!("{e}; raise the open-file limit (`ulimit -n`) or close descriptors"),
        )
    })
}

/// The readiness descriptor, made at start ([`readiness`]).
fn made(fd: Result<BorrowedFd<'_>, Error>) -> Result<BorrowedFd<'_>, Stop> {
    fd.map_err(|e| Stop::Failed(Failure::new(exit::ERROR, e)))
}

/// Reserves a slot, sleeping until there is room or something ends the
/// wait, and hands it to `f`.
fn with_slot<R>(tx: &mut Producer, f: impl FnOnce(WriteSlot<'_>) -> R) -> Result<R, Stop> {
    loop {
        signal_check()?;
        match tx.try_reserve() {
            Ok(slot) => return Ok(f(slot)),
            Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => return Err(Stop::Disconnected),
            Err(TrySendError::Removed(())) => return Err(Stop::Removed),
            Err(e) => return Err(Stop::Failed(Failure::new(exit::CORRUPT, e))),
        }
        match tx.arm() {
            Ok(true) => sleep(made(tx.readiness_fd())?, PollFlags::IN, None, None)?,
            Ok(false) => {}
            Err(SendError::Disconnected(())) => return Err(Stop::Disconnected),
            Err(SendError::PeerDied { pid, .. }) => return Err(Stop::PeerDied(pid)),
            Err(SendError::Removed(())) => return Err(Stop::Removed),
            Err(e) => return Err(Stop::Failed(Failure::new(exit::CORRUPT, e))),
        }
    }
}

/// Borrows the next message, sleeping until one arrives or something ends
/// the wait (with `output`: also its reader leaving), and hands it to `f`.
fn with_msg<R>(
    rx: &mut Consumer,
    deadline: Option<Instant>,
    output: Option<&File>,
    f: impl FnOnce(ReadSlot<'_>) -> R,
) -> Result<R, Stop> {
    loop {
        signal_check()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::Timeout);
        }
        match rx.try_borrow() {
            Ok(msg) => return Ok(f(msg)),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Err(Stop::Disconnected),
            Err(TryRecvError::Removed) => return Err(Stop::Removed),
            Err(e) => return Err(Stop::Failed(Failure::new(exit::CORRUPT, e))),
        }
        match rx.arm() {
            Ok(true) => sleep(made(rx.readiness_fd())?, PollFlags::IN, output, deadline)?,
            Ok(false) => {}
            Err(RecvError::Disconnected) => return Err(Stop::Disconnected),
            Err(RecvError::PeerDied { pid }) => return Err(Stop::PeerDied(pid)),
            Err(RecvError::Removed) => return Err(Stop::Removed),
            Err(e) => return Err(Stop::Failed(Failure::new(exit::CORRUPT, e))),
        }
    }
}

fn live(s: &SideState) -> bool {
    matches!(s, SideState::Attached { alive: true, .. })
}

fn snapshot(address: &Address) -> Option<RingInfo> {
    let mut b = RingBuilder::new();
    b.open_timeout(Duration::from_millis(100));
    b.open_read_only(address).ok().map(|r| r.info())
}

/// After this process closed its `role` side: removes the ring if nothing
/// can use it any more. That is when no live process holds a side, and
/// either nothing waits in it, or this process created it, or the peer
/// closed its side (its stream is over). Whether the creator still runs
/// does not count: it is often the peer `shmpipe send`, just exiting.
fn leave(address: &Address, role: Side, created: bool, keep: bool) {
    if keep {
        return;
    }
    let Some(info) = snapshot(address) else {
        return;
    };
    if live(&info.producer.state) || live(&info.consumer.state) {
        return;
    }
    let peer = match role {
        Side::Producer => &info.consumer.state,
        Side::Consumer => &info.producer.state,
    };
    let drop_unread = created || matches!(peer, SideState::Closed { .. });
    if !drop_unread && !info.is_empty() {
        return;
    }
    match Ring::remove(address, false) {
        Ok(()) | Err(Error::NotFound { .. }) | Err(Error::InUse { .. }) => {}
        Err(e) => eprintln!("shmpipe: could not remove {address}: {e}"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn send(a: SendArgs) -> CmdResult {
    interrupt::install()?;
    let (ring, created) = open_or_create(&a.address, a.policy, &a.options)?;
    let mut tx = ring
        .producer()
        .map_err(|e| super::open_failure(e, &a.address))?;
    readiness(tx.readiness_fd())?;
    drop(ring);
    let mut input = std_file(std::io::stdin().as_fd())?;
    let result = stream_out(&mut tx, &mut input, a.raw);
    drop(tx);
    match result {
        Ok(()) => Ok(()),
        Err(stop) => {
            // A removed ring's name may already belong to a new ring.
            if !matches!(stop, Stop::PeerDied(_) | Stop::Failed(_) | Stop::Removed) {
                leave(&a.address, Side::Producer, created, false);
            }
            Err(match stop {
                Stop::Signal(sig) => Failure::signal(sig),
                Stop::Disconnected => Failure::new(
                    exit::ERROR,
                    format!(
                        "the consumer of {} disconnected before the end of input",
                        a.address
                    ),
                ),
                Stop::PeerDied(pid) => Failure::new(
                    exit::PEER_DIED,
                    format!(
                        "the consumer of {addr} (process {pid}) died; \
                         `shmpipe recv --resume {addr}` can take over and receive what was \
                         not yet read",
                        addr = a.address
                    ),
                ),
                Stop::Failed(f) => f,
                Stop::Removed => removed(&a.address),
                Stop::BrokenPipe | Stop::Timeout => {
                    Failure::new(exit::ERROR, "send stopped unexpectedly")
                }
            })
        }
    }
}

/// Sends standard input: the start mark, one data message per read, the
/// end mark (only the reads with `raw`).
fn stream_out(tx: &mut Producer, input: &mut File, raw: bool) -> Result<(), Stop> {
    let id = frame::new_id();
    if !raw {
        with_slot(tx, |mut slot| {
            let n = frame::start(&mut slot, id, std::process::id());
            slot.commit(n);
        })?;
    }
    let skip = usize::from(!raw);
    let (mut bytes, mut messages) = (0u64, 0u64);
    loop {
        let n = with_slot(tx, |mut slot| -> Result<usize, Stop> {
            let n = read_input(input, &mut slot[skip..])?;
            if n > 0 {
                if !raw {
                    slot[0] = frame::DATA;
                }
                slot.commit(skip + n);
            }
            // At end of input the slot is dropped unpublished.
            Ok(n)
        })??;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        messages += 1;
    }
    if !raw {
        with_slot(tx, |mut slot| {
            let n = frame::end(&mut slot, id, bytes, messages);
            slot.commit(n);
        })?;
    }
    Ok(())
}

/// Exits without closing the consumer side, for a receiver that refuses
/// what it found and leaves it to another: closing would tell a live
/// sender that its reader went away (it would stop), whereas a claim left
/// by an exited process is a dead one, which the next receiver takes over
/// and a blocked sender waits on, as before this receiver came.
fn leave_untouched(rx: Consumer) {
    std::mem::forget(rx);
}

/// What `recv` has seen of the stream.
#[derive(Default)]
struct Progress {
    /// The start mark's stream id, once seen.
    id: Option<u64>,
    /// Whether any message arrived.
    any: bool,
    /// Data bytes and messages written to standard output.
    bytes: u64,
    messages: u64,
}

/// How the receive loop ended without a [`Stop`].
enum Received {
    /// The end mark arrived (or, with `--raw`, the producer closed).
    Complete,
    /// The first message is not a start mark and `--resume` was not given.
    MissingStart,
    /// A start mark in the middle of a stream.
    NewStream,
    /// A message that is not a frame.
    Foreign(frame::FrameError),
    /// The end mark disagrees with what arrived.
    Mismatch { bytes: u64, messages: u64 },
}

pub fn recv(a: RecvArgs) -> CmdResult {
    interrupt::install()?;
    let (ring, created) = open_or_create(&a.address, a.policy, &a.options)?;
    let mut rx = ring
        .consumer()
        .map_err(|e| super::open_failure(e, &a.address))?;
    readiness(rx.readiness_fd())?;
    drop(ring);
    let mut output = std_file(std::io::stdout().as_fd())?;
    let mut p = Progress::default();
    let result = stream_in(&mut rx, &mut output, &a, &mut p);
    let addr = &a.address;
    let stream = || {
        format!(
            "{} in {}",
            plural(p.bytes, "byte", "bytes"),
            plural(p.messages, "message", "messages")
        )
    };
    match result {
        Ok(Received::Complete) => {
            // Wait for the producer to close, so the ring can go.
            // A message instead means a new stream: it stays for the next
            // receiver.
            let deadline = Some(Instant::now() + CLOSE_WAIT);
            let closed = a.raw
                || matches!(
                    with_msg(&mut rx, deadline, None, |m| std::mem::forget(m)),
                    Err(Stop::Disconnected)
                );
            drop(rx);
            if closed {
                leave(addr, Side::Consumer, created, a.keep);
            }
            Ok(())
        }
        Ok(Received::MissingStart) => {
            let position = rx.position();
            leave_untouched(rx);
            Err(Failure::new(
                exit::INCOMPLETE,
                format!(
                    "the stream on {addr} is missing its start: an earlier receiver took \
                     the first messages ({} already read from this ring); nothing was \
                     written; `shmpipe recv --resume {addr}` receives the rest",
                    plural(position, "message was", "messages were")
                ),
            ))
        }
        Ok(Received::NewStream) => {
            leave_untouched(rx);
            Err(Failure::new(
                exit::INCOMPLETE,
                format!(
                    "the stream on {addr} ended without its end mark after {}: a new \
                     stream began (its sender was replaced); the new stream stays in the ring",
                    stream()
                ),
            ))
        }
        Ok(Received::Foreign(e)) => {
            leave_untouched(rx);
            Err(Failure::new(
                exit::INCOMPLETE,
                format!(
                    "message {} on {addr} is not part of a `shmpipe send` stream ({e}); it \
                     stays in the ring; `shmpipe recv --raw {addr}` receives messages as they are",
                    p.messages + u64::from(p.id.is_some()) + 1
                ),
            ))
        }
        Ok(Received::Mismatch { bytes, messages }) => {
            drop(rx);
            Err(Failure::new(
                exit::INCOMPLETE,
                format!(
                    "the stream on {addr} is damaged: its end mark counts {} in {}, but {} \
                     arrived",
                    plural(bytes, "byte", "bytes"),
                    plural(messages, "message", "messages"),
                    stream()
                ),
            ))
        }
        Err(stop) => {
            drop(rx);
            // A corrupt ring stays for `inspect`; a removed one's name may
            // already belong to a new ring.
            if !matches!(stop, Stop::Failed(_) | Stop::Removed) {
                leave(addr, Side::Consumer, created, a.keep);
            }
            Err(match stop {
                Stop::Signal(sig) => Failure::signal(sig),
                Stop::BrokenPipe => Failure::signal(libc::SIGPIPE),
                Stop::Disconnected if !p.any => Failure::new(
                    exit::INCOMPLETE,
                    format!("the producer of {addr} closed without sending a stream"),
                ),
                Stop::Disconnected => Failure::new(
                    exit::INCOMPLETE,
                    format!(
                        "the stream on {addr} ended without its end mark after {}: its \
                         sender stopped before the end of its input; everything that arrived \
                         was written",
                        stream()
                    ),
                ),
                Stop::PeerDied(pid) => Failure::new(
                    exit::PEER_DIED,
                    format!(
                        "the producer of {addr} (process {pid}) died after {}; everything it \
                         committed was written, but the stream is incomplete",
                        stream()
                    ),
                ),
                Stop::Timeout => Failure::new(
                    exit::TIMEOUT,
                    format!(
                        "no message on {addr} within {}",
                        humantime::format_duration(a.timeout.unwrap_or_default())
                    ),
                ),
                Stop::Failed(f) => f,
                Stop::Removed => removed(addr),
            })
        }
    }
}

fn removed(address: &Address) -> Failure {
    Failure::new(
        exit::REMOVED,
        format!(
            "ring {address} was removed (`shmpipe rm --force`) while in use; the stream \
             is incomplete"
        ),
    )
}

/// Receives messages and writes their data to standard output until the
/// end mark (with `--raw`: until the producer closes).
fn stream_in(
    rx: &mut Consumer,
    output: &mut File,
    a: &RecvArgs,
    p: &mut Progress,
) -> Result<Received, Stop> {
    loop {
        let deadline = a.timeout.and_then(|t| Instant::now().checked_add(t));
        let step = with_msg(
            rx,
            deadline,
            Some(&*output),
            |msg| -> Result<Option<Received>, Stop> {
                let first = !p.any;
                let frame = if a.raw {
                    Frame::Data(&msg)
                } else {
                    match frame::decode(&msg) {
                        Ok(f) => f,
                        Err(e) => {
                            // Left in the ring for a receiver that wants it.
                            std::mem::forget(msg);
                            return Ok(Some(Received::Foreign(e)));
                        }
                    }
                };
                let done = match frame {
                    Frame::Start { id, .. } if first => {
                        p.id = Some(id);
                        None
                    }
                    Frame::Start { .. } => Some(Received::NewStream),
                    Frame::Data(_) | Frame::End { .. } if first && !a.resume && !a.raw => {
                        Some(Received::MissingStart)
                    }
                    Frame::Data(d) => {
                        if let Err(stop) = write_output(output, d) {
                            // The message stays unreleased: a new receiver
                            // gets it again.
                            std::mem::forget(msg);
                            return Err(stop);
                        }
                        p.bytes += d.len() as u64;
                        p.messages += 1;
                        None
                    }
                    Frame::End {
                        id,
                        bytes,
                        messages,
                    } => match p.id {
                        Some(start)
                            if start != id || bytes != p.bytes || messages != p.messages =>
                        {
                            Some(Received::Mismatch { bytes, messages })
                        }
                        _ => Some(Received::Complete),
                    },
                };
                if matches!(done, Some(Received::NewStream | Received::MissingStart)) {
                    std::mem::forget(msg);
                }
                p.any = true;
                Ok(done)
            },
        );
        match step {
            Ok(Ok(None)) => continue,
            Ok(Ok(Some(r))) => return Ok(r),
            Ok(Err(stop)) | Err(stop) => {
                if a.raw && matches!(stop, Stop::Disconnected) {
                    return Ok(Received::Complete);
                }
                return Err(stop);
            }
        }
    }
}
