//! The KV block of docs/benchmarks.md.

use std::fmt::Write as _;

use super::{KvCell, KvResults};
use crate::orchestrate::Run;
use crate::report::{
    col, cpu, f3, latency_cols, load_cols, median, preamble_vs, rate as ops, ratio, strace_table,
    sys, thousands, us, Better, ByCell, Cmp, WAITS,
};
use crate::servers::kv::KvKind;

const READS: [&str; 3] = ["read", "recvfrom", "recvmsg"];
const SENDS: [&str; 4] = ["write", "writev", "sendto", "sendmsg"];

impl KvResults {
    fn get(&self, cell: KvCell, kind: KvKind) -> Option<&Vec<Run>> {
        self.runs.of(cell, kind)
    }

    fn cmp(
        &self,
        cell: KvCell,
        ours: KvKind,
        f: fn(&Run) -> Option<f64>,
        better: Better,
    ) -> Option<Cmp> {
        let pair = (ours, KvKind::Memcached);
        self.runs.cmp(cell, pair, f, better, 1.0)
    }
}

pub fn markdown(r: &KvResults) -> String {
    let mut s = preamble_vs(&r.head, "memcached", &r.memcached, r.runs.values());
    pipelined(&mut s, r);
    ratios(&mut s, r);
    measurements(&mut s, r);
    strace(&mut s, r);
    s
}

/// The pipelined rows: `depth` requests at once, the next when all came back.
fn pipelined(s: &mut String, r: &KvResults) {
    let cells: Vec<KvCell> = r.cells.iter().copied().filter(|c| c.batched).collect();
    if cells.is_empty() || !r.kinds.contains(&KvKind::Memcached) {
        return;
    }
    let _ = writeln!(s, "### Pipelined: {} requests at once\n", cells[0].depth);
    let _ = writeln!(
        s,
        "Each connection sends {d} requests in one write and the next {d} only once \
         all {d} replies arrived (`redis-benchmark -P {d}`'s shape; a `set` is two \
         messages to the loop, its line and its data block). **Target: ops/s ≥ 1.0× \
         memcached** in every row, with `TCP_NODELAY` on (kv_server's default) and off \
         (`--no-nodelay`); CPU per op and syscalls per op ≤ 1.0× as in the other \
         rows. Ratios of the medians over the rounds, ours ÷ memcached's; ≈: the \
         min–max ranges overlap.\n",
        d = cells[0].depth
    );
    let _ = writeln!(
        s,
        "| workload | conns | server | ops/s ÷ (target ≥ 1.0) | CPU/op ÷ | syscalls/op ÷ | ops/s ours / memcached | p99 µs ours / memcached |"
    );
    let _ = writeln!(s, "|---|--:|---|--:|--:|--:|--:|--:|");
    let (mut held, mut all) = (0, 0);
    for &cell in &cells {
        for &kind in r.kinds.iter().filter(|k| k.is_ours()) {
            let (Some(ours), Some(them)) = (r.get(cell, kind), r.get(cell, KvKind::Memcached))
            else {
                continue;
            };
            let show = |c: Option<Cmp>| c.as_ref().map_or("–".into(), Cmp::cell);
            let ops_cmp = r.cmp(cell, kind, ops, Better::Higher);
            if let Some(c) = &ops_cmp {
                all += 1;
                held += usize::from(c.held);
            }
            let p99 = |runs: &[Run]| median(&col(runs, |r| Some(r.p99_us)));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
                cell.workload.name(),
                cell.conns,
                kind.label(),
                show(ops_cmp),
                show(r.cmp(cell, kind, cpu, Better::Lower)),
                show(r.cmp(cell, kind, sys, Better::Lower)),
                thousands(median(&col(ours, ops))),
                thousands(median(&col(them, ops))),
                us(p99(ours)),
                us(p99(them)),
            );
        }
    }
    let _ = writeln!(
        s,
        "\nPipelined target (ops/s ≥ 1.0× memcached): held in {held} of {all} rows.\n"
    );
}

fn ratios(s: &mut String, r: &KvResults) {
    if !r.kinds.contains(&KvKind::Memcached) {
        return;
    }
    let _ = writeln!(s, "### kv_server ÷ memcached\n");
    let _ = writeln!(
        s,
        "Ratios of the medians over the rounds, ours ÷ memcached's; the target is level \
         or ahead: ops/s ≥ 1, server CPU per op ≤ 1, syscalls per op ≤ 1. ≈: the two \
         ranges (min–max over the rounds) overlap, so the difference is within this \
         machine's noise. ops/s at 1 connection and depth 1 is a ping-pong of two \
         processes on two CPUs and measures wake-up latency more than the server.\n"
    );
    let _ = writeln!(
        s,
        "| workload | depth | conns | server | ops/s ÷ | CPU/op ÷ | syscalls/op ÷ | syscalls/op ours / memcached |"
    );
    let _ = writeln!(s, "|---|--:|--:|---|--:|--:|--:|--:|");
    for &cell in r.cells.iter().filter(|c| !c.batched) {
        for &kind in r.kinds.iter().filter(|k| k.is_ours()) {
            if r.get(cell, kind).is_none() || r.get(cell, KvKind::Memcached).is_none() {
                continue;
            }
            let show = |c: Option<Cmp>| c.as_ref().map_or("–".into(), Cmp::cell);
            let med = |k: KvKind| median(&col(r.get(cell, k).map_or(&[][..], |v| v), sys));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                cell.workload.name(),
                cell.depth,
                cell.conns,
                kind.label(),
                show(r.cmp(cell, kind, ops, Better::Higher)),
                show(r.cmp(cell, kind, cpu, Better::Lower)),
                show(r.cmp(cell, kind, sys, Better::Lower)),
                f3(med(kind)),
                f3(med(KvKind::Memcached)),
            );
        }
    }
    let _ = writeln!(s);
    // The geometric means over the cells.
    for &kind in r.kinds.iter().filter(|k| k.is_ours()) {
        let mut parts = Vec::new();
        for (name, f, better) in [
            ("ops/s", ops as fn(&Run) -> Option<f64>, Better::Higher),
            ("CPU/op", cpu, Better::Lower),
            ("syscalls/op", sys, Better::Lower),
        ] {
            let rs: Vec<f64> = r
                .cells
                .iter()
                .filter(|c| !c.batched)
                .filter_map(|&c| r.cmp(c, kind, f, better))
                .map(|c| c.ratio)
                .collect();
            if !rs.is_empty() {
                let geo = (rs.iter().map(|x| x.ln()).sum::<f64>() / rs.len() as f64).exp();
                parts.push(format!("{name} {}", ratio(geo)));
            }
        }
        if !parts.is_empty() {
            let _ = writeln!(
                s,
                "Geometric means over the cells above, {} ÷ memcached: {}.\n",
                kind.label(),
                parts.join(", ")
            );
        }
    }
}

fn measurements(s: &mut String, r: &KvResults) {
    let _ = writeln!(s, "### Measurements\n");
    let _ = writeln!(
        s,
        "Median (min–max) over the rounds. An op is one request and its checked reply. \
         ops/s and server CPU per op over the measured window (utime + stime of every \
         thread of the server, /proc/PID/stat; server CPU in cores); waited: the share \
         of the window the server's threads / the load generator were runnable but \
         another job had their CPU; syscalls per op from `perf stat -e \
         raw_syscalls:sys_enter -p PID` (every thread) over the window after it, and \
         by name: waits (select, poll, epoll_wait), reads (read, recvfrom, recvmsg; \
         EAGAIN returns of read/recvfrom apart), sends (write, writev, sendto, \
         sendmsg); p50/p99: round trip of each request.\n"
    );
    let mut groups: Vec<(super::Workload, usize, bool)> = r
        .cells
        .iter()
        .map(|c| (c.workload, c.depth, c.batched))
        .collect();
    groups.dedup();
    for (workload, depth, batched) in groups {
        let _ = writeln!(
            s,
            "**{} depth {depth}{}**\n",
            workload.name(),
            if batched { " in batches" } else { "" }
        );
        let _ = writeln!(
            s,
            "| conns | server | ops/s | CPU µs/op | server CPU | waited server / load | syscalls/op | waits/op | reads/op (EAGAIN) | sends/op | p50 µs | p99 µs |"
        );
        let _ = writeln!(s, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for &cell in r
            .cells
            .iter()
            .filter(|c| c.workload == workload && c.depth == depth && c.batched == batched)
        {
            for &kind in &r.kinds {
                let Some(runs) = r.get(cell, kind) else {
                    continue;
                };
                let c = |f: &dyn Fn(&Run) -> Option<f64>| col(runs, f);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} ({}) | {} | {} |",
                    cell.conns,
                    kind.label(),
                    load_cols(runs),
                    f3(median(&c(&|r| r.per_line(WAITS, false)))),
                    f3(median(&c(&|r| r.per_line(&READS, false)))),
                    f3(median(&c(&|r| r.per_line(&READS, true)))),
                    f3(median(&c(&|r| r.per_line(&SENDS, false)))),
                    latency_cols(runs),
                );
            }
        }
        let _ = writeln!(s);
    }
}

fn strace(s: &mut String, r: &KvResults) {
    if r.strace.is_empty() {
        return;
    }
    strace_table(
        s,
        "Separate runs, strace attached for a short window; it slows every syscall, \
         so more requests queue per wake-up than without it: read these for which \
         calls, not for the totals (perf's are above). Per op: calls (errors).",
        "op",
        r.strace
            .iter()
            .map(|(cell, kind, res)| (cell.name(), kind.label(), res)),
    );
}
