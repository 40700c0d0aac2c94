//! The charts of `shmpipe bench --report`: SVG files drawn with plotters'
//! SVG backend (no font or system library), from the same [`Output`] the
//! table and the JSON come from.
//!
//! Every chart says in its title which way is better, names the machine
//! and kernel under it, and marks the floors that apply: the bare ring (a
//! series of its own), the cache-line round trip, memcpy. Every data point
//! is a filled circle in its series' colour, and a series is drawn only
//! when it has a point, so no legend entry is empty.

use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::mechanisms::Mechanism;
use super::summary::{Output, ResultOut};

/// A rendered chart: its file name and the SVG text.
pub struct Svg {
    pub file: &'static str,
    pub title: String,
    pub svg: String,
}

/// Every chart the run's workloads allow.
pub fn render(o: &Output) -> Result<Vec<Svg>, String> {
    let mut out = Vec::new();
    let ran = |w: &str| o.config.workloads.contains(&w);
    if ran("throughput") {
        out.push(throughput(o, false)?);
        out.push(throughput(o, true)?);
    }
    if ran("pingpong") {
        out.push(latency(o, "pingpong")?);
    }
    if ran("wakeup") {
        out.push(latency(o, "wakeup")?);
    }
    if ran("idle-cpu") {
        out.push(idle(o)?);
    }
    Ok(out)
}

const SIZE: (u32, u32) = (960, 600);

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

/// The line under every title: the machine and the kernel.
fn machine_line(o: &Output) -> String {
    let m = &o.machine;
    let pin = match &o.config.pinning {
        Some(p) => format!("pinned to CPUs {} and {}", p.producer_cpu, p.consumer_cpu),
        None => "not pinned".to_owned(),
    };
    format!(
        "{} ({} CPUs{}), Linux {}; {} repetition{}, {pin}{}",
        m.cpu_model,
        m.cores,
        if m.virtualized { ", VM" } else { "" },
        m.kernel,
        o.config.reps,
        if o.config.reps == 1 { "" } else { "s" },
        if o.config.quick { "; --quick run" } else { "" }
    )
}

/// A mechanism's colour, the same in every chart: black for the bare
/// ring, else by its place in the registry.
fn colour(name: &str) -> RGBColor {
    if name == "bare-ring" {
        return BLACK;
    }
    let i = Mechanism::all()
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or(0);
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// The measured rows of workload `w`, grouped per mechanism in table
/// order.
fn per_mechanism<'a>(o: &'a Output, w: &str) -> Vec<(&'static str, Vec<&'a ResultOut>)> {
    let mut groups: Vec<(&'static str, Vec<&ResultOut>)> = Vec::new();
    for r in o
        .results
        .iter()
        .filter(|r| r.workload == w && r.unavailable.is_none())
    {
        match groups.iter_mut().find(|(m, _)| *m == r.mechanism) {
            Some((_, v)) => v.push(r),
            None => groups.push((r.mechanism, vec![r])),
        }
    }
    groups
}

fn legend_name(m: &str) -> String {
    if m == "bare-ring" {
        "bare-ring (reference)".to_owned()
    } else {
        m.to_owned()
    }
}

/// A log axis range around `v` (all positive), with some margin.
fn log_range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite() && *x > 0.0)
        .fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if hi <= 0.0 {
        (1.0, 10.0)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// Three significant digits at most, no trailing zeros: `1`, `2.5`,
/// `120`.
fn num3(x: f64) -> String {
    let t = if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        t
    }
}

/// `10 k/s`, `2.5 GB/s`: a value with an SI prefix and a unit.
fn si_label(v: f64, unit: &str) -> String {
    let (x, p) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{} {p}{unit}", num3(x))
}

fn ns_label(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{} ms", num3(ns / 1e6))
    } else if ns >= 1e3 {
        format!("{} µs", num3(ns / 1e3))
    } else {
        format!("{} ns", num3(ns))
    }
}

fn titled<'b>(
    root: &DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> Result<DrawingArea<SVGBackend<'b>, Shift>, String> {
    root.fill(&WHITE).map_err(err)?;
    root.titled(title, ("sans-serif", 22)).map_err(err)
}

/// Throughput by message size, log-log: msgs/s, or bytes/s with the
/// memcpy floor.
fn throughput(o: &Output, bytes: bool) -> Result<Svg, String> {
    let groups = per_mechanism(o, "throughput");
    let value = |r: &ResultOut| {
        if bytes {
            r.bytes_per_sec
        } else {
            r.msgs_per_sec
        }
    };
    let memcpy: Vec<(f64, f64)> = o
        .floor
        .sizes
        .iter()
        .filter_map(|s| Some((s.msg_size as f64, s.memcpy_bytes_per_sec?)))
        .collect();
    let (y0, y1) = log_range(
        groups
            .iter()
            .flat_map(|(_, rs)| rs.iter().filter_map(|r| value(r)))
            .chain(
                bytes
                    .then(|| memcpy.iter().map(|p| p.1))
                    .into_iter()
                    .flatten(),
            ),
    );
    let (x0, x1) = log_range(o.config.sizes.iter().map(|&s| s as f64));
    let (file, title, unit, ylabel) = if bytes {
        (
            "throughput-bytes.svg",
            "One-way throughput by message size, bytes/s (higher is better)",
            "B/s",
            "bytes per second (log)",
        )
    } else {
        (
            "throughput-msgs.svg",
            "One-way throughput by message size, messages/s (higher is better)",
            "/s",
            "messages per second (log)",
        )
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let area = titled(&root, title)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(machine_line(o), ("sans-serif", 13))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("message size (log)")
            .y_desc(ylabel)
            .x_label_formatter(&|v| si_label(*v, "B"))
            .y_label_formatter(&|v| si_label(*v, unit))
            .draw()
            .map_err(err)?;
        for (m, rows) in &groups {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((r.msg_size as f64, value(r)?)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let c = colour(m);
            let width = if m.starts_with("shmpipe") { 3 } else { 2 };
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(width)))
                .map_err(err)?
                .label(legend_name(m))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        if bytes && !memcpy.is_empty() {
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(DashedLineSeries::new(
                    memcpy.clone(),
                    8,
                    5,
                    grey.stroke_width(2),
                ))
                .map_err(err)?
                .label("memcpy, one core (floor)")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], grey.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(if bytes {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Svg {
        file,
        title: title.to_owned(),
        svg,
    })
}

/// Latency percentiles per mechanism (ping-pong or wake-up), log y; the
/// ping-pong chart marks the cache-line round trip.
fn latency(o: &Output, w: &str) -> Result<Svg, String> {
    let groups = per_mechanism(o, w);
    let pcts = ["p50", "p99", "p99.9", "max"];
    let values = |r: &ResultOut| [r.p50_ns, r.p99_ns, r.p999_ns, r.max_ns];
    let floor = if w == "pingpong" {
        o.floor.cacheline_rtt_ns
    } else {
        None
    };
    let (y0, y1) = log_range(
        groups
            .iter()
            .flat_map(|(_, rs)| rs.iter().flat_map(|r| values(r).into_iter().flatten()))
            .chain(floor),
    );
    let (file, title) = if w == "pingpong" {
        (
            "pingpong.svg",
            "Ping-pong round trip, 64 B, percentiles (lower is better)".to_owned(),
        )
    } else {
        (
            "wakeup.svg",
            "Wake-up of a blocked consumer, 64 B, percentiles per waiting mode (lower is better)"
                .to_owned(),
        )
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let area = titled(&root, &title)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(machine_line(o), ("sans-serif", 13))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d(
                // Two empty columns on the right, for the legend.
                (0..pcts.len() as i32 + 1).into_segmented(),
                (y0..y1).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("nanoseconds (log)")
            .x_labels(pcts.len() + 2)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => pcts.get(*i as usize).copied().unwrap_or("").into(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| ns_label(*v))
            .draw()
            .map_err(err)?;
        for (m, rows) in &groups {
            let Some(r) = rows.first() else { continue };
            let pts: Vec<(SegmentValue<i32>, f64)> = values(r)
                .into_iter()
                .enumerate()
                .filter_map(|(k, v)| Some((SegmentValue::CenterOf(k as i32), v?)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let c = colour(m);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(legend_name(m))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(p.clone(), 4, c.filled())))
                .map_err(err)?;
        }
        if let Some(f) = floor {
            let grey = RGBColor(120, 120, 120);
            let line = vec![(SegmentValue::Exact(0), f), (SegmentValue::Last, f)];
            chart
                .draw_series(DashedLineSeries::new(line, 8, 5, grey.stroke_width(2)))
                .map_err(err)?
                .label(format!(
                    "cache-line round trip p50 (floor), {}",
                    ns_label(f)
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], grey.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Svg { file, title, svg })
}

/// CPU of one idle wait of a blocked consumer (going to sleep, the parked
/// time, waking), per mechanism, log y. The parked time itself costs
/// nothing for every sleeping mechanism (the table's "% of a core"), which
/// a log scale cannot show; the whole wait is what differs.
fn idle(o: &Output) -> Result<Svg, String> {
    let groups = per_mechanism(o, "idle-cpu");
    let pts: Vec<(&str, f64)> = groups
        .iter()
        .filter_map(|(m, rs)| Some((*m, rs.first()?.wait_cpu_ns? / 1e3)))
        .filter(|p| p.1 > 0.0)
        .collect();
    let (y0, y1) = log_range(pts.iter().map(|p| p.1));
    let title = "CPU of one idle wait (sleep, parked, woken), µs (lower is better)";
    let names: Vec<&str> = pts.iter().map(|p| p.0).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let area = titled(&root, title)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(machine_line(o), ("sans-serif", 13))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d(
                // One empty column on the right, for the legend.
                (0..names.len() as i32).into_segmented(),
                (y0..y1).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("mechanism")
            .y_desc("µs of CPU (log)")
            .x_labels(names.len() + 1)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).copied().unwrap_or("").into(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| format!("{} µs", num3(*v)))
            .draw()
            .map_err(err)?;
        for (i, (m, v)) in pts.iter().enumerate() {
            let c = colour(m);
            let p = (SegmentValue::CenterOf(i as i32), *v);
            chart
                .draw_series(std::iter::once(Circle::new(p, 6, c.filled())))
                .map_err(err)?
                .label(format!("{m}: {} µs", num3(*v)))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Svg {
        file: "idle-cpu.svg",
        title: title.to_owned(),
        svg,
    })
}
