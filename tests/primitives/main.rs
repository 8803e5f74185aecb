//! The primitives on real descriptors (pipes, socket pairs, TCP on 127.0.0.1):
//! `select`, `poll`, `readline` and `readn`, `writen`, `linger`, `accept`, and the
//! keyed readiness built on them (`sources`), one module each; `*_alloc` count what
//! they allocate. One binary, so its tests are threads of one process, and they keep
//! out of each other's way:
//!
//! * The allocator counts for the thread that asks only (`common::alloc`).
//! * Signals: `SIGUSR1` is the counting handler of `common::signals` (each EINTR
//!   test signals its own threads and counts per thread); `SIGUSR2` is the handler
//!   of `sources` that wakes a `Waker`.
//! * A test that closes a descriptor number and checks that it stays closed, or that
//!   it is reused, works in a range of numbers no other test uses (the others get
//!   the lowest free numbers, far below):
//!
//!   | numbers | module: what for |
//!   |---|---|
//!   | 400..=499 | `linger`: descriptors checked for being closed (two tests) |
//!   | 500..=599 | `poll`: a closed number inside the table |
//!   | 600..=699 | `select`: a closed number inside the table |
//!   | 700..=799 | `sources`: closed numbers inside the table |
//!   | 800..=899 | `sources`: closed and reused numbers on epoll and kqueue |
//!   | 900..=949 | `poll`: a number closed and reused |
//!   | 950..=999 | `select`: a number closed and reused |
//!   | 1000 | `select`: just below `FD_SETSIZE` |
//!   | 1100 | `sources_alloc`: above `FD_SETSIZE` |
//!   | 1600..=1799 | `select`: above `FD_SETSIZE` |
//!   | 2000.. | `sources`: above `FD_SETSIZE` |
//!
//! * A test that needs the process to itself (it lowers `RLIMIT_NOFILE`, or needs a
//!   descriptor table no other test has grown) runs in a fresh copy of the binary
//!   (`common::fresh`).

#[path = "../common/mod.rs"]
mod common;

mod accept;
mod accept_emfile;
mod linger;
mod poll;
mod readline;
mod readline_alloc;
mod select;
mod sources;
mod sources_alloc;
mod writen;

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;
