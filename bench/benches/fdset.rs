//! `FdSet` and `LargeFdSet` against the libc crate's `FD_SET`/`FD_ISSET`/`FD_CLR`/
//! `FD_ZERO` on a raw `fd_set`: insert, contains, remove, clear and iterate over 1, 64
//! and 1024 descriptors spread evenly over `0..FD_SETSIZE`.
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench fdset`; results are
//! summarised in docs/benchmarks.md.

mod common;

use std::hint::black_box;
use std::os::fd::RawFd;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use unp_select::select::{FdSet, LargeFdSet, FD_SETSIZE};

const COUNTS: [usize; 3] = [1, 64, 1024];

/// `n` descriptors spread evenly over `0..FD_SETSIZE` (the highest is near the top,
/// as in a busy server).
fn fds(n: usize) -> Vec<RawFd> {
    let step = FD_SETSIZE / n;
    (0..n)
        .map(|i| (FD_SETSIZE - 1 - i * step) as RawFd)
        .rev()
        .collect()
}

fn raw_empty() -> libc::fd_set {
    // SAFETY: fd_set is plain integers; all zeroes is a valid (empty) set, and FD_ZERO
    // makes it empty in any case.
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live fd_set.
    unsafe { libc::FD_ZERO(&mut set) };
    set
}

fn raw_full(fds: &[RawFd]) -> libc::fd_set {
    let mut set = raw_empty();
    for &fd in fds {
        // SAFETY: every fd is in 0..FD_SETSIZE and `set` is a live fd_set.
        unsafe { libc::FD_SET(fd, &mut set) };
    }
    set
}

fn ours_full(fds: &[RawFd]) -> FdSet {
    let mut set = FdSet::new();
    for &fd in fds {
        set.insert(fd).unwrap();
    }
    set
}

fn large_full(fds: &[RawFd]) -> LargeFdSet {
    let mut set = LargeFdSet::new();
    for &fd in fds {
        set.insert(fd).unwrap();
    }
    set
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdset/insert");
    for n in COUNTS {
        let fds = fds(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("libc FD_SET", n), &fds, |b, fds| {
            let mut set = raw_empty();
            b.iter(|| {
                for &fd in fds {
                    // SAFETY: fd in 0..FD_SETSIZE, live set.
                    unsafe { libc::FD_SET(black_box(fd), &mut set) };
                }
                black_box(&mut set);
            })
        });
        g.bench_with_input(BenchmarkId::new("FdSet", n), &fds, |b, fds| {
            let mut set = FdSet::new();
            b.iter(|| {
                for &fd in fds {
                    let _ = set.insert(black_box(fd));
                }
                black_box(&mut set);
            })
        });
        g.bench_with_input(BenchmarkId::new("LargeFdSet", n), &fds, |b, fds| {
            let mut set = LargeFdSet::new();
            b.iter(|| {
                for &fd in fds {
                    let _ = set.insert(black_box(fd));
                }
                black_box(&mut set);
            })
        });
    }
    g.finish();
}

fn contains(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdset/contains");
    for n in COUNTS {
        let fds = fds(n);
        g.throughput(Throughput::Elements(n as u64));
        let raw = raw_full(&fds);
        g.bench_with_input(BenchmarkId::new("libc FD_ISSET", n), &fds, |b, fds| {
            b.iter(|| {
                let set = black_box(&raw);
                let mut hits = 0usize;
                for &fd in fds {
                    // SAFETY: fd in 0..FD_SETSIZE, live set.
                    hits += unsafe { libc::FD_ISSET(black_box(fd), set) } as usize;
                }
                hits
            })
        });
        let ours = ours_full(&fds);
        g.bench_with_input(BenchmarkId::new("FdSet", n), &fds, |b, fds| {
            b.iter(|| {
                let set = black_box(&ours);
                fds.iter()
                    .filter(|&&fd| set.contains(black_box(fd)))
                    .count()
            })
        });
        let large = large_full(&fds);
        g.bench_with_input(BenchmarkId::new("LargeFdSet", n), &fds, |b, fds| {
            b.iter(|| {
                let set = black_box(&large);
                fds.iter()
                    .filter(|&&fd| set.contains(black_box(fd)))
                    .count()
            })
        });
    }
    g.finish();
}

fn remove(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdset/remove");
    for n in COUNTS {
        let fds = fds(n);
        g.throughput(Throughput::Elements(n as u64));
        let raw = raw_full(&fds);
        g.bench_with_input(BenchmarkId::new("libc FD_CLR", n), &fds, |b, fds| {
            b.iter_batched_ref(
                || raw,
                |set| {
                    for &fd in fds {
                        // SAFETY: fd in 0..FD_SETSIZE, live set.
                        unsafe { libc::FD_CLR(black_box(fd), set) };
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let ours = ours_full(&fds);
        g.bench_with_input(BenchmarkId::new("FdSet", n), &fds, |b, fds| {
            b.iter_batched_ref(
                || ours,
                |set| {
                    for &fd in fds {
                        set.remove(black_box(fd));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let large = large_full(&fds);
        g.bench_with_input(BenchmarkId::new("LargeFdSet", n), &fds, |b, fds| {
            b.iter_batched_ref(
                || large.clone(),
                |set| {
                    for &fd in fds {
                        set.remove(black_box(fd));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn clear(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdset/clear");
    for n in COUNTS {
        let fds = fds(n);
        let raw = raw_full(&fds);
        g.bench_function(BenchmarkId::new("libc FD_ZERO", n), |b| {
            b.iter_batched_ref(
                || raw,
                // SAFETY: live set.
                |set| unsafe { libc::FD_ZERO(black_box(set)) },
                BatchSize::SmallInput,
            )
        });
        let ours = ours_full(&fds);
        g.bench_function(BenchmarkId::new("FdSet", n), |b| {
            b.iter_batched_ref(|| ours, |set| black_box(set).clear(), BatchSize::SmallInput)
        });
        let large = large_full(&fds);
        g.bench_function(BenchmarkId::new("LargeFdSet", n), |b| {
            b.iter_batched_ref(
                || large.clone(),
                |set| black_box(set).clear(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Visiting every member: C scans `0..maxfd + 1` with `FD_ISSET` (UNP's loops do);
/// the sets' iterators skip empty words.
fn iterate(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdset/iterate");
    for n in COUNTS {
        let fds = fds(n);
        let maxfd = *fds.last().unwrap();
        g.throughput(Throughput::Elements(n as u64));
        let raw = raw_full(&fds);
        g.bench_function(BenchmarkId::new("libc FD_ISSET scan", n), |b| {
            b.iter(|| {
                let set = black_box(&raw);
                let mut sum = 0i64;
                for fd in 0..=black_box(maxfd) {
                    // SAFETY: fd in 0..FD_SETSIZE, live set.
                    if unsafe { libc::FD_ISSET(fd, set) } {
                        sum += fd as i64;
                    }
                }
                sum
            })
        });
        let ours = ours_full(&fds);
        g.bench_function(BenchmarkId::new("FdSet", n), |b| {
            b.iter(|| black_box(&ours).iter().map(|fd| fd as i64).sum::<i64>())
        });
        let large = large_full(&fds);
        g.bench_function(BenchmarkId::new("LargeFdSet", n), |b| {
            b.iter(|| black_box(&large).iter().map(|fd| fd as i64).sum::<i64>())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = insert, contains, remove, clear, iterate
}
criterion_main!(benches);
