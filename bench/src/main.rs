//! `echo-bench`: the echo-server comparison of docs/benchmarks.md.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml              # full run (~12 min): prints
//!                                                                   # and rewrites docs/benchmarks.{md,svg}
//! cargo run --release --manifest-path bench/Cargo.toml -- --quick   # CI's smoke run
//! cargo run --release --manifest-path bench/Cargo.toml -- --help
//! cargo run --release --manifest-path bench/Cargo.toml -- kv        # kv_server against memcached
//! cargo run --release --manifest-path bench/Cargo.toml -- kv --quick
//! cargo run --release --manifest-path bench/Cargo.toml -- resp      # a RESP store against redis-server
//! cargo run --release --manifest-path bench/Cargo.toml -- resp --quick
//! cargo run --release --manifest-path bench/Cargo.toml -- memory    # RSS under hostile clients
//! cargo run --release --manifest-path bench/Cargo.toml -- memory --quick
//! cargo run --release --manifest-path bench/Cargo.toml -- c10k      # idle connections
//! cargo run --release --manifest-path bench/Cargo.toml -- c10k --quick
//! ```
//!
//! Modules: [`servers`] (ours, C, mio, tokio, each its own process pinned to one
//! CPU), [`load`] (closed-loop pipelined clients that check every byte),
//! [`orchestrate`] (rounds alternating between servers), [`tracing`] (/proc,
//! `perf stat`, `strace -c`, `perf record`), [`report`] (markdown and SVG),
//! [`micro`] (the criterion table), [`kv`] (the crate's `kv_server` against
//! memcached), [`resp`] (a RESP store on `Server<P>` against redis-server),
//! [`memory`] (resident memory under hostile clients), [`exchange`] (the
//! checked request/reply connection of the kv and RESP loads), [`churn`]
//! (connection churn, accept bursts, workers) and [`c10k`] (the cost of a request
//! with up to 10,000 idle connections open). [`cli`] holds the options every
//! part shares, [`echo`] the echo comparison itself.

mod c10k;
mod churn;
mod cli;
mod echo;
mod exchange;
mod kv;
mod load;
mod memory;
mod micro;
mod orchestrate;
mod report;
mod resp;
mod servers;
mod tracing;
mod workers;

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn other_err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

pub fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg.into())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 65536): 1000
/// connections and their server need more than the usual 1024.
pub fn raise_nofile() -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = hard.min(65536);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard)?;
        return Ok(want);
    }
    Ok(soft)
}

/// The bench package's directory (bench/), and the crate's beside it.
fn bench_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docs_dir() -> PathBuf {
    bench_dir().join("../docs")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => servers::serve_main(&args[1..]),
        Some("profile") => echo::profile_main(&args[1..], bench_dir()),
        Some("kv") => kv::main(&args[1..], bench_dir(), &docs_dir()),
        Some("micro-docs") => micro::micro_docs(bench_dir(), &docs_dir()),
        Some("churn") => churn::main(&args[1..], bench_dir(), &docs_dir()),
        Some("resp") => resp::main(&args[1..], &docs_dir()),
        Some("c10k") => c10k::main(&args[1..], bench_dir(), &docs_dir()),
        Some("memory") => memory::main(&args[1..], bench_dir(), &docs_dir()),
        Some("-h") | Some("--help") => {
            println!("{}", echo::USAGE);
            return ExitCode::SUCCESS;
        }
        _ => echo::main(&args, bench_dir(), &docs_dir()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
