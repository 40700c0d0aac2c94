//! What mapping the slot area twice costs at open: times `Ring::open` plus
//! claiming the producer side (and dropping both), for a ring created
//! double-mapped and the same geometry created padded, interleaved.
//!
//! ```text
//! cargo run --release -p shmpipe --example open_cost [-- ITERATIONS]
//! ```
//!
//! Prints, per geometry and mode, the median and 90th percentile of one
//! open + claim + drop, and how many mappings the opener holds while open.

use std::time::Instant;

use shmpipe::{Ring, RingBuilder};

/// Mappings of `needle` in `/proc/self/maps`.
fn mappings_of(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    println!("open + producer claim + drop, {iterations} iterations each, interleaved");
    println!(
        "{:<22} {:<8} {:>10} {:>10} {:>9}",
        "geometry", "wrap", "p50 us", "p90 us", "mappings"
    );
    for (slots, slot_size) in [(1024u64, 256u64), (1024, 4096), (256, 64 << 10)] {
        let pid = std::process::id();
        let names = [
            format!("open-cost-twice-{pid}-{slot_size}"),
            format!("open-cost-pad-{pid}-{slot_size}"),
        ];
        let mut b = RingBuilder::new();
        b.slots(slots).slot_size(slot_size).unlink_on_drop(true);
        let twice = b.create(format!("shm:{}", names[0]).as_str())?;
        let padded = b
            .double_map(false)
            .create(format!("shm:{}", names[1]).as_str())?;
        assert!(twice.info().contiguous_wrap && !padded.info().contiguous_wrap);
        let mut times = [Vec::new(), Vec::new()];
        let mut maps = [0, 0];
        for i in 0..iterations + 50 {
            for (k, name) in names.iter().enumerate() {
                let t = Instant::now();
                let ring = Ring::open(format!("shm:{name}").as_str())?;
                let tx = ring.producer()?;
                if i == 0 {
                    maps[k] = mappings_of(name);
                }
                drop(tx);
                drop(ring);
                // The first 50 warm up the page cache and the allocator.
                if i >= 50 {
                    times[k].push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        for (k, mode) in ["twice", "padded"].iter().enumerate() {
            times[k].sort_by(f64::total_cmp);
            println!(
                "{:<22} {:<8} {:>10.1} {:>10.1} {:>9}",
                format!("{slots} x {slot_size} B"),
                mode,
                percentile(&times[k], 0.5),
                percentile(&times[k], 0.9),
                // The creator's own mappings count too.
                maps[k]
            );
        }
    }
    Ok(())
}
