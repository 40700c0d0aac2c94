//! [`TypeFingerprint`]: what a ring created for one message type records
//! about it (size, alignment, a hash of its layout and a short name), so
//! that a peer built with another layout of "the same" type is refused on
//! open instead of misreading bytes.
//!
//! [`TypeFingerprint::of`] and [`TypeFingerprint::named`] compute one for
//! a Rust type; the typed API (`RingBuilder::message_type`,
//! `Ring::typed_producer`, ...) records and compares them.

use std::fmt;

/// Bytes of the type name kept in the header.
pub(crate) const NAME_LEN: usize = 32;

/// The identity of a message type, as recorded in a typed ring's header.
///
/// Two fingerprints are compatible when `size`, `align` and `hash` are
/// equal; `name` is shown in errors and by `shmpipe inspect` (it is kept
/// to 32 bytes, cut at a character boundary).
///
/// A ring created with [`RingBuilder::message_type`](crate::RingBuilder::message_type)
/// records the fingerprint of its type; making a typed handle
/// ([`Ring::typed_producer`](crate::Ring::typed_producer),
/// [`Ring::typed_consumer`](crate::Ring::typed_consumer)) compares it with
/// the handle's type and refuses a difference with
/// [`Error::IncompatibleType`](crate::Error::IncompatibleType).
///
/// # What it catches, and what not
///
/// [`of`](Self::of) hashes the type's name as [`core::any::type_name`]
/// spells it, for example `my_feed::Tick`; [`named`](Self::named) hashes a
/// name you choose. With the compiler's name:
///
/// - a type defined twice, once in each program's own crate
///   (`producer::Tick`, `consumer::Tick`), gets two names: define it in a
///   crate both programs use, or give it an explicit name on both sides;
/// - the standard library does not promise the same spelling from one
///   compiler version to the next: peers built by different compilers may
///   be refused although their types agree (an explicit name does not
///   depend on the compiler);
/// - a type whose fields changed but whose size, alignment and name did
///   not is *not* caught: put a version in an explicit name
///   (`"my_feed::Tick/v2"`) when you change a layout.
///
/// The check catches mistakes, not malice: a hostile creator can record
/// any fingerprint. Receiving stays safe whatever it recorded, because a
/// [`FromBytes`](zerocopy::FromBytes) type is valid for any bytes and each
/// message's length is checked.
///
/// # Examples
///
/// ```
/// use shmpipe::TypeFingerprint;
///
/// let a = TypeFingerprint::new(64, 64, 0x1234, "Tick");
/// assert_eq!(a.to_string(), "Tick (64 bytes, align 64, hash 0x0000000000001234)");
/// assert!(a.compatible(&TypeFingerprint::new(64, 64, 0x1234, "Tick")));
/// assert!(!a.compatible(&TypeFingerprint::new(64, 64, 0x9999, "Tick")));
///
/// #[repr(C, align(16))]
/// struct Quote {
///     bid: u64,
///     ask: u64,
/// }
/// let q = TypeFingerprint::named::<Quote>("feed::Quote/1");
/// assert_eq!((q.size, q.align, q.name.as_str()), (16, 16, "feed::Quote/1"));
/// assert!(q.compatible(&TypeFingerprint::named::<Quote>("feed::Quote/1")));
/// assert!(!q.compatible(&TypeFingerprint::named::<Quote>("feed::Quote/2")));
/// assert!(!q.compatible(&TypeFingerprint::named::<[u8; 16]>("feed::Quote/1")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeFingerprint {
    /// `size_of::<T>()`, in bytes.
    pub size: u64,
    /// `align_of::<T>()`, a power of two.
    pub align: u32,
    /// A hash identifying the type, never zero for a typed ring: for
    /// [`of`](Self::of) and [`named`](Self::named), the 64-bit FNV-1a hash
    /// of the whole name (fixed by this crate: the same in every build and
    /// on every platform).
    pub hash: u64,
    /// The type's name, at most 32 bytes.
    pub name: String,
}

impl TypeFingerprint {
    /// A fingerprint; `name` is cut to its first 32 bytes (at a character
    /// boundary).
    pub fn new(size: u64, align: u32, hash: u64, name: &str) -> TypeFingerprint {
        let mut end = name.len().min(NAME_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        TypeFingerprint {
            size,
            align,
            hash,
            name: name[..end].to_owned(),
        }
    }

    /// The fingerprint of `T`, named by [`core::any::type_name`].
    pub fn of<T>() -> TypeFingerprint {
        TypeFingerprint::named::<T>(core::any::type_name::<T>())
    }

    /// The fingerprint of `T` under an explicit name, independent of the
    /// compiler and of where `T` is defined. The hash covers the whole
    /// name; the name kept for messages is its last 32 bytes (the end of
    /// a path says most), led by `…` when cut.
    pub fn named<T>(name: &str) -> TypeFingerprint {
        let hash = match fnv1a(name.as_bytes()) {
            0 => 1, // zero means "untyped"
            h => h,
        };
        TypeFingerprint::new(
            core::mem::size_of::<T>() as u64,
            core::mem::align_of::<T>() as u32,
            hash,
            &tail(name),
        )
    }

    /// Whether a ring recorded with `other` carries values of this type:
    /// same size, alignment and layout hash (the name is not compared).
    pub fn compatible(&self, other: &TypeFingerprint) -> bool {
        self.size == other.size && self.align == other.align && self.hash == other.hash
    }

    /// The name as the header stores it: zero-padded bytes.
    pub(crate) fn name_bytes(&self) -> [u8; NAME_LEN] {
        let mut out = [0u8; NAME_LEN];
        let n = self.name.len().min(NAME_LEN);
        out[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        out
    }
}

impl fmt::Display for TypeFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(unnamed type)"
        } else {
            &self.name
        };
        write!(
            f,
            "{name} ({} bytes, align {}, hash {:#018x})",
            self.size, self.align, self.hash
        )
    }
}

/// `name`, or its last bytes led by `…` so that it fits `NAME_LEN`.
fn tail(name: &str) -> String {
    if name.len() <= NAME_LEN {
        return name.to_owned();
    }
    let mut start = name.len() - (NAME_LEN - '…'.len_utf8());
    while !name.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &name[start..])
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
    fn long_names_keep_their_end_and_their_whole_hash() {
        let a = TypeFingerprint::named::<u8>("some_crate::deeply::nested::module::Tick");
        assert!(a.name.starts_with('…') && a.name.ends_with("nested::module::Tick"));
        assert!(a.name.len() <= NAME_LEN);
        let b = TypeFingerprint::named::<u8>("other_crate::deeply::nested::module::Tick");
        assert_eq!(a.name, b.name);
        assert!(!a.compatible(&b));
        let c = TypeFingerprint::of::<u64>();
        assert_eq!((c.size, c.align, c.name.as_str()), (8, 8, "u64"));
        assert_ne!(c.hash, 0);
    }

    #[test]
    fn names_are_cut_at_char_boundaries() {
        let long = "é".repeat(20); // 40 bytes
        let f = TypeFingerprint::new(1, 1, 1, &long);
        assert_eq!(f.name.len(), 32);
        assert_eq!(f.name_bytes()[..32], *f.name.as_bytes());
        let f = TypeFingerprint::new(1, 1, 1, "x");
        assert_eq!(&f.name_bytes()[..2], b"x\0");
    }
}
