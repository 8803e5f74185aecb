//! The report: markdown (the generated block of docs/benchmarks.md) and the SVG
//! chart (docs/benchmarks.svg).

use std::fmt::Write as _;

use crate::orchestrate::{Cell, Results, Run};
use crate::servers::{Kind, Mode};

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

fn metric(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Vec<f64> {
    runs.iter().filter_map(f).collect()
}

/// The calls that wait for readiness, and the reads (perf counts their EAGAIN
/// returns).
pub(crate) const WAITS: [&str; 6] = [
    "pselect6",
    "poll",
    "ppoll",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
];
pub(crate) const READS: [&str; 2] = ["read", "recvfrom"];

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

fn lines_per_sec(r: &Run) -> Option<f64> {
    Some(r.lines_per_sec)
}

fn cpu_per_line(r: &Run) -> Option<f64> {
    Some(r.cpu_us_per_line)
}

fn syscalls(r: &Run) -> Option<f64> {
    r.syscalls_per_line()
}

impl Results {
    fn get(&self, cell: Cell, kind: Kind) -> Option<&Vec<Run>> {
        self.runs.get(&(cell, kind))
    }

    fn cmp(
        &self,
        cell: Cell,
        them: Kind,
        f: fn(&Run) -> Option<f64>,
        better: Better,
        bound: f64,
    ) -> Option<Cmp> {
        let ours = metric(self.get(cell, Kind::Ours)?, f);
        let other = metric(self.get(cell, them)?, f);
        Cmp::new(&ours, &other, better, bound)
    }

    fn median_of(&self, cell: Cell, kind: Kind, f: fn(&Run) -> Option<f64>) -> Option<f64> {
        let v = metric(self.get(cell, kind)?, f);
        let m = median(&v);
        m.is_finite().then_some(m)
    }
}

fn cell_name(c: Cell) -> String {
    format!("{} depth {} × {}", c.mode.name(), c.depth, c.conns)
}

/// A target's verdict over cells: held everywhere, or where it missed (worst first).
struct Tally {
    held: usize,
    total: usize,
    /// Misses whose ranges do not overlap theirs.
    clear: usize,
    /// Sum of ln(ratio), for the geometric mean.
    log_sum: f64,
    misses: Vec<(f64, String)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            held: 0,
            total: 0,
            clear: 0,
            log_sum: 0.0,
            misses: Vec::new(),
        }
    }

    fn add(&mut self, cell: Cell, c: &Cmp, badness: f64) {
        self.total += 1;
        self.log_sum += c.ratio.ln();
        if c.held {
            self.held += 1;
        } else {
            self.clear += usize::from(!c.overlap);
            let o = if c.overlap { ", ranges overlap" } else { "" };
            self.misses.push((
                badness,
                format!("{} ({}×{o})", cell_name(cell), ratio(c.ratio)),
            ));
        }
    }

    fn line(&mut self) -> String {
        if self.total == 0 {
            return "not measured | ".into();
        }
        self.misses.sort_by(|a, b| b.0.total_cmp(&a.0));
        let worst: Vec<&str> = self.misses.iter().map(|m| m.1.as_str()).collect();
        let verdict = if self.misses.is_empty() {
            "**held**".to_string()
        } else {
            format!("**missed** in {}", self.misses.len())
        };
        let geo = (self.log_sum / self.total as f64).exp();
        format!(
            "{verdict} ({} of {} cells held; {} missed with ranges apart; geometric mean of the ratios {}) | {}",
            self.held,
            self.total,
            self.clear,
            ratio(geo),
            if worst.is_empty() {
                "–".into()
            } else {
                worst.join("; ")
            }
        )
    }
}

pub fn markdown(r: &Results) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Generated by `{}` on {} (the whole run took {:.0} s).\n",
        r.command,
        m.date,
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "| machine | |\n|---|---|");
    let _ = writeln!(s, "| `nproc` | {} |", m.nproc);
    let _ = writeln!(s, "| CPU model (/proc/cpuinfo) | {} |", m.cpu);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| date | {} |", m.date);
    let _ = writeln!(s, "| compilers | {}; {} |", m.rustc, m.cc);
    let _ = writeln!(s, "| perf | {} |", m.perf);
    let _ = writeln!(
        s,
        "| load average (1, 5, 15 min) | {} at start, {} at end |",
        m.load_start, m.load_end
    );
    let pin = match (r.cpus.server, r.cpus.client) {
        (Some(a), Some(b)) => format!("server on CPU {a}, load generator on CPU {b}"),
        _ => "not pinned".into(),
    };
    let _ = writeln!(s, "| pinning | {pin} |");
    let all: Vec<&Run> = r.runs.values().flatten().collect();
    let waits: Vec<f64> = all.iter().filter_map(|run| run.server_wait).collect();
    let load_waits: Vec<f64> = all.iter().filter_map(|run| run.load_wait).collect();
    if !waits.is_empty() {
        let disturbed = all.iter().filter(|run| run.disturbed()).count();
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
    let _ = writeln!(s, "| run | {} |\n", r.opts_summary);
    for n in &r.notes {
        let _ = writeln!(s, "Note: {n}\n");
    }

    targets(&mut s, r);
    measurements(&mut s, r);
    strace(&mut s, r);
    memory(&mut s, r);
    s
}

fn targets(s: &mut String, r: &Results) {
    if !r.kinds.contains(&Kind::Ours) || !r.kinds.contains(&Kind::C) {
        return;
    }
    let _ = writeln!(
        s,
        "### Targets: ours (`EchoServer::run`) against C, mio and tokio\n"
    );
    let _ = writeln!(
        s,
        "Ratios are ours ÷ theirs of the medians over the rounds. ≈: the two servers' \
         ranges (min–max over the rounds) overlap, so the difference is within this \
         machine's noise; a target counts as held or missed on the medians alone.\n"
    );
    let mut sys = Tally::new();
    let mut cpu = Tally::new();
    let mut rate = Tally::new();
    let mut vs_mio = Tally::new();
    let mut vs_tokio = Tally::new();
    let mut rows = String::new();
    for &cell in &r.cells {
        if r.get(cell, Kind::Ours).is_none() || r.get(cell, Kind::C).is_none() {
            continue;
        }
        let c_sys = r.cmp(cell, Kind::C, syscalls, Better::Lower, 1.0);
        let c_cpu = r.cmp(cell, Kind::C, cpu_per_line, Better::Lower, 1.0);
        let c_rate = r.cmp(cell, Kind::C, lines_per_sec, Better::Higher, 1.0);
        // "Ahead of": strictly more lines/s.
        let c_mio = r.cmp(cell, Kind::Mio, lines_per_sec, Better::Higher, 1.0 + 1e-9);
        let c_tokio = r.cmp(cell, Kind::Tokio, lines_per_sec, Better::Higher, 1.0 + 1e-9);
        if let Some(c) = &c_sys {
            sys.add(cell, c, c.ratio);
        }
        if let Some(c) = &c_cpu {
            cpu.add(cell, c, c.ratio);
        }
        let from50 = cell.conns >= 50;
        if from50 {
            if let Some(c) = &c_rate {
                rate.add(cell, c, 1.0 / c.ratio);
            }
            if let Some(c) = &c_mio {
                vs_mio.add(cell, c, 1.0 / c.ratio);
            }
            if let Some(c) = &c_tokio {
                vs_tokio.add(cell, c, 1.0 / c.ratio);
            }
        }
        let show = |c: &Option<Cmp>| c.as_ref().map_or("–".into(), Cmp::cell);
        let sys_abs = format!(
            "{} / {}",
            f3(r.median_of(cell, Kind::Ours, syscalls).unwrap_or(f64::NAN)),
            f3(r.median_of(cell, Kind::C, syscalls).unwrap_or(f64::NAN))
        );
        // At most LINES_PER_TURN lines go back per turn in line mode.
        let k = match cell.mode {
            Mode::Lines => cell.depth.min(unp_select::echo::LINES_PER_TURN),
            Mode::Bytes => cell.depth,
        } as f64;
        let (rate_col, mio_col, tokio_col) = if from50 {
            (show(&c_rate), show(&c_mio), show(&c_tokio))
        } else {
            (
                format!(
                    "({})",
                    c_rate.as_ref().map_or("–".into(), |c| ratio(c.ratio))
                ),
                format!(
                    "({})",
                    c_mio.as_ref().map_or("–".into(), |c| ratio(c.ratio))
                ),
                format!(
                    "({})",
                    c_tokio.as_ref().map_or("–".into(), |c| ratio(c.ratio))
                ),
            )
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell.mode.name(),
            cell.depth,
            cell.conns,
            sys_abs,
            f3(2.0 / k),
            show(&c_sys),
            show(&c_cpu),
            rate_col,
            mio_col,
            tokio_col
        );
    }
    let _ = writeln!(
        s,
        "| target | verdict | where missed, worst first (ours ÷ theirs) |"
    );
    let _ = writeln!(s, "|---|---|---|");
    let _ = writeln!(
        s,
        "| syscalls per line ≤ C's, every depth and count | {} |",
        sys.line()
    );
    let _ = writeln!(s, "| server CPU per line ≤ 1.0× C's | {} |", cpu.line());
    let _ = writeln!(
        s,
        "| lines/s ≥ 1.0× C's, from 50 connections | {} |",
        rate.line()
    );
    let _ = writeln!(
        s,
        "| lines/s ahead of mio, from 50 connections | {} |",
        vs_mio.line()
    );
    let _ = writeln!(
        s,
        "| lines/s ahead of tokio, from 50 connections | {} |",
        vs_tokio.line()
    );
    if let Some(line) = rss_target(r) {
        let _ = writeln!(s, "| RSS per idle connection ≤ 2× C's | {line} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Per cell (lines/s ratios at 1 connection, in parentheses, are not a target: a \
         ping-pong of two processes measures the scheduler more than the server). The \
         floor of syscalls per line at depth k is about (2 + select)/k: one read and one \
         write per k lines, plus a share of a select; in line mode k is at most 16 \
         (`LINES_PER_TURN`: at depth 32 the clients' refills come in halves of 16 and \
         each read brings 16 lines).\n"
    );
    let _ = writeln!(
        s,
        "| mode | depth | conns | syscalls/line ours / C | floor 2/k | syscalls ÷ C | CPU/line ÷ C | lines/s ÷ C | ÷ mio | ÷ tokio |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    s.push_str(&rows);
    let _ = writeln!(s);
}

fn rss_target(r: &Results) -> Option<String> {
    let mut parts = Vec::new();
    let mut all = true;
    for &mode in Mode::ALL.iter() {
        let (Some(ours), Some(c)) = (
            r.memory.get(&(mode, Kind::Ours)),
            r.memory.get(&(mode, Kind::C)),
        ) else {
            continue;
        };
        let o = median(&ours.iter().map(|m| m.bytes_per_conn()).collect::<Vec<_>>());
        let c = median(&c.iter().map(|m| m.bytes_per_conn()).collect::<Vec<_>>());
        let held = o <= 2.0 * c.max(0.0);
        all &= held;
        parts.push(format!(
            "{}: ours {} B, C {} B{}",
            mode.name(),
            thousands(o),
            thousands(c),
            if held { "" } else { " (missed)" }
        ));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "{} | {}",
        if all { "**held**" } else { "**missed**" },
        parts.join("; ")
    ))
}

fn measurements(s: &mut String, r: &Results) {
    let _ = writeln!(s, "### Measurements\n");
    let _ = writeln!(
        s,
        "Median (min–max) over the rounds. lines/s and server CPU per line over the \
         measured window (CPU: utime + stime from /proc/PID/stat, all threads; server \
         CPU in cores, 1.00 = its whole CPU); waited: the share of the window the \
         server / the load generator were runnable but another job had their CPU \
         (/proc/PID/schedstat); syscalls per line from `perf stat -e \
         raw_syscalls:sys_enter -p PID` over the window after it; p50/p99: round trip \
         of each line, from its write to the last byte of its echo.\n"
    );
    let _ = writeln!(s, "![lines/s and syscalls per line](benchmarks.svg)\n");
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| r.cells.iter().any(|c| c.mode == *m))
        .collect();
    for mode in modes {
        let mut depths: Vec<usize> = r
            .cells
            .iter()
            .filter(|c| c.mode == mode)
            .map(|c| c.depth)
            .collect();
        depths.dedup();
        for depth in depths {
            let _ = writeln!(s, "**{} mode, depth {depth}**\n", mode.name());
            let _ = writeln!(
                s,
                "| conns | server | lines/s | CPU µs/line | server CPU | waited server / load | syscalls/line | select/poll/epoll per line | EAGAIN reads per line | p50 µs | p99 µs |"
            );
            let _ = writeln!(s, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for &cell in r
                .cells
                .iter()
                .filter(|c| c.mode == mode && c.depth == depth)
            {
                for &kind in &r.kinds {
                    let Some(runs) = r.get(cell, kind) else {
                        continue;
                    };
                    let col = |f: &dyn Fn(&Run) -> Option<f64>| -> Vec<f64> {
                        runs.iter().filter_map(f).collect()
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        cell.conns,
                        kind.label(),
                        spread(&col(&|r| Some(r.lines_per_sec)), thousands),
                        spread(&col(&|r| Some(r.cpu_us_per_line)), f2),
                        f2(median(&col(&|r| Some(r.server_cores)))),
                        pct2(
                            median(&col(&|r| r.server_wait)),
                            median(&col(&|r| r.load_wait))
                        ),
                        spread(&col(&|r| r.syscalls_per_line()), f3),
                        f3(median(&col(&|r| r.per_line(&WAITS, false)))),
                        f3(median(&col(&|r| r.per_line(&READS, true)))),
                        us(median(&col(&|r| Some(r.p50_us)))),
                        spread(&col(&|r| Some(r.p99_us)), us),
                    );
                }
            }
            let _ = writeln!(s);
        }
    }
}

fn strace(s: &mut String, r: &Results) {
    if r.strace.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Where the syscalls go (`strace -c -f -p PID`)\n");
    let _ = writeln!(
        s,
        "Separate runs, one per server and cell, strace attached for a short window. \
         strace makes every syscall slow, so more lines queue up per wake-up than \
         without it: read these for which calls and how many errors, not for the \
         totals (perf's are above). Per echoed line: calls (errors).\n"
    );
    let _ = writeln!(s, "| cell | server | syscalls/line | lines | per line |");
    let _ = writeln!(s, "|---|---|--:|--:|---|");
    for (cell, kind, res) in &r.strace {
        match res {
            Ok((calls, lines)) => {
                let per = |c: u64| c as f64 / (*lines).max(1) as f64;
                let parts: Vec<String> = calls
                    .by_name
                    .iter()
                    .filter(|(_, c, _)| per(*c) >= 0.0005)
                    .map(|(name, c, e)| {
                        if *e > 0 {
                            format!("{name} {:.3} ({:.3})", per(*c), per(*e))
                        } else {
                            format!("{name} {:.3}", per(*c))
                        }
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.3} | {} | {} |",
                    cell_name(*cell),
                    kind.label(),
                    per(calls.total),
                    thousands(*lines as f64),
                    parts.join(", ")
                );
            }
            Err(e) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | not measured: {e} | | |",
                    cell_name(*cell),
                    kind.label()
                );
            }
        }
    }
    let _ = writeln!(s);
}

fn memory(s: &mut String, r: &Results) {
    if r.memory.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Memory with {} idle connections\n", r.idle);
    let _ = writeln!(
        s,
        "VmRSS of the server (/proc/PID/status) before any connection and after {} \
         connections each echoed one line and went idle; per connection: the \
         difference ÷ {}. Median (min–max) over the rounds. Socket buffers are kernel \
         memory, in no figure here.\n",
        r.idle, r.idle
    );
    let _ = writeln!(
        s,
        "| mode | server | RSS KiB before | RSS KiB with {} | bytes per idle connection |",
        r.idle
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|");
    for (&(mode, kind), ms) in &r.memory {
        let col = |f: &dyn Fn(&crate::orchestrate::Memory) -> f64| -> Vec<f64> {
            ms.iter().map(f).collect()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            mode.name(),
            kind.label(),
            spread(&col(&|m| m.before_kib as f64), thousands),
            spread(&col(&|m| m.with_kib as f64), thousands),
            spread(&col(&|m| m.bytes_per_conn()), thousands),
        );
    }
    let _ = writeln!(s);
}

/// A log-scale axis over `[lo, hi]` with ticks at 1, 2, 5 × 10^n.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new(values: impl Iterator<Item = f64>) -> LogAxis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return LogAxis { lo: 0.1, hi: 10.0 };
        }
        LogAxis {
            lo: 10f64.powf(lo.log10().floor()),
            hi: 10f64.powf(hi.log10().ceil()),
        }
    }

    /// 0 at `lo`, 1 at `hi`.
    fn frac(&self, v: f64) -> f64 {
        ((v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()))
            .clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<f64> {
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

/// Grouped bars, log scale: for each mode, lines/s, CPU and syscalls per line for every
/// (depth, connections), one bar per server (medians).
pub fn svg(r: &Results) -> String {
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| r.cells.iter().any(|c| c.mode == *m))
        .collect();
    type Metric = (&'static str, fn(&Run) -> Option<f64>);
    let metrics: [Metric; 3] = [
        ("echoed lines per second", lines_per_sec),
        ("server CPU µs per line", cpu_per_line),
        ("syscalls per line (perf)", syscalls),
    ];
    let panels: Vec<(Mode, usize)> = modes
        .iter()
        .flat_map(|&m| (0..metrics.len()).map(move |i| (m, i)))
        .collect();
    let (w, ph, left, right, top) = (980.0, 230.0, 70.0, 20.0, 70.0);
    let h = top + panels.len() as f64 * (ph + 60.0) + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">Echo servers, medians over the rounds (log scales; lines/s higher is better, the others lower): {}, {} × {}</text>"#,
        w / 2.0,
        r.machine.date,
        r.machine.nproc,
        r.machine.cpu.replace('&', "&amp;").replace('<', "&lt;")
    );
    // Legend.
    let mut lx = left;
    for &kind in &r.kinds {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="34" width="12" height="12" fill="{}"/><text x="{}" y="44">{}</text>"#,
            kind.color(),
            lx + 16.0,
            kind.label()
        );
        lx += 16.0 + 7.0 * kind.label().len() as f64 + 20.0;
    }
    for (pi, &(mode, mi)) in panels.iter().enumerate() {
        let (title, f) = metrics[mi];
        let y0 = top + pi as f64 * (ph + 60.0);
        let cells: Vec<Cell> = r.cells.iter().copied().filter(|c| c.mode == mode).collect();
        let axis = LogAxis::new(
            cells
                .iter()
                .flat_map(|&c| r.kinds.iter().filter_map(move |&k| r.median_of(c, k, f))),
        );
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{}" font-size="13">{} mode: {title}</text>"#,
            y0 + 14.0,
            mode.name()
        );
        let (py0, py1) = (y0 + 22.0, y0 + 22.0 + ph - 40.0);
        let py = |v: f64| py1 - axis.frac(v) * (py1 - py0);
        for t in axis.ticks() {
            let y = py(t);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                w - right,
                left - 5.0,
                y + 4.0,
                tick_label(t)
            );
        }
        let n = cells.len().max(1) as f64;
        let gw = (w - left - right) / n;
        let bw = (gw - 8.0) / r.kinds.len().max(1) as f64;
        for (ci, &cell) in cells.iter().enumerate() {
            let gx = left + ci as f64 * gw + 4.0;
            for (ki, &kind) in r.kinds.iter().enumerate() {
                let Some(v) = r.median_of(cell, kind, f) else {
                    continue;
                };
                let y = py(v);
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                    gx + ki as f64 * bw,
                    (bw - 1.0).max(1.0),
                    (py1 - y).max(0.5),
                    kind.color(),
                    kind.label(),
                    cell_name(cell),
                    if mi == 0 { thousands(v) } else { f3(v) }
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">k={}</text><text x="{x:.1}" y="{:.1}" text-anchor="middle">n={}</text>"#,
                py1 + 13.0,
                cell.depth,
                py1 + 25.0,
                cell.conns,
                x = gx + (gw - 8.0) / 2.0,
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{py1:.1}" x2="{:.1}" y2="{py1:.1}" stroke="#888"/>"##,
            w - right
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">k: lines in flight per connection, n: connections</text>"##,
            w / 2.0,
            py1 + 40.0
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// The machine table that opens a generated block: `extra` rows (the reference
/// programs' versions) after the compiler, the pinning, and the waits of `runs`.
pub(crate) fn machine_table<'a>(
    s: &mut String,
    m: &crate::orchestrate::Machine,
    extra: &[(&str, String)],
    cpus: crate::orchestrate::Cpus,
    runs: impl Iterator<Item = &'a Run>,
) {
    let _ = writeln!(s, "| machine | |\n|---|---|");
    let _ = writeln!(s, "| `nproc` | {} |", m.nproc);
    let _ = writeln!(s, "| CPU model (/proc/cpuinfo) | {} |", m.cpu);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| date | {} |", m.date);
    let _ = writeln!(s, "| compiler | {} |", m.rustc);
    for (name, value) in extra {
        let _ = writeln!(s, "| {name} | {value} |");
    }
    let _ = writeln!(s, "| perf | {} |", m.perf);
    let _ = writeln!(
        s,
        "| load average (1, 5, 15 min) | {} at start, {} at end |",
        m.load_start, m.load_end
    );
    let pin = match (cpus.server, cpus.client) {
        (Some(a), Some(b)) => format!("servers on CPU {a}, load generator on CPU {b}"),
        _ => "not pinned".into(),
    };
    let _ = writeln!(s, "| pinning | {pin} |");
    let all: Vec<&Run> = runs.collect();
    let waits: Vec<f64> = all.iter().filter_map(|r| r.server_wait).collect();
    let load_waits: Vec<f64> = all.iter().filter_map(|r| r.load_wait).collect();
    if !waits.is_empty() {
        let _ = writeln!(
            s,
            "| waits for the CPU (other jobs) | server: median {:.1}%, at most {:.1}% of the window; load generator: median {:.1}%, at most {:.1}% |",
            median(&waits) * 100.0,
            min_max(&waits).1 * 100.0,
            median(&load_waits) * 100.0,
            min_max(&load_waits).1 * 100.0,
        );
    }
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
