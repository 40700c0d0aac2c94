//! The calls of the benchmark that rustix does not wrap: POSIX message
//! queues (`mq_*`), System V message queues (`msg*`) and signal handler
//! registration (`sigaction`). All of the benchmark's libc use is here.
//!
//! # References
//!  - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
//!  - [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html),
//!    [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html),
//!    [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
//!  - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)

use std::ffi::CString;
use std::io;
use std::mem;
use std::ptr;

fn cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// Retries `f` while it fails with `EINTR`; maps -1 to the errno.
fn retry<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        let r = f();
        if r != T::from(-1) {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `fd` is an open descriptor of this process (`fcntl(F_GETFD)`),
/// checked on a raw number before anything takes ownership of it.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; on a number that
    // is not open it fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

// ---------------------------------------------------------------------------
// POSIX message queues
// ---------------------------------------------------------------------------

/// An open POSIX message queue; closed on drop (the name stays until
/// [`PosixMq::unlink`]).
#[derive(Debug)]
pub struct PosixMq {
    mqd: libc::mqd_t,
}

impl PosixMq {
    /// `mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, attr)`:
    /// a new queue of `maxmsg` messages of at most `msgsize` bytes.
    ///
    /// Fails with `EINVAL` when the sizes exceed `fs.mqueue.msg_max` or
    /// `msgsize_max` (ignored with `CAP_SYS_RESOURCE`), `EMFILE` when the
    /// queue would exceed `RLIMIT_MSGQUEUE`, `EEXIST` if the name exists.
    pub fn create(name: &str, maxmsg: usize, msgsize: usize) -> io::Result<PosixMq> {
        let cname = cstring(name)?;
        // SAFETY: `mq_attr` is four `c_long`s plus padding; all-zero is a
        // valid value.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        attr.mq_maxmsg = maxmsg as libc::c_long;
        attr.mq_msgsize = msgsize as libc::c_long;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC;
        let mode: libc::mode_t = 0o600;
        // SAFETY: `cname` is NUL-terminated and `attr` initialised; both
        // outlive the call. With O_CREAT the variadic arguments are the
        // mode and the attribute pointer.
        let mqd = retry(|| unsafe {
            libc::mq_open(cname.as_ptr(), flags, mode, &attr as *const libc::mq_attr)
        })?;
        Ok(PosixMq { mqd })
    }

    /// `mq_open(name, O_WRONLY or O_RDONLY | O_CLOEXEC)`: an existing queue.
    pub fn open(name: &str, write: bool) -> io::Result<PosixMq> {
        let cname = cstring(name)?;
        let flags = if write {
            libc::O_WRONLY
        } else {
            libc::O_RDONLY
        } | libc::O_CLOEXEC;
        // SAFETY: `cname` is NUL-terminated and outlives the call; without
        // O_CREAT no variadic argument is read.
        let mqd = retry(|| unsafe { libc::mq_open(cname.as_ptr(), flags) })?;
        Ok(PosixMq { mqd })
    }

    /// `mq_unlink(name)`.
    pub fn unlink(name: &str) -> io::Result<()> {
        let cname = cstring(name)?;
        // SAFETY: `cname` is NUL-terminated and outlives the call.
        retry(|| unsafe { libc::mq_unlink(cname.as_ptr()) }).map(drop)
    }

    /// `mq_send(mqd, msg, len, 0)`, blocking while the queue is full.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: `msg` is valid for `msg.len()` bytes for the call.
        retry(|| unsafe { libc::mq_send(self.mqd, msg.as_ptr().cast(), msg.len(), 0) }).map(drop)
    }

    /// `mq_receive(mqd, buf, len, NULL)`, blocking while the queue is
    /// empty; returns the message length. `buf` must hold the queue's
    /// `mq_msgsize`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
        // call; the priority pointer may be NULL.
        let n = retry(|| unsafe {
            libc::mq_receive(
                self.mqd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                ptr::null_mut(),
            )
        })?;
        Ok(n as usize)
    }
}

impl Drop for PosixMq {
    fn drop(&mut self) {
        // SAFETY: `mqd` is a descriptor this value owns.
        unsafe { libc::mq_close(self.mqd) };
    }
}

// ---------------------------------------------------------------------------
// System V message queues
// ---------------------------------------------------------------------------

/// `msgget(key, IPC_CREAT | IPC_EXCL | 0600)`: a new queue; its id.
pub fn sysv_create(key: i32) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    retry(|| unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) })
}

/// `msgctl(id, IPC_RMID)`: removes the queue (blocked callers get `EIDRM`).
pub fn sysv_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    retry(|| unsafe { libc::msgctl(id, libc::IPC_RMID, ptr::null_mut()) }).map(drop)
}

fn sysv_stat(id: i32) -> io::Result<libc::msqid_ds> {
    // SAFETY: `msqid_ds` is plain integers; all-zero is a valid value.
    let mut ds: libc::msqid_ds = unsafe { mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `msqid_ds` for the call.
    retry(|| unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(ds)
}

/// The queue's capacity in bytes (`msg_qbytes`).
pub fn sysv_qbytes(id: i32) -> io::Result<u64> {
    Ok(sysv_stat(id)?.msg_qbytes as u64)
}

/// `msgctl(id, IPC_SET)` with a new `msg_qbytes`; above `kernel.msgmnb`
/// this needs `CAP_SYS_RESOURCE` (`EPERM` otherwise).
pub fn sysv_set_qbytes(id: i32, bytes: u64) -> io::Result<()> {
    let mut ds = sysv_stat(id)?;
    ds.msg_qbytes = bytes as libc::msglen_t;
    // SAFETY: `ds` is a valid `msqid_ds` read from this queue.
    retry(|| unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) }).map(drop)
}

/// A System V message buffer: the `long` message type followed by the
/// text, which is where the message is written and read in place.
#[derive(Debug)]
pub struct SysvBuf {
    words: Vec<libc::c_long>,
    len: usize,
}

const LONG: usize = mem::size_of::<libc::c_long>();

impl SysvBuf {
    /// A buffer for messages of `len` bytes.
    pub fn new(len: usize) -> SysvBuf {
        SysvBuf {
            words: vec![0; 1 + len.div_ceil(LONG)],
            len,
        }
    }

    /// The message text.
    pub fn text(&self) -> &[u8] {
        // SAFETY: the words after the first hold at least `len` bytes, any
        // bytes are valid `u8`s, and `u8` needs no alignment.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().add(1).cast(), self.len) }
    }

    /// The message text, to write into.
    pub fn text_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `text`, through the exclusive borrow.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().add(1).cast(), self.len) }
    }

    /// `msgsnd(id, buf, len, 0)` with message type `mtype`, blocking while
    /// the queue is full.
    pub fn send(&mut self, id: i32, mtype: i64, len: usize) -> io::Result<()> {
        let len = len.min(self.len);
        self.words[0] = mtype as libc::c_long;
        let p = self.words.as_ptr();
        // SAFETY: `p` points to a `long` type followed by at least `len`
        // bytes of text, valid for the call.
        retry(|| unsafe { libc::msgsnd(id, p.cast(), len, 0) }).map(drop)
    }

    /// `msgrcv(id, buf, len, mtype, 0)`, blocking until a message of type
    /// `mtype` arrives; returns its length.
    pub fn recv(&mut self, id: i32, mtype: i64) -> io::Result<usize> {
        let len = self.len;
        let p = self.words.as_mut_ptr();
        // SAFETY: `p` points to a `long` followed by `len` writable bytes;
        // the kernel writes at most that (longer messages fail with E2BIG).
        let n = retry(|| unsafe { libc::msgrcv(id, p.cast(), len, mtype as libc::c_long, 0) })?;
        Ok(n as usize)
    }
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// `sigaction(sig, {handler, SA_RESTART, empty mask})`. The handler must
/// only make async-signal-safe calls.
pub fn set_signal_handler(sig: i32, handler: extern "C" fn(i32)) -> io::Result<()> {
    // SAFETY: `sigaction` is plain data; all-zero is a valid value.
    let mut sa: libc::sigaction = unsafe { mem::zeroed() };
    sa.sa_sigaction = handler as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is a valid `sigaction`; `sa_mask` is inside it.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is initialised; the old action is not wanted.
    retry(|| unsafe { libc::sigaction(sig, &sa, ptr::null_mut()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_buffer_views_its_text() {
        let mut b = SysvBuf::new(13);
        assert_eq!(b.text().len(), 13);
        b.text_mut().copy_from_slice(b"hello, world!");
        assert_eq!(b.text(), b"hello, world!");
    }

    #[test]
    fn posix_queue_round_trip() {
        let name = format!("/shmpipe-bench-unit-{}", std::process::id());
        let q = match PosixMq::create(&name, 4, 64) {
            Ok(q) => q,
            // Message queues may be unavailable (no mqueue support): the
            // benchmark reports that as the row's reason.
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let tx = PosixMq::open(&name, true).unwrap();
        PosixMq::unlink(&name).unwrap();
        tx.send(b"abc").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(q.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }

    #[test]
    fn sysv_queue_round_trip() {
        let id = match sysv_create(libc::IPC_PRIVATE) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let mut b = SysvBuf::new(8);
        b.text_mut().copy_from_slice(&7u64.to_le_bytes());
        let sent = b.send(id, 2, 8);
        let mut r = SysvBuf::new(8);
        let got = r.recv(id, 2);
        sysv_remove(id).unwrap();
        sent.unwrap();
        assert_eq!(got.unwrap(), 8);
        assert_eq!(r.text(), 7u64.to_le_bytes());
    }
}
