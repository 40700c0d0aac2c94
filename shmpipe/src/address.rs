//! Ring addresses: one string form for code and the command line.
//!
//! | form | backend |
//! |---|---|
//! | `shm:NAME`, `shm:/NAME` or a bare `NAME` | POSIX shared memory, `/dev/shm/NAME` |
//! | `file:PATH` | a file (on a hugetlbfs mount it gets huge pages) |
//! | `sysv:KEY` (decimal or `0x` hex) | System V shared memory with that key |
//! | `sysv:PATH:ID` | System V, key derived with `ftok(PATH, ID)` |
//!
//! A memfd has no name in the file system; it is reached through its file
//! descriptor instead ([`RingBuilder::create_memfd`](crate::RingBuilder::create_memfd),
//! [`Ring::from_fd`](crate::Ring::from_fd)).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::Error;

/// Longest POSIX shared-memory name Linux accepts (`NAME_MAX`).
const SHM_NAME_MAX: usize = 255;

/// Where a ring lives. Parse one with [`str::parse`] or [`Address::parse`].
///
/// # Examples
///
/// ```
/// use shmpipe::Address;
///
/// let a: Address = "shm:orders".parse()?;
/// assert_eq!(a, "orders".parse()?);
/// assert_eq!(a.to_string(), "shm:orders");
/// assert!("shm:a/b".parse::<Address>().is_err());
/// # Ok::<(), shmpipe::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A POSIX shared-memory object, `/dev/shm/NAME` (the name is stored
    /// without a leading slash).
    Shm(String),
    /// A file at a path. The final component is never followed if it is a
    /// symbolic link.
    File(PathBuf),
    /// A System V shared-memory segment.
    SysV(SysvKey),
}

/// How a System V segment is named.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SysvKey {
    /// A literal key (never `IPC_PRIVATE`, 0).
    Key(i32),
    /// A key derived with `ftok(path, id)`; the path must exist.
    Ftok {
        /// An existing file.
        path: PathBuf,
        /// The project id, 1 to 255.
        id: u8,
    },
}

impl Address {
    /// Parses an address string.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] saying what is wrong.
    pub fn parse(s: &str) -> Result<Address, Error> {
        let bad = |reason: &str| Error::InvalidAddress {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let (scheme, rest) = match s.split_once(':') {
            Some((scheme, rest)) => (scheme, rest),
            None => ("shm", s),
        };
        match scheme {
            "shm" => {
                let name = rest.strip_prefix('/').unwrap_or(rest);
                if name.is_empty() {
                    return Err(bad("the shared-memory name is empty"));
                }
                if name.contains('/') {
                    return Err(bad("a shared-memory name cannot contain '/'"));
                }
                if name == "." || name == ".." {
                    return Err(bad("`.` and `..` are not shared-memory names"));
                }
                if name.len() > SHM_NAME_MAX {
                    return Err(bad("the shared-memory name is longer than 255 bytes"));
                }
                Ok(Address::Shm(name.to_owned()))
            }
            "file" => {
                if rest.is_empty() {
                    return Err(bad("the path is empty"));
                }
                Ok(Address::File(PathBuf::from(rest)))
            }
            "sysv" => parse_sysv(rest).map(Address::SysV).map_err(bad),
            "memfd" => Err(bad(
                "a memfd has no name to open: pass its file descriptor (Ring::from_fd)",
            )),
            _ => Err(bad("unknown scheme")),
        }
    }

    /// The string shown to people, as accepted by [`Address::parse`].
    pub fn display(&self) -> String {
        self.to_string()
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i64::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn parse_sysv(rest: &str) -> Result<SysvKey, &'static str> {
    if rest.is_empty() {
        return Err("the System V key is empty");
    }
    if let Some(v) = parse_int(rest) {
        // Accept the full unsigned 32-bit range as written by `ipcs`
        // (0xdeadbeef) as well as negative keys.
        let key = if (0..=u32::MAX as i64).contains(&v) {
            v as u32 as i32
        } else if (i32::MIN as i64..0).contains(&v) {
            v as i32
        } else {
            return Err("the System V key does not fit in 32 bits");
        };
        if key == 0 {
            return Err("key 0 is IPC_PRIVATE, which no other process can open");
        }
        return Ok(SysvKey::Key(key));
    }
    let Some((path, id)) = rest.rsplit_once(':') else {
        return Err("expected a numeric key or PATH:ID");
    };
    if path.is_empty() {
        return Err("the ftok path is empty");
    }
    match parse_int(id) {
        Some(id @ 1..=255) => Ok(SysvKey::Ftok {
            path: PathBuf::from(path),
            id: id as u8,
        }),
        _ => Err("the ftok id must be a number from 1 to 255"),
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address, Error> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Shm(name) => write!(f, "shm:{name}"),
            Address::File(path) => write!(f, "file:{}", path.display()),
            Address::SysV(SysvKey::Key(k)) => write!(f, "sysv:{:#010x}", *k as u32),
            Address::SysV(SysvKey::Ftok { path, id }) => {
                write!(f, "sysv:{}:{id}", path.display())
            }
        }
    }
}

/// Anything that names a ring: an [`Address`] or a string to parse.
pub trait AsAddress {
    /// The address.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] for a malformed string.
    fn to_address(&self) -> Result<Address, Error>;
}

impl AsAddress for Address {
    fn to_address(&self) -> Result<Address, Error> {
        Ok(self.clone())
    }
}

impl AsAddress for &Address {
    fn to_address(&self) -> Result<Address, Error> {
        Ok((*self).clone())
    }
}

impl<S: AsRef<str> + ?Sized> AsAddress for S {
    fn to_address(&self) -> Result<Address, Error> {
        Address::parse(self.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_forms() {
        assert_eq!(Address::parse("x").unwrap(), Address::Shm("x".into()));
        assert_eq!(Address::parse("shm:x").unwrap(), Address::Shm("x".into()));
        assert_eq!(Address::parse("shm:/x").unwrap(), Address::Shm("x".into()));
        for bad in ["", "shm:", "shm:/", "shm:a/b", "shm:..", "shm:.", "a\0b"] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Address::parse(&format!("shm:{}", "n".repeat(255))).is_ok());
        assert!(Address::parse(&format!("shm:{}", "n".repeat(256))).is_err());
    }

    #[test]
    fn file_and_schemes() {
        assert_eq!(
            Address::parse("file:/tmp/r").unwrap(),
            Address::File("/tmp/r".into())
        );
        assert!(Address::parse("file:").is_err());
        assert!(Address::parse("nfs:x").is_err());
        assert!(Address::parse("memfd:x").is_err());
    }

    #[test]
    fn sysv_forms() {
        assert_eq!(
            Address::parse("sysv:1234").unwrap(),
            Address::SysV(SysvKey::Key(1234))
        );
        assert_eq!(
            Address::parse("sysv:0xdeadbeef").unwrap(),
            Address::SysV(SysvKey::Key(0xdeadbeef_u32 as i32))
        );
        assert_eq!(
            Address::parse("sysv:-5").unwrap(),
            Address::SysV(SysvKey::Key(-5))
        );
        assert_eq!(
            Address::parse("sysv:/tmp:7").unwrap(),
            Address::SysV(SysvKey::Ftok {
                path: "/tmp".into(),
                id: 7
            })
        );
        for bad in [
            "sysv:",
            "sysv:0",
            "sysv:0x",
            "sysv:0x1ffffffff",
            "sysv:/tmp:0",
            "sysv:/tmp:256",
            "sysv::3",
            "sysv:zz",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["shm:a", "file:/x/y", "sysv:0x000004d2", "sysv:/tmp:7"] {
            let a = Address::parse(s).unwrap();
            assert_eq!(a.to_string(), s);
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a);
        }
    }
}
