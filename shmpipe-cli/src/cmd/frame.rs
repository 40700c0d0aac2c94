//! The stream protocol of `shmpipe send` and `shmpipe recv` (the command
//! line's own, on top of the library's messages; `docs/cli.md`, "Stream
//! framing").
//!
//! Every message starts with a tag byte:
//!
//! ```text
//! start  'S' 0x01 id:u64 pid:u32                 14 bytes, the first message
//! data   'D' payload...                          1 + the bytes of one read
//! end    'E' 0x01 id:u64 bytes:u64 messages:u64  26 bytes, the last message
//! ```
//!
//! Integers are little-endian. `id` is random per stream, so that a
//! receiver can tell one stream from the next; the end mark repeats it and
//! counts the data bytes and data messages, so that a receiver exits 0
//! only when it saw the start, every message and the end.

use std::fmt;

/// Tag of the start mark.
pub const START: u8 = b'S';
/// Tag of a data message.
pub const DATA: u8 = b'D';
/// Tag of the end mark.
pub const END: u8 = b'E';
/// Version byte of the start and end marks.
pub const VERSION: u8 = 1;
/// Length of the start mark.
pub const START_LEN: usize = 14;
/// Length of the end mark.
pub const END_LEN: usize = 26;

/// One decoded message.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The first message of a stream.
    Start {
        /// The stream's random id.
        id: u64,
        /// The sending process.
        pid: u32,
    },
    /// A piece of the stream.
    Data(&'a [u8]),
    /// The last message: the stream is complete.
    End {
        /// The stream's id, as in its start mark.
        id: u64,
        /// Data bytes sent.
        bytes: u64,
        /// Data messages sent.
        messages: u64,
    },
}

/// A message that is not a frame of this protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// An empty message.
    Empty,
    /// A first byte that is no tag.
    UnknownTag(u8),
    /// A start or end mark of another version.
    Version(u8),
    /// A start or end mark of the wrong length.
    Length {
        /// The tag.
        tag: u8,
        /// The message's length.
        len: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => f.write_str("an empty message"),
            FrameError::UnknownTag(t) => write!(f, "first byte {t:#04x} is no frame tag"),
            FrameError::Version(v) => write!(f, "frame version {v}, this shmpipe speaks {VERSION}"),
            FrameError::Length { tag, len } => {
                write!(f, "a {:?} mark of {len} bytes", char::from(*tag))
            }
        }
    }
}

/// Writes a start mark into `buf` (at least [`START_LEN`] bytes); returns
/// its length.
pub fn start(buf: &mut [u8], id: u64, pid: u32) -> usize {
    buf[0] = START;
    buf[1] = VERSION;
    buf[2..10].copy_from_slice(&id.to_le_bytes());
    buf[10..14].copy_from_slice(&pid.to_le_bytes());
    START_LEN
}

/// Writes an end mark into `buf` (at least [`END_LEN`] bytes); returns its
/// length.
pub fn end(buf: &mut [u8], id: u64, bytes: u64, messages: u64) -> usize {
    buf[0] = END;
    buf[1] = VERSION;
    buf[2..10].copy_from_slice(&id.to_le_bytes());
    buf[10..18].copy_from_slice(&bytes.to_le_bytes());
    buf[18..26].copy_from_slice(&messages.to_le_bytes());
    END_LEN
}

fn u64_at(m: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decodes one message.
///
/// # Errors
///
/// A [`FrameError`] for anything `shmpipe send` does not write.
pub fn decode(m: &[u8]) -> Result<Frame<'_>, FrameError> {
    let (&tag, rest) = m.split_first().ok_or(FrameError::Empty)?;
    let check = |want: usize| {
        if m.len() != want {
            return Err(FrameError::Length { tag, len: m.len() });
        }
        match rest[0] {
            VERSION => Ok(()),
            v => Err(FrameError::Version(v)),
        }
    };
    match tag {
        DATA => Ok(Frame::Data(rest)),
        START => {
            check(START_LEN)?;
            let mut pid = [0u8; 4];
            pid.copy_from_slice(&m[10..14]);
            Ok(Frame::Start {
                id: u64_at(m, 2),
                pid: u32::from_le_bytes(pid),
            })
        }
        END => {
            check(END_LEN)?;
            Ok(Frame::End {
                id: u64_at(m, 2),
                bytes: u64_at(m, 10),
                messages: u64_at(m, 18),
            })
        }
        t => Err(FrameError::UnknownTag(t)),
    }
}

/// A fresh stream id: the standard library's randomly seeded hasher over
/// the pid and the time.
pub fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        let mut buf = [0u8; 64];
        let n = start(&mut buf, 0x0123_4567_89ab_cdef, 42);
        assert_eq!(
            decode(&buf[..n]),
            Ok(Frame::Start {
                id: 0x0123_4567_89ab_cdef,
                pid: 42
            })
        );
        let n = end(&mut buf, 7, 1 << 40, 3);
        assert_eq!(
            decode(&buf[..n]),
            Ok(Frame::End {
                id: 7,
                bytes: 1 << 40,
                messages: 3
            })
        );
        assert_eq!(decode(b"Dhello"), Ok(Frame::Data(b"hello")));
    }

    #[test]
    fn anything_else_is_an_error() {
        assert_eq!(decode(b""), Err(FrameError::Empty));
        assert_eq!(decode(b"hello"), Err(FrameError::UnknownTag(b'h')));
        assert_eq!(
            decode(b"S\x01short"),
            Err(FrameError::Length { tag: b'S', len: 7 })
        );
        let mut buf = [0u8; END_LEN];
        end(&mut buf, 1, 2, 3);
        buf[1] = 9;
        assert_eq!(decode(&buf), Err(FrameError::Version(9)));
        assert_ne!(new_id(), new_id());
    }
}
