//! What the typed calls cost against the raw-byte calls they wrap, on one
//! thread and one ring, so that nothing but the calls themselves differs:
//! no second core, no cache-line transfers, no machine state.
//!
//! The ring is made for a 64-byte `#[repr(C, align(64))]` tick
//! (`RingBuilder::message_type`), and every variant carries that tick:
//!
//! - `raw-copy`: `try_send(tick.as_bytes())` / `try_recv(&mut [u8; 64])`;
//! - `typed-copy`: `TypedProducer::try_send(&tick)` / `TypedConsumer::try_recv()`;
//! - `raw-in-place`: `try_reserve` + write + `commit(64)` / `try_borrow` + read;
//! - `typed-in-place`: `TypedProducer::try_reserve` + write + `commit` /
//!   `TypedConsumer::try_borrow` + read.
//!
//! Each round sends a burst of 32 ticks, then receives them (checking every
//! sequence number); the variants take turns within every repetition, and
//! each typed figure is divided by its raw twin's from the same repetition.
//!
//! ```text
//! cargo run --release -p shmpipe --example typed_cost [-- REPS [MESSAGES]]
//! cargo run --release -p shmpipe --example typed_cost -- only VARIANT MESSAGES
//! ```
//!
//! The second form runs one variant alone (for an instruction count, e.g.
//! under `valgrind --tool=callgrind`).

use std::hint::black_box;
use std::time::Instant;

use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use shmpipe::{Consumer, Producer, RingBuilder, TypedConsumer, TypedProducer};

/// One cache line: a sequence number and a payload.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
struct Tick {
    seq: u64,
    price: [u64; 7],
}

const BURST: u64 = 32;
const VARIANTS: [&str; 4] = ["raw-copy", "typed-copy", "raw-in-place", "typed-in-place"];

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    RawCopy,
    TypedCopy,
    RawInPlace,
    TypedInPlace,
}

const ALL: [Variant; 4] = [
    Variant::RawCopy,
    Variant::TypedCopy,
    Variant::RawInPlace,
    Variant::TypedInPlace,
];

struct Ends {
    tx: TypedProducer<Tick>,
    rx: TypedConsumer<Tick>,
}

fn raw(e: &mut Ends) -> (&mut Producer, &mut Consumer) {
    (e.tx.untyped_mut(), e.rx.untyped_mut())
}

/// Sends and receives `n` ticks (a multiple of `BURST`) one way; returns
/// the seconds taken.
fn run(e: &mut Ends, variant: Variant, n: u64) -> f64 {
    // One monomorphic loop per variant: the harness adds the same (nothing
    // but the burst loops and the checks) to each.
    match variant {
        Variant::RawCopy => run_as::<0>(e, n),
        Variant::TypedCopy => run_as::<1>(e, n),
        Variant::RawInPlace => run_as::<2>(e, n),
        Variant::TypedInPlace => run_as::<3>(e, n),
    }
}

fn run_as<const V: usize>(e: &mut Ends, n: u64) -> f64 {
    let mut tick = Tick {
        seq: 0,
        price: [7; 7],
    };
    let mut buf = [0u8; 64];
    let mut next = 0u64;
    let mut sum = 0u64;
    let start = Instant::now();
    for _ in 0..n / BURST {
        for _ in 0..BURST {
            tick.seq += 1;
            match ALL[V] {
                Variant::RawCopy => raw(e).0.try_send(tick.as_bytes()).expect("send"),
                Variant::TypedCopy => e.tx.try_send(&tick).expect("send"),
                Variant::RawInPlace => {
                    let mut slot = raw(e).0.try_reserve().expect("reserve");
                    slot[..64].copy_from_slice(tick.as_bytes());
                    slot.commit(64);
                }
                Variant::TypedInPlace => {
                    let mut slot = e.tx.try_reserve().expect("reserve");
                    *slot = tick;
                    slot.commit();
                }
            }
        }
        for _ in 0..BURST {
            next += 1;
            let (seq, last) = match ALL[V] {
                Variant::RawCopy => {
                    let len = raw(e).1.try_recv(&mut buf).expect("recv");
                    let t = Tick::read_from_bytes(&buf[..len]).expect("64 bytes");
                    (t.seq, t.price[6])
                }
                Variant::TypedCopy => {
                    let t = e.rx.try_recv().expect("recv");
                    (t.seq, t.price[6])
                }
                Variant::RawInPlace => {
                    let msg = raw(e).1.try_borrow().expect("borrow");
                    let t = Tick::ref_from_bytes(&msg).expect("an aligned tick");
                    (t.seq, t.price[6])
                }
                Variant::TypedInPlace => {
                    let t = e.rx.try_borrow().expect("borrow");
                    (t.seq, t.price[6])
                }
            };
            assert_eq!(seq, next, "{}: message out of order", VARIANTS[V]);
            sum = sum.wrapping_add(last);
        }
    }
    black_box(sum);
    start.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ring = RingBuilder::new()
        .message_type::<Tick>()
        .slots(1024)
        .populate(true)
        .create_in_process()?;
    let mut e = Ends {
        tx: ring.typed_producer::<Tick>()?,
        rx: ring.typed_consumer::<Tick>()?,
    };
    if args.first().map(String::as_str) == Some("only") {
        let name = args.get(1).ok_or("only VARIANT MESSAGES")?;
        let i = VARIANTS
            .iter()
            .position(|v| v == name)
            .ok_or_else(|| format!("no variant {name:?}: one of {VARIANTS:?}"))?;
        let n: u64 = args.get(2).ok_or("only VARIANT MESSAGES")?.parse()?;
        let s = run(&mut e, ALL[i], n.div_ceil(BURST) * BURST);
        println!("{name}: {:.2} ns per message", s * 1e9 / n as f64);
        return Ok(());
    }
    let reps: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(15);
    let n: u64 = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(4_000_000u64)
        .div_ceil(BURST)
        * BURST;
    for v in ALL {
        run(&mut e, v, n / 4); // warm-up
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut ratio: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for rep in 0..reps {
        let mut t = [0.0; 4];
        // Rotate the order so that no variant always runs first.
        for k in 0..VARIANTS.len() {
            let i = (k + rep) % VARIANTS.len();
            t[i] = run(&mut e, ALL[i], n) * 1e9 / n as f64;
        }
        for (i, x) in t.iter().enumerate() {
            ns[i].push(*x);
        }
        ratio[0].push(t[1] / t[0]);
        ratio[1].push(t[3] / t[2]);
    }
    println!("one thread, {n} messages of 64 B per variant and repetition, {reps} repetitions");
    println!("{:<16} {:>12} {:>12}", "variant", "ns/msg p50", "x raw p50");
    for (i, v) in VARIANTS.iter().enumerate() {
        let r = match i {
            1 => format!("{:.3}", median(&mut ratio[0])),
            3 => format!("{:.3}", median(&mut ratio[1])),
            _ => "-".to_string(),
        };
        println!("{v:<16} {:>12.2} {r:>12}", median(&mut ns[i]));
    }
    Ok(())
}
