//! [`TypeFingerprint`]: what a typed ring carries (the size, alignment and
//! a hash of the name of its message type), written into the header by the
//! creator and compared when a typed handle is made.

use std::fmt;

/// The identity of a ring's message type: its size, its alignment and a
/// 64-bit hash of its name.
///
/// A ring created with [`RingBuilder::message_type`](crate::RingBuilder::message_type)
/// records the fingerprint of its type in the header; making a typed handle
/// ([`Ring::typed_producer`](crate::Ring::typed_producer),
/// [`Ring::typed_consumer`](crate::Ring::typed_consumer)) compares it with
/// the handle's type and refuses a difference with
/// [`Error::IncompatibleType`](crate::Error::IncompatibleType).
///
/// # What it catches, and what not
///
/// The name is [`core::any::type_name`] unless you give one
/// ([`named`](Self::named), `message_type_named`, `typed_*_named`). That
/// name is the type's path as the compiler spells it, for example
/// `my_feed::Tick`:
///
/// - a type defined twice, once in each program's own crate
///   (`producer::Tick`, `consumer::Tick`), gets two names: define it in a
///   crate both programs use, or give it an explicit name on both sides;
/// - the standard library does not promise the same spelling from one
///   compiler version to the next: peers built by different compilers may
///   be refused although their types agree (name them explicitly to be
///   independent of the compiler);
/// - a type whose fields changed but whose size, alignment and name did
///   not is *not* caught: put a version in an explicit name
///   (`"my_feed::Tick/v2"`) when you change a layout.
///
/// The check catches mistakes, not malice: a hostile peer can write any
/// fingerprint. Receiving stays safe whatever it wrote, because a
/// [`FromBytes`](zerocopy::FromBytes) type is valid for any bytes and each
/// message's length is checked.
///
/// The hash is 64-bit FNV-1a over the name's UTF-8 bytes: fixed by this
/// crate, the same in every build and on every platform.
///
/// # Examples
///
/// ```
/// use shmpipe::TypeFingerprint;
///
/// #[repr(C, align(16))]
/// struct Tick {
///     price: u64,
///     qty: u32,
///     side: u32,
/// }
/// let fp = TypeFingerprint::named::<Tick>("feed::Tick/1");
/// assert_eq!((fp.size(), fp.align()), (16, 16));
/// assert_eq!(fp, TypeFingerprint::named::<Tick>("feed::Tick/1"));
/// assert_ne!(fp, TypeFingerprint::named::<Tick>("feed::Tick/2"));
/// assert_ne!(fp, TypeFingerprint::named::<[u8; 16]>("feed::Tick/1"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeFingerprint {
    size: u64,
    align: u64,
    name_hash: u64,
}

impl TypeFingerprint {
    /// The fingerprint of `T`, named by [`core::any::type_name`].
    pub fn of<T>() -> TypeFingerprint {
        TypeFingerprint::named::<T>(core::any::type_name::<T>())
    }

    /// The fingerprint of `T` under an explicit name, independent of the
    /// compiler and of where `T` is defined.
    pub fn named<T>(name: &str) -> TypeFingerprint {
        TypeFingerprint {
            size: core::mem::size_of::<T>() as u64,
            align: core::mem::align_of::<T>() as u64,
            name_hash: fnv1a(name.as_bytes()),
        }
    }

    /// The type's size in bytes: each message is exactly this long.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The type's alignment in bytes.
    pub fn align(&self) -> u64 {
        self.align
    }

    /// The 64-bit FNV-1a hash of the type's name.
    pub fn name_hash(&self) -> u64 {
        self.name_hash
    }

    /// A fingerprint as stored in a header; `None` for an untyped ring
    /// (all three words zero: no type has alignment 0).
    pub(crate) fn from_raw(size: u64, align: u64, name_hash: u64) -> Option<TypeFingerprint> {
        (align != 0).then_some(TypeFingerprint {
            size,
            align,
            name_hash,
        })
    }
}

impl fmt::Debug for TypeFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeFingerprint")
            .field("size", &self.size)
            .field("align", &self.align)
            .field("name_hash", &format_args!("{:#018x}", self.name_hash))
            .finish()
    }
}

impl fmt::Display for TypeFingerprint {
    /// `64 bytes, align 64, name hash 0x…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes, align {}, name hash {:#018x}",
            self.size, self.align, self.name_hash
        )
    }
}

/// 64-bit FNV-1a: small, fixed, and the same everywhere.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference (isthe.com/chongo/tech/comp/fnv).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn untyped_is_all_zero() {
        assert_eq!(TypeFingerprint::from_raw(0, 0, 0), None);
        let fp = TypeFingerprint::of::<u64>();
        assert_eq!(
            TypeFingerprint::from_raw(fp.size(), fp.align(), fp.name_hash()),
            Some(fp)
        );
        assert_eq!(TypeFingerprint::of::<()>().align(), 1);
    }
}
