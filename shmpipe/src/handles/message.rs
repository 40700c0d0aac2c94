//! [`Message`]: what the copy sends accept, and what a failed send hands
//! back.
//!
//! A failed send of an owned buffer (`Vec<u8>`, `String`, `Box<[u8]>`, ...)
//! returns the buffer inside the error, so nothing is lost. A failed send
//! of a borrowed one (`&[u8]`, `&Vec<u8>`, `&str`, `b"..."`) returns `()`:
//! the caller still has the bytes, and an error that borrows nothing is
//! `'static`, so `?` can box it. Before, `SendError<&[u8]>` kept the borrow
//! and `tx.send(&local[..])?` in a function returning `Box<dyn Error>`
//! failed with E0515 ("returns a value referencing data owned by the
//! current function"). A `From<SendError<&[u8]>> for Box<dyn Error>` cannot
//! fix that: it overlaps std's `impl<E: Error> From<E> for Box<dyn Error>`
//! (coherence ignores lifetimes).

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// A message the copy sends ([`Producer::send`](crate::Producer::send),
/// [`try_send`](crate::Producer::try_send), ...) accept: bytes, and what a
/// failed send hands back ([`Unsent`](Message::Unsent)).
///
/// | message | a failed send hands back |
/// |---|---|
/// | a reference: `&[u8]`, `&[u8; N]`, `&Vec<u8>`, `&str`, `&String`, any `&T` with `T: AsRef<[u8]>` | `()` (you still have it) |
/// | `Vec<u8>`, `Box<[u8]>`, `String`, `[u8; N]`, `Arc<[u8]>`, `Rc<[u8]>`, `Cow<[u8]>` | the message |
///
/// So `?` works on a send of a borrowed slice in a function returning
/// `Box<dyn Error>` or `anyhow::Error`:
///
/// ```
/// use std::error::Error;
/// use shmpipe::{Producer, RingBuilder};
///
/// fn send_twice(tx: &mut Producer) -> Result<(), Box<dyn Error>> {
///     let local = vec![1u8, 2, 3];
///     tx.send(&local[..])?; // SendError<()>: borrows nothing
///     tx.try_send(&local)?;
///     Ok(())
/// }
///
/// let ring = RingBuilder::new().slots(4).create_in_process()?;
/// let mut tx = ring.producer()?;
/// send_twice(&mut tx)?;
/// # Ok::<(), Box<dyn Error>>(())
/// ```
///
/// An owned message comes back, to be sent again or elsewhere:
///
/// ```
/// use shmpipe::{RingBuilder, TrySendError};
///
/// let ring = RingBuilder::new().slots(1).create_in_process()?;
/// let mut tx = ring.producer()?;
/// tx.try_send(vec![1u8])?;
/// match tx.try_send(vec![2u8]) {
///     Err(TrySendError::Full(back)) => assert_eq!(back, [2]),
///     other => panic!("expected Full, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// For a type of your own, send a reference to it (`tx.send(&mine)`) or
/// its bytes.
pub trait Message: AsRef<[u8]> {
    /// What a failed send hands back: `()` for a reference, the message
    /// itself for an owned buffer.
    type Unsent;

    /// Turns the message into what a failed send hands back.
    fn unsent(self) -> Self::Unsent;
}

impl<T: AsRef<[u8]> + ?Sized> Message for &T {
    type Unsent = ();

    #[inline]
    fn unsent(self) {}
}

impl<T: AsRef<[u8]> + ?Sized> Message for &mut T {
    type Unsent = ();

    #[inline]
    fn unsent(self) {}
}

/// Owned buffers: a failed send hands the message back.
macro_rules! owned_message {
    ($($t:ty),* $(,)?) => {$(
        impl Message for $t {
            type Unsent = $t;

            #[inline]
            fn unsent(self) -> $t {
                self
            }
        }
    )*};
}

owned_message!(Vec<u8>, Box<[u8]>, String, Arc<[u8]>, Rc<[u8]>,);

impl<'a> Message for Cow<'a, [u8]> {
    type Unsent = Cow<'a, [u8]>;

    #[inline]
    fn unsent(self) -> Cow<'a, [u8]> {
        self
    }
}

impl<const N: usize> Message for [u8; N] {
    type Unsent = [u8; N];

    #[inline]
    fn unsent(self) -> [u8; N] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsent<M: Message>(m: M) -> M::Unsent {
        m.unsent()
    }

    #[test]
    fn references_hand_back_nothing_owned_buffers_themselves() {
        let v = vec![1u8, 2];
        let () = unsent(&v[..]);
        let () = unsent(&v);
        let () = unsent("text");
        let () = unsent(b"bytes");
        assert_eq!(unsent(v.clone()), v);
        assert_eq!(unsent(String::from("s")), "s");
        assert_eq!(unsent([7u8; 3]), [7, 7, 7]);
        assert_eq!(&*unsent(Arc::<[u8]>::from(&b"ab"[..])), b"ab");
    }
}
