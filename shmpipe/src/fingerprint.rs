//! [`TypeFingerprint`]: what a ring created for one message type records
//! about it (size, alignment, a hash of its layout and a short name), so
//! that a peer built with another layout of "the same" type is refused on
//! open instead of misreading bytes.
//!
//! This module only stores and compares fingerprints; computing one for a
//! Rust type is the typed API's business.

use std::fmt;

/// Bytes of the type name kept in the header.
pub(crate) const NAME_LEN: usize = 32;

/// The identity of a message type, as recorded in a typed ring's header.
///
/// Two fingerprints are compatible when `size`, `align` and `hash` are
/// equal; `name` is shown in errors and by `shmpipe inspect` (it is kept
/// to its first 32 bytes, cut at a character boundary).
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
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeFingerprint {
    /// `size_of::<T>()`, in bytes.
    pub size: u64,
    /// `align_of::<T>()`, a power of two.
    pub align: u32,
    /// A hash of the type's layout (fields, their types and offsets), never
    /// zero for a typed ring.
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

#[cfg(test)]
mod tests {
    use super::*;

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
