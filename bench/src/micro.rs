//! The micro-benchmark table of docs/benchmarks.md, summarised from criterion's
//! files under bench/target/criterion (`cargo bench --manifest-path
//! bench/Cargo.toml`), and the marked blocks of that document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::other_err;

pub const DOC_SKELETON: &str =
    "# Benchmarks\n\n<!-- BEGIN LOAD -->\n<!-- END LOAD -->\n\n<!-- BEGIN MICRO -->\n<!-- END MICRO -->\n";

/// Replaces what lies between `<!-- BEGIN NAME -->` and `<!-- END NAME -->`, or
/// appends the block if it is missing.
pub fn replace_block(doc: &str, name: &str, content: &str) -> String {
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{begin}\n{}\n{}",
            &doc[..b],
            content.trim_end(),
            &doc[e..]
        ),
        _ => format!(
            "{}\n{begin}\n{}\n{end}\n",
            doc.trim_end(),
            content.trim_end()
        ),
    }
}

/// `micro-docs`: rewrites the MICRO block of docs/benchmarks.md.
pub fn micro_docs(bench_dir: &Path, docs: &Path) -> io::Result<()> {
    let table = micro_table(&bench_dir.join("target/criterion")).ok_or_else(|| {
        other_err("no results in bench/target/criterion: run `cargo bench --manifest-path bench/Cargo.toml` first")
    })?;
    let path = docs.join("benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| DOC_SKELETON.to_string());
    let text = format!(
        "Summarised on {} by `cargo run --release --manifest-path bench/Cargo.toml -- micro-docs`.\n\n{table}",
        crate::orchestrate::date()
    );
    std::fs::write(&path, replace_block(&old, "MICRO", &text))?;
    println!("{text}");
    Ok(())
}

/// The string value of `"key":"..."` in a small JSON text.
fn json_str(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The number of `"key":N` in a small JSON text, searching from `from`.
fn json_num(text: &str, from: usize, key: &str) -> Option<f64> {
    let at = text[from..].find(&format!("\"{key}\":"))? + from + key.len() + 3;
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// One criterion result: (group, parameter, function) → median and its 95% interval, ns.
fn criterion_results(dir: &Path) -> Vec<(String, String, String, f64, f64, f64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let (Ok(b), Ok(est)) = (
                        std::fs::read_to_string(p.join("benchmark.json")),
                        std::fs::read_to_string(p.join("estimates.json")),
                    ) else {
                        continue;
                    };
                    let Some(at) = est.find("\"median\":") else {
                        continue;
                    };
                    let (Some(g), Some(f), Some(med), Some(lo), Some(hi)) = (
                        json_str(&b, "group_id"),
                        json_str(&b, "function_id"),
                        json_num(&est, at, "point_estimate"),
                        json_num(&est, at, "lower_bound"),
                        json_num(&est, at, "upper_bound"),
                    ) else {
                        continue;
                    };
                    let v = json_str(&b, "value_str").unwrap_or_default();
                    out.push((g, v, f, med, lo, hi));
                } else if p.file_name().is_some_and(|n| n != "base" && n != "report") {
                    stack.push(p);
                }
            }
        }
    }
    out
}

/// (function, median, lower bound, upper bound), ns.
type Estimate = (String, f64, f64, f64);

fn ns(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} ms", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} µs", x / 1e3)
    } else {
        format!("{x:.1} ns")
    }
}

/// A table of criterion's medians, each beside its baseline (the libc macros,
/// `BufReader::read_until`, `Write::write_all`).
pub fn micro_table(dir: &Path) -> Option<String> {
    let results = criterion_results(dir);
    if results.is_empty() {
        return None;
    }
    let is_base =
        |f: &str| f.starts_with("libc") || f.starts_with("BufReader") || f.starts_with("Write::");
    let mut groups: BTreeMap<(String, u64, String), Vec<Estimate>> = BTreeMap::new();
    for (g, v, f, med, lo, hi) in results {
        let order = v.parse::<u64>().unwrap_or(u64::MAX);
        groups
            .entry((g, order, v))
            .or_default()
            .push((f, med, lo, hi));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Criterion medians with their 95% confidence interval, from `bench/target/criterion` \
         (`cargo bench --manifest-path bench/Cargo.toml`). Ratio: time of the crate's function over the baseline's \
         (≤ 1.00 is at least as fast).\n"
    );
    let _ = writeln!(
        s,
        "| benchmark | n / size | baseline | baseline time | crate function | time | ratio |"
    );
    let _ = writeln!(s, "|---|--:|---|--:|---|--:|--:|");
    for ((g, _, v), funcs) in &groups {
        let Some(base) = funcs.iter().find(|f| is_base(&f.0)) else {
            continue;
        };
        for f in funcs.iter().filter(|f| !is_base(&f.0)) {
            let _ = writeln!(
                s,
                "| {g} | {v} | {} | {} [{}–{}] | {} | {} [{}–{}] | {:.2} |",
                base.0,
                ns(base.1),
                ns(base.2),
                ns(base.3),
                f.0,
                ns(f.1),
                ns(f.2),
                ns(f.3),
                f.1 / base.1
            );
        }
    }
    Some(s)
}
