//! kv_server --epoll's user-space instructions per request, counted by callgrind
//! (`valgrind --tool=callgrind`): deterministic where this VM's clocks are not.
//!
//! Two runs of the same server with the same idle connections, one with `n0`
//! requests and one with `n1`, one connection, one request at a time; what
//! differs between them is `n1 - n0` requests, so the difference of their totals
//! divided by it is the cost of a request, start-up, preload, the idle
//! connections' opening and every close cancelling out.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::exchange;
use crate::kv::client::{self as kv_client, Data, Memcache, Workload};
use crate::load;
use crate::orchestrate::Cpus;
use crate::other_err;
use crate::servers::spawn_ready;

/// What two runs counted.
#[derive(Clone, Copy, Debug)]
pub struct Count {
    pub requests: (u64, u64),
    pub instructions: (u64, u64),
}

impl Count {
    pub fn per_request(&self) -> f64 {
        let (a, b) = self.instructions;
        let (n0, n1) = self.requests;
        (b as f64 - a as f64) / (n1 - n0).max(1) as f64
    }
}

/// Counts kv_server --epoll (`kv_bin`) with `idle` idle connections, after
/// `requests.0` and after `requests.1` requests.
pub fn count(
    kv_bin: &Path,
    idle: usize,
    requests: (u64, u64),
    data: Data,
    cpus: Cpus,
) -> io::Result<Count> {
    // Few keys: the preload is the same in both runs, and short under valgrind.
    let data = Data {
        keys: data.keys.min(100),
        ..data
    };
    let a = instructions(kv_bin, idle, requests.0, data, cpus)?;
    let b = instructions(kv_bin, idle, requests.1, data, cpus)?;
    Ok(Count {
        requests,
        instructions: (a, b),
    })
}

/// The instructions of one run: start, preload, `idle` idle connections, `n`
/// requests one by one on one more, every connection reset, SIGTERM.
fn instructions(kv_bin: &Path, idle: usize, n: u64, data: Data, cpus: Cpus) -> io::Result<u64> {
    let out = std::env::temp_dir().join(format!(
        "echo-bench-{}-callgrind-{idle}-{n}.out",
        std::process::id()
    ));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(kv_bin)
        .args(super::example_args(super::Srv::KvEpoll))
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let server = spawn_ready(
        cmd,
        "kv_server under callgrind",
        "kv_server: listening on ",
        cpus.server,
    )?;
    let get = Memcache {
        workload: Workload::Get,
        data,
    };
    kv_client::preload(server.addr, data)?;
    let held = exchange::connect(server.addr, idle, &get, 1)?;
    let mut one = exchange::connect(server.addr, 1, &get, 1)?;
    load::one_by_one(&mut one[0], n)?;
    load::close_all(one);
    load::close_all(held);
    server.stop(Duration::from_secs(120))?;
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    let text = text?;
    text.lines()
        .find_map(|l| {
            let v = l
                .strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))?;
            v.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| other_err("no summary line in callgrind's output"))
}
