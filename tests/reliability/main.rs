//! Reliability suite: the echo server keeps working and loses nothing under faults,
//! load and bad input. Every scenario runs against the select loop (`run`) and the
//! poll loop (`run_poll`) on 127.0.0.1, is bounded by a watchdog, and checks that
//!
//! * every well-behaved client got back exactly the bytes it sent (byte for byte),
//! * the server still serves afterwards (a fresh client's echo), and
//! * no descriptor leaked (the process's open descriptors, counted before and after).
//!
//! One module per scenario; the helpers they share (load levels, the server thread,
//! streaming clients, descriptor counting) are in `tests/common/`. The scenarios of
//! one binary share the process's descriptor table, so they hold a global lock and
//! run one at a time. Each prints a `RELIABILITY ...` line with its measurements
//! (`cargo test --test reliability -- --nocapture`); `docs/reliability.md` is built
//! from them. Load: `UNP_LOAD=light` (valgrind), default (CI), `UNP_SOAK=1` (the
//! issue's full numbers, longer). `UNP_SEED=n` replays a run.
//!
//! Out-of-descriptor scenarios (5 and 6) are in `tests/reliability_fds/`.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod competing_accepters;
mod half_close;
mod line_reader_props;
mod never_reads;
mod rst_storm;
mod signals;
mod slow_input;

// What the scenario modules share (each says `use super::*;`).
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::clients::*;
use common::fds::*;
use common::load::*;
use common::server::*;
use common::Watchdog;
use unp_select::echo::{Config, Echo, EchoServer, Stats};

fn watchdog(name: &'static str) -> Watchdog {
    Watchdog::new(name, Duration::from_secs(pick(600, 120, 1200)))
}

/// `closed_*` add up to `accepted`: every client the server took was closed once, for
/// one reason (checked after all clients left and the descriptors settled).
fn assert_all_closed(stats: &Stats) {
    assert_eq!(
        stats.closed_eof + stats.closed_reset + stats.closed_policy,
        stats.accepted,
        "every accepted client is closed exactly once: {stats:?}"
    );
}
