//! Reliability scenarios about descriptor limits (see `tests/reliability/` for the
//! rest and `docs/reliability.md` for the measurements):
//!
//! * Scenario 5, **out of descriptors** (`out_of_fds`): the server runs in a child
//!   process (this test binary re-executed with `UNP_RELIABILITY_CHILD` set) under a
//!   low `RLIMIT_NOFILE`, and more clients arrive than it has descriptors. It must
//!   neither exit nor spin (its CPU time is read from `/proc/<pid>/stat` during the
//!   flood) and must serve again once clients leave.
//! * Scenario 6, **more clients than `FD_SETSIZE`** (`beyond_fd_setsize`): the select
//!   server refuses (resets and counts) every connection whose descriptor does not
//!   fit an `fd_set`; the poll server serves them all.
//!
//! Both change or fill the process's descriptor table, so they live in their own
//! binary and hold one lock.
// Scenario 5 reads /proc (Linux only); elsewhere its helpers are unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

#[path = "../common/mod.rs"]
mod common;

mod beyond_fd_setsize;
mod out_of_fds;

// What the scenario modules share (each says `use super::*;`).
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::clients::*;
use common::fds::*;
use common::load::*;
use common::server::*;
use common::Watchdog;
use unp_select::echo::{Config, EchoServer};
use unp_select::select::FD_SETSIZE;
