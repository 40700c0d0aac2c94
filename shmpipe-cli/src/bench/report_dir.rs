//! `shmpipe bench --report DIR`: the run as files to look at and to keep.
//!
//! ```text
//! DIR/report.md            the machine, the command line, each repetition's
//!                          machine state, the charts, the tables, the mechanisms
//! DIR/results.json         the `--json` object
//! DIR/throughput-msgs.svg  the charts (charts.rs), one per workload that ran
//! DIR/throughput-bytes.svg
//! DIR/pingpong.svg
//! DIR/wakeup.svg
//! DIR/idle-cpu.svg
//! ```

use std::fmt::Write as _;
use std::path::Path;

use super::charts;
use super::mechanisms::Mechanism;
use super::summary::{self, Output};
use crate::fail::Failure;

/// Writes the report of `o` into `dir` (created if missing); returns the
/// path of `report.md`.
pub fn write(dir: &Path, o: &Output) -> Result<std::path::PathBuf, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(
            1,
            format!(
                "--report: {what} in {}: {e} (choose a writable directory)",
                dir.display()
            ),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating the directory", &e))?;
    let put = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| fail(&format!("writing {name}"), &e))
    };
    let mut json = serde_json::to_string_pretty(o).map_err(|e| fail("encoding the results", &e))?;
    json.push('\n');
    put("results.json", &json)?;
    let svgs = charts::render(o).map_err(|e| Failure::new(1, e))?;
    for s in &svgs {
        put(s.file, &s.svg)?;
    }
    put("report.md", &markdown(o, &svgs))?;
    Ok(dir.join("report.md"))
}

/// The text of `report.md`.
pub fn markdown(o: &Output, svgs: &[charts::Svg]) -> String {
    let mut t = String::new();
    let m = &o.machine;
    let c = &o.config;
    let _ = writeln!(t, "# shmpipe bench report\n");
    if c.quick {
        let _ = writeln!(
            t,
            "*A `--quick` run: short cases and few repetitions, for a first look; the \
             full run is `shmpipe bench --report DIR`.*\n"
        );
    }
    let _ = writeln!(t, "| | |\n|---|---|");
    let _ = writeln!(t, "| command | `{}` |", c.command);
    let _ = writeln!(t, "| shmpipe | {} |", o.shmpipe_version);
    let _ = writeln!(
        t,
        "| machine | {}, {} CPUs ({} usable){} |",
        m.cpu_model,
        m.cores,
        m.usable_cpus,
        if m.virtualized {
            ", virtual machine"
        } else {
            ""
        }
    );
    let _ = writeln!(t, "| kernel | Linux {} |", m.kernel);
    let pin = match &c.pinning {
        Some(p) => format!(
            "producer on CPU {}, consumer on CPU {}",
            p.producer_cpu, p.consumer_cpu
        ),
        None => "not pinned (the scheduler places the processes)".to_owned(),
    };
    let _ = writeln!(t, "| pinning | {pin} |");
    let _ = writeln!(
        t,
        "| repetitions | {}, mechanisms interleaved in each; cases of {} ms after {} ms of \
         warm-up |",
        c.reps, c.duration_ms, c.warmup_ms
    );

    let _ = writeln!(t, "\n## Machine state per repetition\n");
    let _ = writeln!(
        t,
        "Each repetition opens with the cache-line round trip between the two \
         processes: below {} ns the CPUs sat near each other (`near`), above it far \
         (`far`). Ratios are taken within one repetition, so within one state.\n",
        summary::NEAR_BELOW_NS
    );
    let _ = writeln!(t, "| repetition | cache-line round trip, p50 | state |");
    let _ = writeln!(t, "|---|---|---|");
    for r in &o.floor.cacheline_per_rep {
        let _ = writeln!(
            t,
            "| {} | {} | {} |",
            r.rep,
            r.p50_ns
                .map_or("failed".to_owned(), |p| format!("{p:.0} ns")),
            r.state.unwrap_or("-")
        );
    }

    if !svgs.is_empty() {
        let _ = writeln!(t, "\n## Charts\n");
        for s in svgs {
            let _ = writeln!(t, "### {}\n\n![{}]({})\n", s.title, s.title, s.file);
        }
    }

    let _ = writeln!(t, "## Tables\n");
    let _ = writeln!(
        t,
        "As `shmpipe bench` printed them; `results.json` holds the same figures \
         (schema in the project's `docs/benchmarks.md`).\n"
    );
    let _ = writeln!(t, "```text\n{}```\n", summary::table(o));

    let _ = writeln!(t, "## Mechanisms\n");
    let _ = writeln!(t, "| mechanism | what the producer and consumer call |");
    let _ = writeln!(t, "|---|---|");
    let mut shown = vec![Mechanism::BareRing];
    shown.extend(
        Mechanism::all()
            .iter()
            .copied()
            .filter(|m| c.mechanisms.contains(&m.name())),
    );
    for mech in shown {
        let _ = writeln!(t, "| `{}` | {} |", mech.name(), mech.entry().about);
    }
    t
}
