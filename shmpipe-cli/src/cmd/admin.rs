//! `shmpipe create`, `inspect`, `list` and `rm`.

use std::time::Duration;

use shmpipe::{Address, Error, Ring, RingBuilder, SideState, SysvKey};

use super::{whose, CreateArgs, InspectArgs, ListArgs, RmArgs};
use crate::describe::{self, RingJson, Status};
use crate::fail::{exit, CmdResult, Failure};

fn print_json<T: serde::Serialize>(v: &T) -> CmdResult {
    let s = serde_json::to_string_pretty(v).map_err(|e| Failure::new(exit::ERROR, e))?;
    println!("{s}");
    Ok(())
}

/// With `--json`, a failure is also a JSON object on stdout (the exit code
/// and the line on stderr stay).
fn json_failure(address: &Address, status: &'static str, f: Failure) -> Failure {
    let _ = print_json(&RingJson::from_failure(address.to_string(), status, &f));
    f
}

/// Refuses to go on when the ring at `address` holds messages nobody alive
/// is about to read: `what` is dropping them (`rm` without `--force`,
/// `--reclaim`).
pub(super) fn refuse_unread(address: &Address, what: &str) -> CmdResult {
    let mut b = RingBuilder::new();
    b.open_timeout(Duration::from_millis(100));
    let Ok(ring) = b.open_read_only(address) else {
        return Ok(());
    };
    match describe::status(&ring.info()) {
        st @ (Status::Finished { waiting } | Status::Abandoned { waiting }) => Err(Failure::new(
            exit::IN_USE,
            format!(
                "ring {address} is {}: {what} {} nobody has read; receive them with \
                     `shmpipe recv {address}`{}, or drop them with `shmpipe rm --force {address}`",
                st.text(),
                describe::plural(waiting, "message", "messages"),
                if st.word() == "abandoned" {
                    " --resume"
                } else {
                    ""
                }
            ),
        )),
        _ => Ok(()),
    }
}

pub fn create(a: CreateArgs) -> CmdResult {
    let made = (|| {
        if a.options.reclaim {
            refuse_unread(&a.address, "--reclaim would drop")?;
        }
        super::create_ring(&a.options, &a.address)
    })();
    let ring = match made {
        Ok(r) => r,
        Err(f) if a.json => {
            let status = match f.code {
                exit::IN_USE => "exists",
                exit::USAGE => "invalid",
                exit::NOT_FOUND => "missing",
                _ => "error",
            };
            return Err(json_failure(&a.address, status, f));
        }
        Err(f) => return Err(f),
    };
    let info = ring.info();
    if a.json {
        return print_json(&RingJson::from_info(&info));
    }
    print!("created {}\n{}", a.address, describe::info_text(&info));
    Ok(())
}

pub fn inspect(a: InspectArgs) -> CmdResult {
    let mut b = RingBuilder::new();
    b.open_timeout(Duration::from_millis(200));
    // Read-only: inspecting never claims a side or writes a byte.
    match b.open_read_only(&a.address) {
        Ok(ring) => {
            let info = ring.info();
            if a.json {
                return print_json(&RingJson::from_info(&info));
            }
            print!("ring {}\n{}", a.address, describe::info_text(&info));
            Ok(())
        }
        Err(e @ (Error::NotFound { .. } | Error::PermissionDenied { .. })) => {
            let status = describe::error_status(&e);
            let f = super::open_failure(e, &a.address);
            if a.json {
                let mut j = RingJson::from_failure(a.address.to_string(), status, &f);
                if let Some((uid, mode)) = whose::owner_and_mode(&a.address) {
                    j.owner = Some(describe::user(uid));
                    j.uid = Some(uid);
                    j.mode = Some(format!("{mode:04o}"));
                }
                print_json(&j)?;
            }
            Err(f)
        }
        Err(e) => {
            let mut f = Failure::new(exit::CORRUPT, "");
            if let Error::BadMagic { .. } = e {
                if let Some(hint) = sysv_hint(&a.address) {
                    f.message = format!("{e}; {hint}");
                }
            }
            if a.json {
                let mut j = RingJson::from_error(a.address.to_string(), &e);
                j.exit_code = Some(exit::CORRUPT);
                print_json(&j)?;
            } else {
                println!("ring {}", a.address);
                println!(
                    "  {:<14} {}",
                    "status",
                    describe::error_status(&e).to_uppercase()
                );
                if let Error::Corrupt { corruption, .. } = &e {
                    println!("  {:<14} {}", "field", corruption.field);
                    println!("  {:<14} {}", "value", corruption.found);
                    println!("  {:<14} {}", "rule", corruption.expected);
                }
                println!("  {:<14} {e}", "problem");
            }
            Err(f)
        }
    }
}

#[derive(serde::Serialize)]
struct ListJson {
    rings: Vec<RingJson>,
}

pub fn list(a: ListArgs) -> CmdResult {
    let rings = Ring::list();
    if a.json {
        let rings = rings
            .iter()
            .map(|(addr, r)| match r {
                Ok(info) => RingJson::from_info(info),
                Err(e) => RingJson::from_error(addr.to_string(), e),
            })
            .collect();
        return print_json(&ListJson { rings });
    }
    if rings.is_empty() {
        println!("no shmpipe rings");
        return Ok(());
    }
    let owner_mode = |uid: Option<u32>, mode: Option<u32>| {
        format!(
            "{} {}",
            uid.map_or("-".to_owned(), describe::user),
            mode.map_or("-".to_owned(), |m| format!("{m:04o}"))
        )
    };
    let rows: Vec<[String; 7]> = rings
        .iter()
        .map(|(addr, r)| match r {
            Ok(info) => [
                addr.to_string(),
                owner_mode(info.owner, info.mode),
                info.backend.to_string(),
                format!("{} x {}", info.slots, describe::bytes(info.slot_size)),
                match info.len() {
                    Some(n) => format!("{n}/{}", info.slots),
                    None => "inconsistent".to_owned(),
                },
                format!(
                    "{} / {}",
                    short_side(&info.producer.state),
                    short_side(&info.consumer.state)
                ),
                describe::status(info).text(),
            ],
            Err(Error::PermissionDenied { owner, mode, .. }) => [
                addr.to_string(),
                owner_mode(*owner, *mode),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "permission denied: its owner or root can inspect it".to_owned(),
            ],
            Err(e) => [
                addr.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("{}: {e}", describe::error_status(e)),
            ],
        })
        .collect();
    let header = [
        "ADDRESS",
        "OWNER MODE",
        "BACKEND",
        "GEOMETRY",
        "FILL",
        "PRODUCER / CONSUMER",
        "STATUS",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let print_row = |cells: [&str; 7]| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 6 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    };
    print_row(header);
    for r in &rows {
        print_row([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
    }
    Ok(())
}

fn short_side(s: &SideState) -> String {
    match s {
        SideState::Vacant => "-".into(),
        SideState::Attached { pid, alive: true } => format!("{pid}"),
        SideState::Attached { pid, alive: false } => format!("{pid} dead"),
        SideState::Closed { .. } => "closed".into(),
        _ => "invalid".into(),
    }
}

/// The System V id behind a `sysv:` address, if a segment exists there.
fn sysv_id(address: &Address) -> Option<i32> {
    let key = match address {
        Address::SysV(SysvKey::Key(k)) => *k,
        Address::SysV(SysvKey::Ftok { path, id }) => {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
            // SAFETY: `c` is a valid NUL-terminated path; ftok only reads it.
            let k = unsafe { libc::ftok(c.as_ptr(), i32::from(*id)) };
            if k == -1 {
                return None;
            }
            k
        }
        _ => return None,
    };
    // SAFETY: shmget with size 0 and no flags only looks the key up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    (id >= 0).then_some(id)
}

/// How to remove a System V segment that is not a shmpipe ring.
fn sysv_hint(address: &Address) -> Option<String> {
    sysv_id(address).map(|id| {
        format!(
            "if you own it and want it gone, remove it with `ipcrm -m {id}` (check first \
             with `ipcs -m -i {id}`)"
        )
    })
}

/// The failure for an error removing `address`, with hints that are true
/// for this user.
fn rm_failure(e: Error, address: &Address) -> Failure {
    match e {
        Error::BadMagic { .. } => match sysv_hint(address) {
            Some(hint) => Failure::new(exit::CORRUPT, format!("{e}; {hint}")),
            None => e.into(),
        },
        Error::PermissionDenied { .. } => {
            let rule = match address {
                Address::Shm(_) => {
                    "/dev/shm is sticky: only the file's owner or root can remove it"
                }
                Address::File(_) => "removing a file needs write permission on its directory",
                Address::SysV(_) => {
                    "only the segment's owner, its creator or root can remove a System V segment"
                }
                _ => "only its owner or root can remove it",
            };
            Failure::new(
                exit::ERROR,
                format!(
                    "permission denied to remove {address}{}: {rule}; ask its owner to run \
                     `shmpipe rm {address}`",
                    whose::owned_by(address)
                ),
            )
        }
        e => e.into(),
    }
}

pub fn rm(a: RmArgs) -> CmdResult {
    let mut failure = None;
    for addr in &a.addresses {
        let r = if a.force {
            Ring::remove(addr, true).map_err(|e| rm_failure(e, addr))
        } else {
            refuse_unread(addr, "removing it would drop")
                .and_then(|()| Ring::remove(addr, false).map_err(|e| rm_failure(e, addr)))
        };
        if let Err(f) = r {
            eprintln!("shmpipe: {}", f.message);
            failure.get_or_insert(Failure::new(f.code, ""));
        }
    }
    failure.map_or(Ok(()), Err)
}
