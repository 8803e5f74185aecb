//! The MEMORY block of docs/benchmarks.md.

use std::fmt::Write as _;

use super::loads::{BigGet, Stalled};
use super::{MemResults, MEMCACHED_ARGS};
use crate::report::{median, min_max, preamble_vs, ratio};
use crate::servers::kv::KvKind;

/// "median (min–max)" of KiB values, in MiB.
fn mib(v: &[u64]) -> String {
    let x: Vec<f64> = v.iter().map(|&k| k as f64 / 1024.0).collect();
    if x.is_empty() {
        return "–".into();
    }
    let m = format!("{:.1}", median(&x));
    if x.len() < 2 {
        return m;
    }
    let (lo, hi) = min_max(&x);
    format!("{m} ({lo:.1}–{hi:.1})")
}

fn label(kind: KvKind) -> String {
    match kind {
        KvKind::Memcached => format!("memcached -t 1 {}", MEMCACHED_ARGS.join(" ")),
        k => k.label().to_string(),
    }
}

/// Ours ÷ memcached of the medians of `f`.
fn versus<T>(runs: &std::collections::BTreeMap<KvKind, Vec<T>>, f: impl Fn(&T) -> u64) -> String {
    let med = |k: KvKind| {
        runs.get(&k)
            .map(|v| median(&v.iter().map(|t| f(t) as f64).collect::<Vec<_>>()))
    };
    match (med(KvKind::Select), med(KvKind::Memcached)) {
        (Some(a), Some(b)) if b > 0.0 => ratio(a / b),
        _ => "–".into(),
    }
}

pub fn markdown(r: &MemResults) -> String {
    let mut s = preamble_vs(&r.head, "memcached", &r.memcached, std::iter::empty());
    stalled(&mut s, r);
    big(&mut s, r);
    flood(&mut s, r);
    s
}

fn stalled(s: &mut String, r: &MemResults) {
    if r.stalled.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Stalled sets\n");
    let _ = writeln!(
        s,
        "Every connection sends `set stall:N 0 0 LEN` and all of its LEN-byte value \
         but the last byte, then waits. VmRSS (MiB) before any connection, with every \
         connection stalled, its peak (VmHWM) and after every connection was reset; \
         median (min–max) over the rounds. Written: the share of the bytes the client \
         could write (into the server or its socket buffers) before the run moved on; \
         closed: connections the server closed (the drop in its open descriptors); \
         answered: connections that got a reply before their last byte (memcached's \
         `SERVER_ERROR out of memory` once its 64 MB are taken).\n"
    );
    let _ = writeln!(
        s,
        "| server | connections × value | before | stalled | peak | after close | written | closed | answered |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (&kind, runs) in &r.stalled {
        let f = |g: fn(&Stalled) -> u64| runs.iter().map(g).collect::<Vec<_>>();
        let taken: Vec<f64> = runs
            .iter()
            .map(|m| m.sent as f64 * 100.0 / m.wanted.max(1) as f64)
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} × {} | {} | {} | {} | {} | {:.0}% | {} | {} |",
            label(kind),
            runs[0].conns,
            runs[0].value,
            mib(&f(|m| m.before)),
            mib(&f(|m| m.loaded)),
            mib(&f(|m| m.peak)),
            mib(&f(|m| m.after)),
            median(&taken),
            median(
                &f(|m| m.closed as u64)
                    .iter()
                    .map(|&x| x as f64)
                    .collect::<Vec<_>>()
            ),
            median(
                &f(|m| m.answered as u64)
                    .iter()
                    .map(|&x| x as f64)
                    .collect::<Vec<_>>()
            ),
        );
    }
    let _ = writeln!(
        s,
        "\nPeak RSS, kv_server ÷ memcached: {}; after close: {}.\n",
        versus(&r.stalled, |m| m.peak),
        versus(&r.stalled, |m| m.after)
    );
}

fn big(s: &mut String, r: &MemResults) {
    if r.big.is_empty() {
        return;
    }
    let Some(first) = r.big.values().flatten().next() else {
        return;
    };
    let _ = writeln!(
        s,
        "### One `get` naming a 1 MiB item {} times\n",
        first.names
    );
    let _ = writeln!(
        s,
        "The item `big` (1 MiB) is stored, then one {}-byte `get big big …` asks for \
         it {} times ({:.0} MiB of reply) on a connection with a 16 KiB receive \
         buffer that reads 4 KiB every 10 ms for {:.1} s, then reads the rest as \
         fast as it comes; every byte is checked. VmRSS (MiB) with the item stored, \
         the peak (VmHWM) by the end of the slow reading and by the end, and after the \
         connection closed.\n",
        first.request,
        first.names,
        first.wanted as f64 / 1048576.0,
        first.slow_secs
    );
    let _ = writeln!(
        s,
        "| server | before | peak, read slowly | peak | after | read slowly | reply |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|---|");
    for (&kind, runs) in &r.big {
        let f = |g: fn(&BigGet) -> u64| runs.iter().map(g).collect::<Vec<_>>();
        let ends: Vec<String> = runs.iter().map(|m| m.ended.clone()).collect();
        let mut uniq = ends.clone();
        uniq.dedup();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} KiB | {} |",
            label(kind),
            mib(&f(|m| m.before)),
            mib(&f(|m| m.slow_peak)),
            mib(&f(|m| m.peak)),
            mib(&f(|m| m.after)),
            median(
                &f(|m| m.slow_bytes)
                    .iter()
                    .map(|&x| x as f64 / 1024.0)
                    .collect::<Vec<_>>()
            ),
            uniq.join("; ")
        );
    }
    let _ = writeln!(
        s,
        "\nPeak RSS while read slowly, kv_server ÷ memcached: {}; over the whole reply: {}.\n",
        versus(&r.big, |m| m.slow_peak),
        versus(&r.big, |m| m.peak)
    );
}

fn flood(s: &mut String, r: &MemResults) {
    if r.flood.is_empty() {
        return;
    }
    let _ = writeln!(s, "### chat_server flooded\n");
    let _ = writeln!(
        s,
        "{} receivers (16 KiB receive buffers, so what they do not read waits in the \
         server rather than in the kernel) read one line and then nothing; one sender \
         writes 128-byte lines as fast as chat_server takes them for {:.0} s. VmRSS (MiB) of the empty \
         server, its peak (VmHWM) and VmRSS at the end of the flood, and after every \
         connection was reset; connections closed: the drop in the server's open \
         descriptors during the flood. No memcached counterpart: the bounds are the loop's, \
         {}.\n",
        r.receivers, r.flood[0].secs, r.bounds
    );
    let _ = writeln!(
        s,
        "| round | empty | peak | at the end | after close | taken from the sender | connections closed | sender's writes failed |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|---|");
    for (i, m) in r.flood.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} MB | {} of {} | {} |",
            i + 1,
            mib(&[m.empty]),
            mib(&[m.peak]),
            mib(&[m.end]),
            mib(&[m.after]),
            m.sent as f64 / 1e6,
            m.closed,
            m.receivers + 1,
            if m.sender_closed { "yes" } else { "no" }
        );
    }
    let peaks: Vec<f64> = r
        .flood
        .iter()
        .map(|m| (m.peak - m.empty.min(m.peak)) as f64)
        .collect();
    let _ = writeln!(
        s,
        "\nPeak above the empty server: {:.0} MiB (median over the rounds).\n",
        median(&peaks) / 1024.0
    );
}
