//! `writen` (UNP's `Writen`: `send(MSG_NOSIGNAL)` in a loop) against
//! `Write::write_all` on a Unix-domain socket pair whose other end a thread drains.
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench writen`.

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use unp_select::writen::writen;

fn drained_pair() -> (UnixStream, thread::JoinHandle<u64>) {
    let (tx, mut rx) = UnixStream::pair().unwrap();
    let drain = thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match rx.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    });
    (tx, drain)
}

fn write(c: &mut Criterion) {
    let mut g = c.benchmark_group("writen");
    for size in [64usize, 4096, 65536] {
        let data = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("Write::write_all", size),
            &data,
            |b, data| {
                let (mut tx, drain) = drained_pair();
                b.iter(|| tx.write_all(black_box(data)).unwrap());
                drop(tx);
                drain.join().unwrap();
            },
        );
        g.bench_with_input(BenchmarkId::new("writen", size), &data, |b, data| {
            let (tx, drain) = drained_pair();
            b.iter(|| writen(&tx, black_box(data)).unwrap());
            drop(tx);
            drain.join().unwrap();
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = write
}
criterion_main!(benches);
