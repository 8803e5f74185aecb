//! `LineReader::readline` against `std::io::BufReader::read_until(b'\n')` over the
//! same in-memory input: 1 MiB of lines of 16, 80 and 1024 bytes, and one line of
//! 1 MiB. Both readers are created once and rewound between iterations (steady state:
//! neither allocates once its buffers have grown).
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench readline`; the allocation
//! count per line is checked by the crate's tests/primitives/readline_alloc.rs.

mod common;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Cursor};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use unp_select::LineReader;

const TOTAL: usize = 1 << 20;

/// `TOTAL` bytes (rounded down to whole lines) of `len`-byte lines, each ending in
/// `\n`.
fn input(len: usize) -> Vec<u8> {
    let mut line: Vec<u8> = (0..len - 1).map(|i| b'a' + (i % 26) as u8).collect();
    line.push(b'\n');
    line.repeat(TOTAL / len)
}

/// Reads lines into `line` with `next` (the bytes it read, 0 at the end of the
/// input) until the end, and checks that there were `lines` of them.
fn every_line(lines: usize, line: &mut Vec<u8>, mut next: impl FnMut(&mut Vec<u8>) -> usize) {
    let mut n = 0;
    loop {
        line.clear();
        if next(line) == 0 {
            break;
        }
        n += 1;
        black_box(&line);
    }
    assert_eq!(n, lines);
}

fn readline(c: &mut Criterion) {
    let mut g = c.benchmark_group("readline");
    for len in [16usize, 80, 1024, TOTAL] {
        let data = input(len);
        let lines = data.len() / len;
        let label = if len == TOTAL {
            "1MiB".to_string()
        } else {
            len.to_string()
        };
        g.throughput(Throughput::Bytes(data.len() as u64));

        g.bench_function(BenchmarkId::new("BufReader::read_until", &label), |b| {
            let mut r = BufReader::new(Cursor::new(&data[..]));
            let mut line = Vec::new();
            b.iter(|| {
                r.get_mut().set_position(0);
                every_line(lines, &mut line, |l| r.read_until(b'\n', l).unwrap());
            })
        });

        g.bench_function(BenchmarkId::new("LineReader::readline", &label), |b| {
            let mut r = LineReader::new(Cursor::new(&data[..]));
            // Whole lines, as read_until returns them (the default cap is 64 KiB).
            r.set_max_line(2 * TOTAL).unwrap();
            let mut line = Vec::new();
            b.iter(|| {
                r.get_mut().set_position(0);
                every_line(lines, &mut line, |l| r.readline(l).unwrap());
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = readline
}
criterion_main!(benches);
