//! The server loop (`unp_select::server`) and what is built on it, on real loopback
//! sockets: the echo server (`echo`) and its reliability suite (`reliability`), the
//! loop's own behaviour (`basics`, `workers`, `fairness`, `workloads`), and the
//! example programs run as a user runs them (`examples`, `chat`, `relay`,
//! `kv_clients`).
//!
//! One binary, so `tests/common` is compiled and the binary linked once, and the
//! tests of every module wait side by side (most of their time is spent waiting on
//! sockets and timers, not on the CPU). A test that needs the process to itself
//! (its descriptor table, limits, signal handlers or CPU time) runs in a fresh copy
//! of this binary (`common::fresh`); the few that measure latencies take
//! [`common::timing`] so that no two of them measure each other. The allocator
//! counts only for the threads that ask (`common::alloc`). `.cargo/config.toml`
//! gives libtest 16 threads: the default, one per core, would leave the cores idle.

#[path = "../common/mod.rs"]
mod common;

mod basics;
mod chat;
mod echo;
mod examples;
mod fairness;
mod kv_clients;
mod relay;
mod reliability;
mod workers;
mod workloads;

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;
