//! Reliability suite: the echo server keeps working and loses nothing under faults,
//! load and bad input. Every scenario runs against the select loop (`run`) and the
//! poll loop (`run_poll`) on 127.0.0.1, is bounded by a watchdog, and checks that
//!
//! * every well-behaved client got back exactly the bytes it sent (byte for byte),
//! * the server still serves afterwards (a fresh client's echo), and
//! * no descriptor leaked (the process's open descriptors, counted before and after).
//!
//! One module per scenario; the helpers they share (load levels, the server thread,
//! streaming clients, descriptor counting) are in `tests/common/`. Descriptor counts
//! are per process, so every scenario runs in a process of its own (a fresh copy of
//! this binary, `common::fresh`): its variants side by side, and beside the other
//! scenarios.
//! Each prints a `RELIABILITY ...` line with its measurements
//! (`cargo test --test server reliability:: -- --nocapture`); `docs/reliability.md` is built
//! from them. Load: `UNP_LOAD=light` (valgrind), default (CI), `UNP_SOAK=1` (the
//! issue's full numbers, longer). `UNP_SEED=n` replays a run.

use crate::common;

mod bad_input;
mod beyond_fd_setsize;
mod competing_accepters;
mod half_close;
mod line_reader_props;
mod never_reads;
mod out_of_fds;
mod rst_storm;
mod signals;
mod slow_input;

// What the scenario modules share (each says `use super::*;`).
use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::clients::*;
use common::fds::*;
use common::fresh::in_fresh_processes;
use common::load::*;
use common::server::*;
use common::Watchdog;
use unp_select::echo::{Echo, EchoServer};
use unp_select::server::{Config, Stats};

/// Both loops the scenarios run against (scenario 6 adds `run_large`).
const SELECT_AND_POLL: [Variant; 2] = [Variant::Select, Variant::Poll];

fn watchdog(name: &'static str) -> Watchdog {
    Watchdog::new(name, Duration::from_secs(pick(600, 120, 1200)))
}

/// How long a scenario's processes may run: longer than any watchdog in them, so
/// that a hung scenario is reported by its own watchdog first.
fn process_limit() -> Duration {
    Duration::from_secs(pick(660, 180, 1260))
}

/// Runs `scenario` against each of `variants`, each in a process of its own, side by
/// side with each other and with the other scenarios. The soak's loads and limits
/// were set for a machine to themselves: there, one scenario and variant at a time
/// (each holds [`common::timing`]).
fn run_scenario<T: Copy + Debug>(variants: &[T], scenario: impl FnOnce(T)) {
    if level() == Level::Soak {
        let _alone = common::timing();
        in_fresh_processes(variants, 1, process_limit(), scenario);
    } else {
        in_fresh_processes(variants, variants.len(), process_limit(), scenario);
    }
}

/// Runs `body` in a process of its own, side by side with the other scenarios.
fn in_own_process(body: impl FnOnce()) {
    run_scenario(&[()], |()| body());
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
