//! The C10K block of docs/benchmarks.md, the cost curve of docs/designs.md and
//! its chart (docs/c10k.svg).

use std::fmt::Write as _;

use super::{Extra, Group, Results, Srv};
use crate::orchestrate::Run;
use crate::report::svg_open;
use crate::report::{
    col, cpu, f2, f3, median, preamble_vs, rate, ratio, spread, sys, thousands, Better, ByCell,
    Cmp, LogAxis, WAITS,
};

impl Results {
    /// The most idle connections measured, if more than 0.
    fn most(&self) -> Option<usize> {
        self.idle.last().copied().filter(|&n| n > 0)
    }

    fn extras(&self, idle: usize, kind: Srv) -> &[Extra] {
        self.extras.get(&(idle, kind)).map_or(&[], |v| v)
    }

    /// RSS per idle connection, bytes.
    fn rss(&self, idle: usize, kind: Srv) -> Vec<f64> {
        let e = self.extras(idle, kind);
        e.iter().map(|e| e.mem.bytes_per_conn()).collect()
    }

    /// Syscalls per request one at a time.
    fn one(&self, idle: usize, kind: Srv) -> Vec<f64> {
        let e = self.extras(idle, kind);
        e.iter().filter_map(Extra::one_per_request).collect()
    }

    fn has(&self, kind: Srv) -> bool {
        self.kinds.contains(&kind)
    }
}

/// `epoll_ctl` calls per request.
fn ctl(r: &Run) -> Option<f64> {
    r.per_line(&["epoll_ctl"], false)
}

fn waits(r: &Run) -> Option<f64> {
    r.per_line(WAITS, false)
}

fn show(c: &Option<Cmp>) -> String {
    c.as_ref().map_or("–".into(), Cmp::cell)
}

pub fn markdown(r: &Results) -> String {
    let mut s = preamble_vs(&r.head, "memcached", &r.memcached, r.runs.values());
    targets(&mut s, r);
    for group in [Group::Kv, Group::Echo] {
        table(&mut s, r, group);
    }
    callgrind(&mut s, r);
    let _ = writeln!(s, "### The cost curve\n");
    s.push_str(&curve(r));
    s
}

/// One target: what, the ratio and its verdict.
fn target(s: &mut String, what: &str, c: Option<Cmp>, detail: String) {
    let _ = writeln!(s, "| {what} | {} | {detail} |", show(&c));
}

fn targets(s: &mut String, r: &Results) {
    let Some(most) = r.most() else {
        return;
    };
    let _ = writeln!(s, "### Targets at {most} idle connections\n");
    let _ = writeln!(
        s,
        "Ratios of the medians over the rounds; held or missed on the medians alone, \
         ≈ where the two ranges (min–max over the rounds) overlap. kv_server is held \
         to memcached -t 1, echo_server to the bench's mio echo server (the same \
         targets, for the same backend on a simpler protocol).\n"
    );
    let _ = writeln!(s, "| target | ratio, verdict | medians |");
    let _ = writeln!(s, "|---|--:|---|");
    let runs = &r.runs;
    for group in [Group::Kv, Group::Echo] {
        let (e, p) = Srv::epoll_poll(group);
        let b = e.baseline();
        if !r.has(e) {
            continue;
        }
        let med = |n: usize, k: Srv, f: fn(&Run) -> Option<f64>| {
            runs.median_of(n, k, f).unwrap_or(f64::NAN)
        };
        if r.has(b) {
            target(
                s,
                &format!(
                    "`{}` CPU per request ≤ 1.2× {}'s, at {most} idle",
                    e.label(),
                    b.name()
                ),
                runs.cmp(most, (e, b), cpu, Better::Lower, 1.2),
                format!("{} / {} µs", f2(med(most, e, cpu)), f2(med(most, b, cpu))),
            );
        }
        let own = Cmp::new(
            &col(runs.of(most, e).map_or(&[][..], |v| v), cpu),
            &col(runs.of(0, e).map_or(&[][..], |v| v), cpu),
            Better::Lower,
            1.2,
        );
        target(
            s,
            &format!(
                "`{}` CPU per request at {most} idle ≤ 1.2× its own at 0",
                e.label()
            ),
            own,
            format!("{} / {} µs", f2(med(most, e, cpu)), f2(med(0, e, cpu))),
        );
        if r.has(b) {
            target(
                s,
                &format!(
                    "`{}` requests/s ≥ 0.9× {}'s, at {most} idle",
                    e.label(),
                    b.name()
                ),
                runs.cmp(most, (e, b), rate, Better::Higher, 0.9),
                format!(
                    "{} / {}",
                    thousands(med(most, e, rate)),
                    thousands(med(most, b, rate))
                ),
            );
        }
        if r.has(p) {
            let (x, y) = (r.one(0, e), r.one(0, p));
            target(
                s,
                &format!(
                    "`{}` syscalls per request ≤ `{}`'s, at 0 idle, one request at a time",
                    e.label(),
                    p.label()
                ),
                Cmp::new(&x, &y, Better::Lower, 1.0),
                format!(
                    "{} / {}; under the load {} / {}",
                    f3(median(&x)),
                    f3(median(&y)),
                    f3(med(0, e, sys)),
                    f3(med(0, p, sys))
                ),
            );
        }
        if r.has(b) {
            let (x, y) = (r.rss(most, e), r.rss(most, b));
            target(
                s,
                &format!(
                    "`{}` RSS per idle connection ≤ {}'s, at {most} idle",
                    e.label(),
                    b.name()
                ),
                Cmp::new(&x, &y, Better::Lower, 1.0),
                format!(
                    "{} / {} bytes",
                    thousands(median(&x)),
                    thousands(median(&y))
                ),
            );
        }
    }
    let zero = r.callgrind.iter().find(|(n, _)| *n == 0);
    let top = r.callgrind.iter().find(|(n, _)| *n == most);
    if let (Some((_, Ok(a))), Some((_, Ok(b)))) = (zero, top) {
        let (x, y) = (b.per_request(), a.per_request());
        let c = Cmp::new(&[x], &[y], Better::Lower, 1.1);
        target(
            s,
            &format!(
                "`kv_server --epoll` user-space instructions per request at {most} idle within 10% of 0 idle (callgrind)"
            ),
            c,
            format!("{} / {}", thousands(x), thousands(y)),
        );
    }
    let _ = writeln!(s);
}

fn table(s: &mut String, r: &Results, group: Group) {
    let kinds: Vec<Srv> = r
        .kinds
        .iter()
        .copied()
        .filter(|k| k.group() == group)
        .collect();
    let Some(&first) = kinds.first() else {
        return;
    };
    let b = first.baseline();
    let (title, unit) = match group {
        Group::Kv => ("kv_server ÷ memcached", "a `get` and its checked reply"),
        Group::Echo => ("echo_server ÷ mio", "a 64-byte line and its checked echo"),
    };
    let _ = writeln!(s, "### {title}, by idle connections\n");
    let _ = writeln!(
        s,
        "A request is {unit}, {} connection(s) × {} in flight beside the idle ones. \
         Median (min–max) over the rounds: requests/s and server CPU per request over \
         the measured window (utime + stime, /proc/PID/stat); syscalls per request \
         from `perf stat -e raw_syscalls:sys_enter -p PID` over the window after it, \
         and of them the waits (select, poll, epoll_wait) and `epoll_ctl`; one at \
         a time: perf's count over {} more requests on one more connection, each \
         sent when the last reply came (a wait, a read, a send and whatever the \
         loop adds: no batching, so no timing, in it); RSS per idle connection: VmRSS with the idle connections open (after each made one \
         request) minus VmRSS before, ÷ their number. ÷ {}: ours over {}'s medians at \
         the same count, ≈ where the ranges overlap.\n",
        r.active,
        r.depth,
        r.one,
        b.name(),
        b.name()
    );
    let _ = writeln!(
        s,
        "| idle | server | requests/s | CPU µs/request | syscalls/request | waits/request | epoll_ctl/request | syscalls/request one at a time | RSS bytes/idle conn | requests/s ÷ | CPU ÷ | syscalls ÷ | RSS ÷ |"
    );
    let _ = writeln!(s, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for &n in &r.idle {
        for &k in &kinds {
            let Some(runs) = r.runs.of(n, k) else {
                continue;
            };
            let c = |f: fn(&Run) -> Option<f64>| col(runs, f);
            let vs = |f, better| {
                (k != b)
                    .then(|| r.runs.cmp(n, (k, b), f, better, 1.0))
                    .flatten()
                    .map_or("–".into(), |c| ratio(c.ratio))
            };
            let (x, y) = (r.rss(n, k), r.rss(n, b));
            let rss_vs = match Cmp::new(&x, &y, Better::Lower, 1.0) {
                Some(c) if n > 0 && k != b => ratio(c.ratio),
                _ => "–".into(),
            };
            let _ = writeln!(
                s,
                "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {rss_vs} |",
                k.label(),
                spread(&c(rate), thousands),
                spread(&c(cpu), f2),
                spread(&c(sys), f3),
                f3(median(&c(waits))),
                f3(median(&c(ctl))),
                f3(median(&r.one(n, k))),
                if n > 0 {
                    spread(&x, thousands)
                } else {
                    "–".into()
                },
                vs(rate, Better::Higher),
                vs(cpu, Better::Lower),
                vs(sys, Better::Lower),
            );
        }
    }
    let _ = writeln!(s);
}

fn callgrind(s: &mut String, r: &Results) {
    if r.callgrind.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Instructions per request (callgrind)\n");
    let _ = writeln!(
        s,
        "`valgrind --tool=callgrind` on `kv_server --epoll`: two runs with the same \
         idle connections (each opened with one `get`), one with the first number of \
         requests and one with the second, one connection, one `get` at a time; \
         the difference of their user-space instruction totals ÷ the difference of \
         requests is the cost of a request (start-up, preload, opening the idle \
         connections and every close are in both runs and cancel out). No clock is \
         involved: the count repeats to within a few instructions.\n"
    );
    let _ = writeln!(s, "| idle | requests | instructions | per request |");
    let _ = writeln!(s, "|--:|--:|--:|--:|");
    for (n, c) in &r.callgrind {
        match c {
            Ok(c) => {
                let _ = writeln!(
                    s,
                    "| {n} | {} / {} | {} / {} | {} |",
                    thousands(c.requests.0 as f64),
                    thousands(c.requests.1 as f64),
                    thousands(c.instructions.0 as f64),
                    thousands(c.instructions.1 as f64),
                    thousands(c.per_request())
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| {n} | not measured: {e} | | |");
            }
        }
    }
    let _ = writeln!(s);
}

/// Server CPU per request of every server at every idle count (medians), the
/// table of docs/designs.md.
pub fn curve(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Server CPU µs per request (median of the rounds) with N idle connections \
         open beside {} busy ones, from `{}` on {} ({} × {}); the C10K block of \
         [benchmarks.md](benchmarks.md) has the rest. –: not run (select over `FdSet` \
         takes no descriptor past FD_SETSIZE, {}).\n",
        r.active,
        r.head.command,
        r.head.machine.date,
        r.head.machine.nproc,
        r.head.machine.cpu,
        unp_select::FD_SETSIZE
    );
    let _ = write!(s, "| server | backend |");
    for n in &r.idle {
        let _ = write!(s, " {} idle |", thousands(*n as f64));
    }
    let _ = writeln!(s, " at the most ÷ at 0 |");
    let _ = writeln!(s, "|---|---|{}--:|", "--:|".repeat(r.idle.len()));
    for &k in &r.kinds {
        let med = |n: usize| r.runs.median_of(n, k, cpu);
        let _ = write!(
            s,
            "| {} | {} |",
            k.label(),
            k.backend().unwrap_or("epoll (theirs)")
        );
        for &n in &r.idle {
            let _ = write!(s, " {} |", med(n).map_or("–".into(), f2));
        }
        let last = r.idle.iter().rev().find_map(|&n| med(n));
        let growth = match (last, med(0)) {
            (Some(a), Some(b)) if b > 0.0 => ratio(a / b),
            _ => "–".into(),
        };
        let _ = writeln!(s, " {growth} |");
    }
    let _ = writeln!(s, "\n![CPU per request against idle connections](c10k.svg)");
    s
}

/// Two panels (kv, echo): server CPU µs per request against idle connections,
/// one line per server, log scales.
pub fn svg(r: &Results) -> String {
    let (w, ph, left, right, top) = (760.0, 300.0, 70.0, 190.0, 50.0);
    let panels: Vec<Group> = [Group::Kv, Group::Echo]
        .into_iter()
        .filter(|&g| r.kinds.iter().any(|k| k.group() == g))
        .collect();
    let h = top + panels.len() as f64 * (ph + 50.0);
    let mut s = String::new();
    let title = format!(
        "Server CPU µs per request against idle connections (medians, log scales): {}",
        r.head.machine.date
    );
    svg_open(&mut s, w, h, &title);
    // The x axis: idle counts, 0 drawn at the left edge.
    let xs: Vec<f64> = r.idle.iter().map(|&n| (n as f64).max(1.0)).collect();
    let xaxis = LogAxis::new(xs.iter().copied().filter(|&x| x > 1.0));
    let px = |n: usize| {
        if n == 0 {
            left
        } else {
            left + 60.0 + xaxis.frac(n as f64) * (w - left - right - 60.0)
        }
    };
    for (pi, &g) in panels.iter().enumerate() {
        let y0 = top + pi as f64 * (ph + 50.0);
        let kinds: Vec<Srv> = r.kinds.iter().copied().filter(|k| k.group() == g).collect();
        let yaxis = LogAxis::new(kinds.iter().flat_map(|&k| {
            r.idle
                .iter()
                .filter_map(move |&n| r.runs.median_of(n, k, cpu))
        }));
        let (py0, py1) = (y0 + 20.0, y0 + ph - 30.0);
        let py = |v: f64| py1 - yaxis.frac(v) * (py1 - py0);
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{}" font-size="13">{}</text>"#,
            y0 + 12.0,
            match g {
                Group::Kv => "kv_server and memcached -t 1 (get)",
                Group::Echo => "echo_server and mio (64-byte lines)",
            }
        );
        yaxis.grid(&mut s, left, w - right, py);
        for &n in &r.idle {
            let x = px(n);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{py0:.1}" x2="{x:.1}" y2="{py1:.1}" stroke="#f0f0f0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                py1 + 14.0,
                thousands(n as f64)
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">idle connections</text>"##,
            (left + w - right) / 2.0,
            py1 + 28.0
        );
        for (ki, &k) in kinds.iter().enumerate() {
            let pts: Vec<(f64, f64)> = r
                .idle
                .iter()
                .filter_map(|&n| r.runs.median_of(n, k, cpu).map(|v| (px(n), py(v))))
                .collect();
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let dash = if k == k.baseline() {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                path.join(" "),
                k.color()
            );
            for (x, y) in &pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                    k.color()
                );
            }
            let ly = py0 + 14.0 * ki as f64;
            let lx = w - right + 15.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                k.color(),
                lx + 25.0,
                ly + 4.0,
                k.label()
            );
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::{Cpus, Header, Machine, Memory, Runs};
    use crate::tracing::Calls;
    use std::time::Duration;

    /// Results of every server at 0 to 10,000 idle: CPU per request grows with
    /// the idle connections for select and poll only.
    fn fake() -> Results {
        let idle = vec![0, 1000, 5000, 10_000];
        let (mut runs, mut extras) = (Runs::new(), super::super::Extras::new());
        for &n in &idle {
            for k in Srv::ALL {
                let scan = k.backend().is_some_and(|b| !b.starts_with("epoll"));
                let cpu = 8.0 + if scan { n as f64 * 0.07 } else { 0.0 };
                let run = Run {
                    lines_per_sec: 1e6 / cpu / 2.0,
                    cpu_us_per_line: cpu,
                    server_cores: 0.5,
                    server_wait: Some(0.01),
                    load_wait: Some(0.01),
                    p50_us: 50.0,
                    p99_us: 90.0,
                    syscalls: Some((
                        Calls {
                            total: 2300,
                            by_name: vec![("epoll_wait".into(), 300, 0)],
                        },
                        1000,
                    )),
                    perf_error: None,
                };
                runs.insert((n, k), vec![run]);
                let mem = Memory {
                    before_kib: 2000,
                    with_kib: 2000 + n as u64 / 2,
                    conns: n,
                };
                let one = Ok((
                    Calls {
                        total: 3000,
                        by_name: Vec::new(),
                    },
                    1000,
                ));
                extras.insert((n, k), vec![Extra { mem, one }]);
            }
        }
        let machine = Machine {
            date: "today".into(),
            nproc: 2,
            cpu: "cpu".into(),
            kernel: "Linux".into(),
            rustc: "rustc".into(),
            cc: "cc".into(),
            perf: "perf".into(),
            load_start: "0".into(),
            load_end: "0".into(),
        };
        Results {
            head: Header {
                machine,
                command: "c10k".into(),
                cpus: Cpus {
                    server: Some(0),
                    client: Some(1),
                },
                elapsed: Duration::from_secs(1),
                notes: Vec::new(),
                summary: String::new(),
            },
            memcached: "memcached".into(),
            idle,
            kinds: Srv::ALL.to_vec(),
            runs,
            extras,
            one: 1000,
            callgrind: Vec::new(),
            active: 4,
            depth: 1,
        }
    }

    #[test]
    fn targets_curve_and_chart() {
        let r = fake();
        let md = markdown(&r);
        assert!(md.contains("### Targets at 10000 idle connections"));
        // epoll against memcached: the same CPU; against its own at 0: the same.
        assert!(md.contains("| `kv_server --epoll` CPU per request ≤ 1.2× memcached's, at 10000 idle | 1.00 held ≈ |"));
        assert!(md.contains("| kv_server --poll | poll | 8.00 | 78.00 | 358.00 | 708.00 | 88.50 |"));
        let svg = svg(&r);
        assert_eq!(svg.matches("<polyline").count(), Srv::ALL.len());
        if let Ok(path) = std::env::var("C10K_SVG") {
            std::fs::write(path, svg).unwrap();
        }
    }
}
