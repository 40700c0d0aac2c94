//! Passing a segment's file descriptor to another process over a UNIX
//! socket (`SCM_RIGHTS`), so that unrelated processes can share a memfd
//! ring, which has no name to open.
//!
//! # References
//!  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html), `SCM_RIGHTS`

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// One marker byte travels with the descriptor (a stream socket needs at
/// least one byte of data to carry ancillary data).
const MARKER: u8 = b'R';

/// Sends `fd` over the connected UNIX socket `socket`.
pub(crate) fn send(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Errno::NOBUFS);
    }
    let data = [MARKER];
    loop {
        match sendmsg(
            socket,
            &[IoSlice::new(&data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(Errno::PIPE),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives one descriptor sent with [`send`] (close-on-exec set).
pub(crate) fn recv(socket: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 1];
    let msg = loop {
        let mut iov = [IoSliceMut::new(&mut data)];
        match recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(Errno::INTR) => continue,
            r => break r?,
        }
    };
    if msg.bytes == 0 {
        // The peer closed without sending anything.
        return Err(Errno::CONNRESET);
    }
    let mut received = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                // Keep the first; any extra descriptors are closed on drop.
                received.get_or_insert(fd);
            }
        }
    }
    match (data[0], received) {
        (MARKER, Some(fd)) => Ok(fd),
        _ => Err(Errno::PROTO),
    }
}
