//! The LOAD block of docs/benchmarks.md and its chart (docs/benchmarks.svg).

use std::fmt::Write as _;

use super::{Cell, Results};
use crate::orchestrate::Run;
use crate::report::svg_open;
use crate::report::{
    cpu, f3, latency_cols, load_cols, median, preamble, rate, ratio, spread, strace_table, sys,
    thousands, Better, ByCell, Cmp, LogAxis, WAITS,
};
use crate::servers::{Kind, Mode};

/// The reads whose EAGAIN returns perf counts.
const READS: [&str; 2] = ["read", "recvfrom"];

impl Results {
    fn get(&self, cell: Cell, kind: Kind) -> Option<&Vec<Run>> {
        self.runs.of(cell, kind)
    }

    fn cmp(
        &self,
        cell: Cell,
        them: Kind,
        f: fn(&Run) -> Option<f64>,
        better: Better,
        bound: f64,
    ) -> Option<Cmp> {
        self.runs.cmp(cell, (Kind::Ours, them), f, better, bound)
    }

    fn median_of(&self, cell: Cell, kind: Kind, f: fn(&Run) -> Option<f64>) -> Option<f64> {
        self.runs.median_of(cell, kind, f)
    }
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
            self.misses
                .push((badness, format!("{} ({}×{o})", cell.name(), ratio(c.ratio))));
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
    let m = &r.head.machine;
    let mut s = String::new();
    preamble(
        &mut s,
        &r.head,
        &[("compilers", format!("{}; {}", m.rustc, m.cc))],
        r.runs.values().flatten(),
    );
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
    let mut sys_t = Tally::new();
    let mut cpu_t = Tally::new();
    let mut rate_t = Tally::new();
    let mut vs_mio = Tally::new();
    let mut vs_tokio = Tally::new();
    let mut rows = String::new();
    for &cell in &r.cells {
        if r.get(cell, Kind::Ours).is_none() || r.get(cell, Kind::C).is_none() {
            continue;
        }
        let c_sys = r.cmp(cell, Kind::C, sys, Better::Lower, 1.0);
        let c_cpu = r.cmp(cell, Kind::C, cpu, Better::Lower, 1.0);
        let c_rate = r.cmp(cell, Kind::C, rate, Better::Higher, 1.0);
        // "Ahead of": strictly more lines/s.
        let c_mio = r.cmp(cell, Kind::Mio, rate, Better::Higher, 1.0 + 1e-9);
        let c_tokio = r.cmp(cell, Kind::Tokio, rate, Better::Higher, 1.0 + 1e-9);
        if let Some(c) = &c_sys {
            sys_t.add(cell, c, c.ratio);
        }
        if let Some(c) = &c_cpu {
            cpu_t.add(cell, c, c.ratio);
        }
        let from50 = cell.conns >= 50;
        if from50 {
            if let Some(c) = &c_rate {
                rate_t.add(cell, c, 1.0 / c.ratio);
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
            f3(r.median_of(cell, Kind::Ours, sys).unwrap_or(f64::NAN)),
            f3(r.median_of(cell, Kind::C, sys).unwrap_or(f64::NAN))
        );
        // At most MESSAGES_PER_TURN lines go back per turn in line mode.
        let k = match cell.mode {
            Mode::Lines => cell.depth.min(unp_select::server::MESSAGES_PER_TURN),
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
        sys_t.line()
    );
    let _ = writeln!(s, "| server CPU per line ≤ 1.0× C's | {} |", cpu_t.line());
    let _ = writeln!(
        s,
        "| lines/s ≥ 1.0× C's, from 50 connections | {} |",
        rate_t.line()
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
         (`MESSAGES_PER_TURN`: at depth 32 the clients' refills come in halves of 16 and \
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
                        "| {} | {} | {} | {} | {} | {} |",
                        cell.conns,
                        kind.label(),
                        load_cols(runs),
                        f3(median(&col(&|r| r.per_line(WAITS, false)))),
                        f3(median(&col(&|r| r.per_line(&READS, true)))),
                        latency_cols(runs),
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
    strace_table(
        s,
        "Separate runs, one per server and cell, strace attached for a short window. \
         strace makes every syscall slow, so more lines queue up per wake-up than \
         without it: read these for which calls and how many errors, not for the \
         totals (perf's are above). Per echoed line: calls (errors).",
        "line",
        r.strace
            .iter()
            .map(|(cell, kind, res)| (cell.name(), kind.label(), res)),
    );
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

/// Grouped bars, log scale: for each mode, lines/s, CPU and syscalls per line for every
/// (depth, connections), one bar per server (medians).
pub fn svg(r: &Results) -> String {
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| r.cells.iter().any(|c| c.mode == *m))
        .collect();
    type Metric = (&'static str, fn(&Run) -> Option<f64>);
    let metrics: [Metric; 3] = [
        ("echoed lines per second", rate),
        ("server CPU µs per line", cpu),
        ("syscalls per line (perf)", sys),
    ];
    let panels: Vec<(Mode, usize)> = modes
        .iter()
        .flat_map(|&m| (0..metrics.len()).map(move |i| (m, i)))
        .collect();
    let (w, ph, left, right, top) = (980.0, 230.0, 70.0, 20.0, 70.0);
    let h = top + panels.len() as f64 * (ph + 60.0) + 10.0;
    let mut s = String::new();
    let title = format!(
        "Echo servers, medians over the rounds (log scales; lines/s higher is better, the others lower): {}, {} × {}",
        r.head.machine.date,
        r.head.machine.nproc,
        r.head.machine.cpu
    );
    svg_open(&mut s, w, h, &title);
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
        axis.grid(&mut s, left, w - right, py);
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
                    cell.name(),
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
