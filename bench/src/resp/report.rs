//! The RESP block of docs/benchmarks.md.

use std::fmt::Write as _;

use super::{RespCell, RespResults};
use crate::orchestrate::Run;
use crate::report::{
    col, cpu, f2, f3, latency_cols, load_cols, median, preamble_vs, rate as ops, ratio,
    strace_table, sys, thousands, Better, ByCell, Cmp,
};
use crate::servers::resp::RespKind;

impl RespResults {
    fn get(&self, cell: RespCell, kind: RespKind) -> Option<&Vec<Run>> {
        self.runs.of(cell, kind)
    }

    fn cmp(&self, cell: RespCell, f: fn(&Run) -> Option<f64>, better: Better) -> Option<Cmp> {
        let pair = (RespKind::Ours, RespKind::Redis);
        self.runs.cmp(cell, pair, f, better, 1.0)
    }
}

pub fn markdown(r: &RespResults) -> String {
    let mut s = preamble_vs(&r.head, "redis-server", &r.redis, r.runs.values());
    ratios(&mut s, r);
    measurements(&mut s, r);
    strace(&mut s, r);
    bench(&mut s, r);
    s
}

fn ratios(s: &mut String, r: &RespResults) {
    if !r.kinds.contains(&RespKind::Redis) || !r.kinds.contains(&RespKind::Ours) {
        return;
    }
    let _ = writeln!(s, "### Ours ÷ redis-server\n");
    let _ = writeln!(
        s,
        "Ratios of the medians over the rounds, ours ÷ redis-server's. **Target: ops/s \
         ≥ 1.0×** (level with redis-server), server CPU per op and syscalls per op ≤ \
         1.0×. ≈: the min–max ranges over the rounds overlap.\n"
    );
    let _ = writeln!(
        s,
        "| cell | ops/s ÷ (target ≥ 1.0) | CPU/op ÷ | syscalls/op ÷ | ops/s ours / redis | CPU µs/op ours / redis | syscalls/op ours / redis |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|");
    let (mut held, mut all) = (0, 0);
    for &cell in &r.cells {
        let (Some(a), Some(b)) = (r.get(cell, RespKind::Ours), r.get(cell, RespKind::Redis)) else {
            continue;
        };
        let show = |c: Option<Cmp>| c.as_ref().map_or("–".into(), Cmp::cell);
        let o = r.cmp(cell, ops, Better::Higher);
        if let Some(c) = &o {
            all += 1;
            held += usize::from(c.held);
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} / {} |",
            cell.name(),
            show(o),
            show(r.cmp(cell, cpu, Better::Lower)),
            show(r.cmp(cell, sys, Better::Lower)),
            thousands(median(&col(a, ops))),
            thousands(median(&col(b, ops))),
            f2(median(&col(a, cpu))),
            f2(median(&col(b, cpu))),
            f3(median(&col(a, sys))),
            f3(median(&col(b, sys))),
        );
    }
    let _ = writeln!(
        s,
        "\nTarget (ops/s ≥ 1.0× redis-server): held in {held} of {all} cells.\n"
    );
}

fn measurements(s: &mut String, r: &RespResults) {
    let _ = writeln!(s, "### Measurements\n");
    let _ = writeln!(
        s,
        "Median (min–max) over the rounds. An op is one command and its checked reply. \
         ops/s and server CPU per op (utime + stime of every thread, /proc/PID/stat) \
         over the measured window; waited: the share of the window the server / the \
         load generator were runnable but another job had their CPU; syscalls per op \
         from `perf stat -e raw_syscalls:sys_enter -p PID` over the window after it; \
         p50/p99: round trip of each command, from its batch's write.\n"
    );
    let _ = writeln!(
        s,
        "| cell | server | ops/s | CPU µs/op | server CPU | waited server / load | syscalls/op | p50 µs | p99 µs |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
    for &cell in &r.cells {
        for &kind in &r.kinds {
            let Some(runs) = r.get(cell, kind) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                cell.name(),
                kind.label(),
                load_cols(runs),
                latency_cols(runs),
            );
        }
    }
    let _ = writeln!(s);
}

fn strace(s: &mut String, r: &RespResults) {
    if r.strace.is_empty() {
        return;
    }
    strace_table(
        s,
        "Separate runs with strace attached for a short window (it slows every call: \
         read these for which calls, the totals are perf's above). Per op: calls \
         (errors).",
        "op",
        r.strace
            .iter()
            .map(|(cell, kind, res)| (cell.name(), kind.label(), res)),
    );
}

fn bench(s: &mut String, r: &RespResults) {
    if r.bench.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Cross-check: `redis-benchmark`\n");
    let _ = writeln!(
        s,
        "`{}` (pinned to the load generator's CPU), each server started fresh, the \
         order alternating; requests per second as it prints them, and the server's \
         CPU over the whole run per request.\n",
        r.bench_command
    );
    let _ = writeln!(
        s,
        "| server | round | requests per second | server CPU µs/request |"
    );
    let _ = writeln!(s, "|---|--:|---|--:|");
    let mut round_of = std::collections::BTreeMap::new();
    let mut by_test: std::collections::BTreeMap<(RespKind, String), Vec<f64>> =
        std::collections::BTreeMap::new();
    for (kind, res) in &r.bench {
        let round = round_of.entry(*kind).or_insert(0);
        *round += 1;
        match res {
            Ok(b) => {
                let tests: Vec<String> = b
                    .rps
                    .iter()
                    .map(|(t, n)| format!("{t} {}", thousands(*n)))
                    .collect();
                for (t, n) in &b.rps {
                    by_test.entry((*kind, t.clone())).or_default().push(*n);
                }
                let _ = writeln!(
                    s,
                    "| {} | {round} | {} | {} |",
                    kind.label(),
                    tests.join(", "),
                    f2(b.cpu_us_per_op)
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| {} | {round} | failed: {e} | |", kind.label());
            }
        }
    }
    let tests: std::collections::BTreeSet<&String> = by_test.keys().map(|(_, t)| t).collect();
    let mut parts = Vec::new();
    for t in tests {
        let (Some(a), Some(b)) = (
            by_test.get(&(RespKind::Ours, t.clone())),
            by_test.get(&(RespKind::Redis, t.clone())),
        ) else {
            continue;
        };
        parts.push(format!("{t} {}", ratio(median(a) / median(b))));
    }
    if !parts.is_empty() {
        let _ = writeln!(
            s,
            "\nredis-benchmark, ours ÷ redis-server (medians): {}.\n",
            parts.join(", ")
        );
    }
}
