//! What every part's report shares: medians and ranges, number formats, ratios
//! against a baseline with their verdicts ([`Cmp`]), the head of a generated
//! block ([`preamble`]), the `strace -c` table, the metrics of a [`Run`], and a
//! log-scale axis for the SVG charts.

use std::fmt::Write as _;
use std::io;

use crate::orchestrate::{Header, Run, Runs};
use crate::tracing::{Calls, SYSCALLS};

pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// "median (min–max)", or the one value.
pub(crate) fn spread(v: &[f64], fmt: impl Fn(f64) -> String) -> String {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.is_empty() {
        return "–".into();
    }
    let m = fmt(median(&finite));
    if finite.len() < 2 {
        return m;
    }
    let (lo, hi) = min_max(&finite);
    format!("{m} ({}–{})", fmt(lo), fmt(hi))
}

pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    if x < 0.0 && s != "0" {
        out.push('-');
    }
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub(crate) fn f2(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "–".into()
    }
}

pub(crate) fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "–".into()
    }
}

pub(crate) fn pct2(a: f64, b: f64) -> String {
    let p = |x: f64| {
        if x.is_finite() {
            format!("{:.0}%", x * 100.0)
        } else {
            "–".into()
        }
    };
    format!("{} / {}", p(a), p(b))
}

pub(crate) fn us(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        thousands(x)
    }
}

/// Which way is better.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Lower,
    Higher,
}

/// One metric of ours against an opponent in one cell.
pub(crate) struct Cmp {
    pub ratio: f64,
    pub held: bool,
    pub overlap: bool,
}

impl Cmp {
    pub(crate) fn new(ours: &[f64], them: &[f64], better: Better, bound: f64) -> Option<Cmp> {
        let (a, b) = (median(ours), median(them));
        if !a.is_finite() || !b.is_finite() || b <= 0.0 {
            return None;
        }
        let ratio = a / b;
        let held = match better {
            Better::Lower => ratio <= bound,
            Better::Higher => ratio >= bound,
        };
        let ((alo, ahi), (blo, bhi)) = (min_max(ours), min_max(them));
        Some(Cmp {
            ratio,
            held,
            overlap: alo <= bhi && blo <= ahi,
        })
    }

    pub(crate) fn cell(&self) -> String {
        let mark = if self.held { "held" } else { "**missed**" };
        let o = if self.overlap { " ≈" } else { "" };
        format!("{} {mark}{o}", ratio(self.ratio))
    }
}

/// A ratio with 2 decimals, or 3 where 2 would round it to 1.00.
pub(crate) fn ratio(x: f64) -> String {
    if (x - 1.0).abs() < 0.005 && x != 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.2}")
    }
}

/// The values of `f` over `runs`.
pub(crate) fn col(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Vec<f64> {
    runs.iter().filter_map(f).collect()
}

/// Lines echoed or requests answered per second.
pub(crate) fn rate(r: &Run) -> Option<f64> {
    Some(r.lines_per_sec)
}

/// Server CPU µs per line or request.
pub(crate) fn cpu(r: &Run) -> Option<f64> {
    Some(r.cpu_us_per_line)
}

/// Syscalls per line or request (perf stat).
pub(crate) fn sys(r: &Run) -> Option<f64> {
    r.syscalls_per_line()
}

/// The cells every measurement table opens with, `|`-separated: rate, CPU per unit,
/// server CPU, waited server / load, syscalls per unit (medians or spreads).
pub(crate) fn load_cols(runs: &[Run]) -> String {
    let c = |f: &dyn Fn(&Run) -> Option<f64>| col(runs, f);
    [
        spread(&c(&rate), thousands),
        spread(&c(&cpu), f2),
        f2(median(&c(&|r| Some(r.server_cores)))),
        pct2(median(&c(&|r| r.server_wait)), median(&c(&|r| r.load_wait))),
        spread(&c(&sys), f3),
    ]
    .join(" | ")
}

/// The cells that close it: p50 and p99 µs.
pub(crate) fn latency_cols(runs: &[Run]) -> String {
    let p50 = median(&col(runs, |r| Some(r.p50_us)));
    format!(
        "{} | {}",
        us(p50),
        spread(&col(runs, |r| Some(r.p99_us)), us)
    )
}

/// A part's runs read by cell and server.
pub(crate) trait ByCell<C: Copy, K> {
    fn of(&self, cell: C, kind: K) -> Option<&Vec<Run>>;

    /// `f` of `a` against `b` on `cell`: the ratio of the medians, held if on the
    /// `better` side of `bound`.
    fn cmp(
        &self,
        cell: C,
        (a, b): (K, K),
        f: fn(&Run) -> Option<f64>,
        better: Better,
        bound: f64,
    ) -> Option<Cmp> {
        let x = col(self.of(cell, a)?, f);
        let y = col(self.of(cell, b)?, f);
        Cmp::new(&x, &y, better, bound)
    }

    /// The median of `f` over the runs of `kind` on `cell`, if finite.
    fn median_of(&self, cell: C, kind: K, f: fn(&Run) -> Option<f64>) -> Option<f64> {
        let m = median(&col(self.of(cell, kind)?, f));
        m.is_finite().then_some(m)
    }
}

impl<C: Ord + Copy, K: Ord + Copy> ByCell<C, K> for Runs<C, K> {
    fn of(&self, cell: C, kind: K) -> Option<&Vec<Run>> {
        self.get(&(cell, kind))
    }
}

/// The calls that wait for readiness: the first six that `perf stat` counts.
pub(crate) const WAITS: &[&str] = SYSCALLS.split_at(6).0;

impl Run {
    /// Calls (or, with `errors`, their EAGAIN returns) of the named syscalls per
    /// line, from perf stat.
    pub(crate) fn per_line(&self, names: &[&str], errors: bool) -> Option<f64> {
        let (calls, lines) = self.syscalls.as_ref()?;
        let n: u64 = calls
            .by_name
            .iter()
            .filter(|(name, _, _)| names.contains(&name.as_str()))
            .map(|(_, c, e)| if errors { *e } else { *c })
            .sum();
        Some(n as f64 / (*lines).max(1) as f64)
    }
}

/// A log-scale axis over `[lo, hi]` with ticks at 1, 2, 5 × 10^n.
pub(crate) struct LogAxis {
    pub lo: f64,
    pub hi: f64,
}

impl LogAxis {
    pub(crate) fn new(values: impl Iterator<Item = f64>) -> LogAxis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return LogAxis { lo: 0.1, hi: 10.0 };
        }
        let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
        LogAxis {
            lo: 10f64.powf(lo),
            // One decade at least (a single value, or a power of 10).
            hi: 10f64.powf(hi.max(lo + 1.0)),
        }
    }

    /// 0 at `lo`, 1 at `hi`.
    pub(crate) fn frac(&self, v: f64) -> f64 {
        ((v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()))
            .clamp(0.0, 1.0)
    }

    /// Grid lines from `x0` to `x1` at the ticks, labelled on the left; `y`
    /// places a value.
    pub(crate) fn grid(&self, s: &mut String, x0: f64, x1: f64, y: impl Fn(f64) -> f64) {
        for t in self.ticks() {
            let y = y(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 5.0,
                y + 4.0,
                tick_label(t)
            );
        }
    }

    pub(crate) fn ticks(&self) -> Vec<f64> {
        let mut t = Vec::new();
        let mut d = self.lo;
        while d <= self.hi * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let v = d * m;
                if v <= self.hi * 1.0001 {
                    t.push(v);
                }
            }
            d *= 10.0;
        }
        t
    }
}

fn tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{}", (v * 1e6).round() / 1e6)
    }
}

/// Opens an SVG of `w` × `h` on white with `title` centred on top.
pub(crate) fn svg_open(s: &mut String, w: f64, h: f64, title: &str) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        w / 2.0,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
}

/// The [`preamble`] of a comparison with one reference server, the start of its
/// markdown: the compiler and the reference's version (`name`: `version`) in the
/// machine table; `runs`: each cell's runs.
pub(crate) fn preamble_vs<'a>(
    h: &Header,
    name: &str,
    version: &str,
    runs: impl IntoIterator<Item = &'a Vec<Run>>,
) -> String {
    let mut s = String::new();
    let extra = [
        ("compiler", h.machine.rustc.clone()),
        (name, version.into()),
    ];
    preamble(&mut s, h, &extra, runs.into_iter().flatten());
    s
}

/// "Generated by `COMMAND` on DATE", the machine table (`extra` rows, the
/// compilers and the reference programs' versions, after the date), how it ran,
/// and the notes.
pub(crate) fn preamble<'a>(
    s: &mut String,
    h: &Header,
    extra: &[(&str, String)],
    runs: impl Iterator<Item = &'a Run>,
) {
    let m = &h.machine;
    let _ = writeln!(
        s,
        "Generated by `{}` on {} (the whole run took {:.0} s).\n",
        h.command,
        m.date,
        h.elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "| machine | |\n|---|---|");
    let _ = writeln!(s, "| `nproc` | {} |", m.nproc);
    let _ = writeln!(s, "| CPU model (/proc/cpuinfo) | {} |", m.cpu);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| date | {} |", m.date);
    for (name, value) in extra {
        let _ = writeln!(s, "| {name} | {value} |");
    }
    let _ = writeln!(s, "| perf | {} |", m.perf);
    let _ = writeln!(
        s,
        "| load average (1, 5, 15 min) | {} at start, {} at end |",
        m.load_start, m.load_end
    );
    let pin = match (h.cpus.server, h.cpus.client) {
        (Some(a), Some(b)) => format!("servers on CPU {a}, load generator on CPU {b}"),
        _ => "not pinned".into(),
    };
    let _ = writeln!(s, "| pinning | {pin} |");
    let all: Vec<&Run> = runs.collect();
    let waits: Vec<f64> = all.iter().filter_map(|r| r.server_wait).collect();
    let load_waits: Vec<f64> = all.iter().filter_map(|r| r.load_wait).collect();
    if !waits.is_empty() {
        let disturbed = all.iter().filter(|r| r.disturbed()).count();
        let _ = writeln!(
            s,
            "| waits for the CPU (other jobs) | server: median {:.1}%, at most {:.1}% of the window; load generator: median {:.1}%, at most {:.1}%; {disturbed} of {} kept runs over {:.0}% |",
            median(&waits) * 100.0,
            min_max(&waits).1 * 100.0,
            median(&load_waits) * 100.0,
            min_max(&load_waits).1 * 100.0,
            all.len(),
            crate::orchestrate::MAX_WAIT * 100.0,
        );
    }
    let _ = writeln!(s, "| run | {} |\n", h.summary);
    for n in &h.notes {
        let _ = writeln!(s, "Note: {n}\n");
    }
}

/// The `strace -c` table: `intro` under its heading, then per (cell, server)
/// the calls per `unit` by name, with their errors.
pub(crate) fn strace_table<'a>(
    s: &mut String,
    intro: &str,
    unit: &str,
    rows: impl Iterator<Item = (String, &'a str, &'a io::Result<(Calls, u64)>)>,
) {
    let _ = writeln!(s, "### Where the syscalls go (`strace -c -f -p PID`)\n");
    let _ = writeln!(s, "{intro}\n");
    let _ = writeln!(
        s,
        "| cell | server | syscalls/{unit} | {unit}s | per {unit} |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|---|");
    for (cell, label, res) in rows {
        match res {
            Ok((calls, n)) => {
                let per = |c: u64| c as f64 / (*n).max(1) as f64;
                let parts: Vec<String> = calls
                    .by_name
                    .iter()
                    .filter(|(_, c, _)| per(*c) >= 0.0005)
                    .map(|(name, c, e)| match e {
                        0 => format!("{name} {:.3}", per(*c)),
                        e => format!("{name} {:.3} ({:.3})", per(*c), per(*e)),
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "| {cell} | {label} | {:.3} | {} | {} |",
                    per(calls.total),
                    thousands(*n as f64),
                    parts.join(", ")
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| {cell} | {label} | not measured: {e} | | |");
            }
        }
    }
    let _ = writeln!(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(spread(&[1.0, 3.0, 2.0], f2), "2.00 (1.00–3.00)");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn verdicts() {
        let c = Cmp::new(&[1.0, 1.1], &[1.2, 1.3], Better::Lower, 1.0).unwrap();
        assert!(c.held && !c.overlap);
        let c = Cmp::new(&[100.0], &[90.0, 110.0], Better::Higher, 1.0).unwrap();
        assert!(c.held && c.overlap);
    }

    #[test]
    fn log_axis() {
        let a = LogAxis::new([0.15, 3.0].into_iter());
        assert_eq!((a.lo, a.hi), (0.1, 10.0));
        assert_eq!(a.frac(1.0), 0.5);
    }
}
