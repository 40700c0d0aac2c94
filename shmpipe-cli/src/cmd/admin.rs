//! `shmpipe create`, `inspect`, `list` and `rm`.

use shmpipe::{Error, Ring, RingBuilder};

use super::{CreateArgs, InspectArgs, ListArgs, RmArgs};
use crate::describe::{self, RingJson};
use crate::fail::{exit, CmdResult, Failure};

fn print_json<T: serde::Serialize>(v: &T) -> CmdResult {
    let s = serde_json::to_string_pretty(v).map_err(|e| Failure::new(exit::ERROR, e))?;
    println!("{s}");
    Ok(())
}

pub fn create(a: CreateArgs) -> CmdResult {
    let ring = a.options.builder().create(&a.address)?;
    let info = ring.info();
    if a.json {
        return print_json(&RingJson::from_info(&info));
    }
    print!("created {}\n{}", a.address, describe::info_text(&info));
    Ok(())
}

pub fn inspect(a: InspectArgs) -> CmdResult {
    let mut b = RingBuilder::new();
    b.open_timeout(std::time::Duration::from_millis(200));
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
        Err(e @ (Error::NotFound { .. } | Error::PermissionDenied { .. })) => Err(e.into()),
        Err(e) => {
            let f: Failure = Failure::new(exit::CORRUPT, "");
            if a.json {
                print_json(&RingJson::from_error(a.address.to_string(), &e))?;
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
    let rows: Vec<[String; 6]> = rings
        .iter()
        .map(|(addr, r)| match r {
            Ok(info) => [
                addr.to_string(),
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
                if describe::is_stale(info) {
                    "stale"
                } else {
                    "ok"
                }
                .to_owned(),
            ],
            Err(e) => [
                addr.to_string(),
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
    let print_row = |cells: [&str; 6]| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    };
    print_row(header);
    for r in &rows {
        print_row([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    Ok(())
}

fn short_side(s: &shmpipe::SideState) -> String {
    use shmpipe::SideState;
    match s {
        SideState::Vacant => "-".into(),
        SideState::Attached { pid, alive: true } => format!("{pid}"),
        SideState::Attached { pid, alive: false } => format!("{pid} dead"),
        SideState::Closed { .. } => "closed".into(),
        _ => "invalid".into(),
    }
}

pub fn rm(a: RmArgs) -> CmdResult {
    let mut failure = None;
    for addr in &a.addresses {
        match Ring::remove(addr, a.force) {
            Ok(()) => {}
            Err(e) => {
                let f = Failure::from(e);
                eprintln!("shmpipe: {}", f.message);
                failure.get_or_insert(Failure::new(f.code, ""));
            }
        }
    }
    failure.map_or(Ok(()), Err)
}
