//! `shmpipe send` and `shmpipe recv`: a ring used as a pipe from the shell.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use shmpipe::{Address, Error, RecvError, Ring, SendError};

use super::{CreateOptions, CreatePolicy, RecvArgs, SendArgs};
use crate::fail::{exit, CmdResult, Failure};

/// Opens the ring, or creates it (as the policy allows); tolerates the
/// peer creating it at the same moment.
fn open_or_create(
    address: &Address,
    policy: CreatePolicy,
    options: &CreateOptions,
) -> Result<Ring, Failure> {
    if policy.create {
        return Ok(options.builder().create(address)?);
    }
    match Ring::open(address) {
        Ok(r) => Ok(r),
        Err(Error::NotFound { .. }) if !policy.no_create => {
            match options.builder().create(address) {
                Ok(r) => Ok(r),
                // The other side created it first.
                Err(Error::AlreadyExists { .. }) => Ok(Ring::open(address)?),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Standard input or output as an unbuffered `File` (std's stdout is
/// line-buffered, which would split binary data at every newline).
fn std_file(fd: std::os::fd::BorrowedFd<'_>) -> Result<File, Failure> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

pub fn send(a: SendArgs) -> CmdResult {
    let ring = open_or_create(&a.address, a.policy, &a.options)?;
    let mut tx = ring.producer()?;
    let mut input = std_file(std::io::stdin().as_fd())?;
    loop {
        let mut slot = match tx.reserve() {
            Ok(slot) => slot,
            Err(SendError::Disconnected(())) => {
                return Err(Failure::new(
                    exit::ERROR,
                    format!(
                        "the consumer of {} disconnected before the end of input",
                        a.address
                    ),
                ))
            }
            Err(SendError::PeerDied { pid, .. }) => {
                return Err(Failure::new(
                    exit::PEER_DIED,
                    format!(
                        "the consumer of {} (process {pid}) died; a new `shmpipe recv` can \
                         take over and receive what was not yet read",
                        a.address
                    ),
                ))
            }
            Err(e) => return Err(Failure::new(exit::CORRUPT, e)),
        };
        let n = loop {
            match input.read(&mut slot) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::new(
                        exit::ERROR,
                        format!("reading standard input: {e}"),
                    ))
                }
            }
        };
        if n == 0 {
            // End of input: the slot is dropped unpublished, and dropping
            // the producer closes the ring, which the receiver sees as the
            // end of the stream.
            return Ok(());
        }
        slot.commit(n);
    }
}

pub fn recv(a: RecvArgs) -> CmdResult {
    let ring = open_or_create(&a.address, a.policy, &a.options)?;
    let mut rx = ring.consumer()?;
    let mut output = std_file(std::io::stdout().as_fd())?;
    loop {
        let next = match a.timeout {
            Some(t) => match Instant::now().checked_add(t) {
                Some(deadline) => rx.borrow_deadline(deadline),
                None => rx.borrow(),
            },
            None => rx.borrow(),
        };
        match next {
            Ok(msg) => {
                if let Err(e) = output.write_all(&msg) {
                    // The message stays unreleased: a new receiver would get
                    // it again.
                    std::mem::forget(msg);
                    return Err(Failure::new(
                        exit::ERROR,
                        format!("writing standard output: {e}"),
                    ));
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(RecvError::PeerDied { pid }) => {
                return Err(Failure::new(
                    exit::PEER_DIED,
                    format!(
                        "the producer of {} (process {pid}) died; everything it committed was \
                         written; a new `shmpipe send` can take over the ring",
                        a.address
                    ),
                ))
            }
            Err(RecvError::Timeout) => {
                return Err(Failure::new(
                    exit::TIMEOUT,
                    format!(
                        "no message on {} within {}",
                        a.address,
                        humantime::format_duration(a.timeout.unwrap_or_default())
                    ),
                ))
            }
            Err(e) => return Err(Failure::new(exit::CORRUPT, e)),
        }
    }
    drop(rx);
    if !a.keep {
        match Ring::remove(&a.address, false) {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            // A new producer already attached: leave the ring to it.
            Err(Error::InUse { .. }) => {}
            Err(e) => eprintln!("shmpipe: could not remove {}: {e}", a.address),
        }
    }
    Ok(())
}
