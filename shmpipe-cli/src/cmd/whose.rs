//! Who owns a ring's file, for hints that are true for the user reading
//! them.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use shmpipe::Address;

use crate::describe;

/// The file behind a `shm:` or `file:` address (`/dev/shm/NAME`).
fn path(address: &Address) -> Option<PathBuf> {
    match address {
        Address::Shm(name) => Some(PathBuf::from(format!("/dev/shm/{name}"))),
        Address::File(p) => Some(p.clone()),
        _ => None,
    }
}

/// `user NAME`, or `uid N` for a user without a name.
pub fn user_name(uid: u32) -> String {
    let n = describe::user(uid);
    if n.parse::<u32>().is_ok() {
        format!("uid {n}")
    } else {
        format!("user {n}")
    }
}

/// The owner's uid and the permission bits of the ring's file.
pub fn owner_and_mode(address: &Address) -> Option<(u32, u32)> {
    let m = std::fs::symlink_metadata(path(address)?).ok()?;
    Some((m.uid(), m.mode() & 0o7777))
}

/// The owner and mode of the ring's file: ` (owned by user root, mode
/// 0600)`, or nothing when unknown.
pub fn owned_by(address: &Address) -> String {
    match path(address).and_then(|p| std::fs::symlink_metadata(p).ok()) {
        Some(m) => format!(
            " (owned by {}, mode {:04o})",
            user_name(m.uid()),
            m.mode() & 0o7777
        ),
        None => String::new(),
    }
}

/// The owner of the ring's file, if another user than this process's
/// (and this process is not root).
pub fn other_owner(address: &Address) -> Option<String> {
    let m = std::fs::symlink_metadata(path(address)?).ok()?;
    let me = rustix::process::geteuid().as_raw();
    (me != 0 && m.uid() != me).then(|| user_name(m.uid()))
}
