//! Fault injection into the real example servers: `strace -f -e
//! inject=SYSCALL:error=ERRNO:when=N..M+S` makes one system call of the running
//! binary fail, and the test checks what the server did about it.
//!
//! One row is (system call, errno, which calls). A case is a row run against one
//! server (`Target`: `echo_server` in byte or line mode, `chat_server`, `kv_server`,
//! `relay` between the clients and an echo upstream the test runs) in one loop mode
//! (select, poll, large, epoll). Every row runs against
//! `echo_server` in every mode (byte echo; the `recvfrom`/`sendto` and
//! `pselect6`/`poll`/`epoll_wait` rows also in line mode), and against `chat_server`
//! and `kv_server` as each test says (`every`: all modes; `spread`: the rows shared
//! out over the modes), and against `relay` in every mode; the `sendmsg` rows only
//! against the servers that make that call (chat), and the others are checked to
//! make none; the rows of epoll's own calls (`epoll_ctl`, `epoll_create1`) in epoll
//! mode only, against all five (the relay's removals planned apart). The relay has
//! rows of its own (`relay`; with epoll, `epoll`): the
//! upstream's `socket`, `connect` and `getsockopt(SO_ERROR)`. The call numbers
//! (`when`) are tuned to echo's workload; `PLANS` re-tunes them for the others'.
//!
//! Each run: five clients connect one after the other (so the accept order is
//! known) and say hello, then all of them at once do their exchange in pieces and
//! check every byte they get back; then each half-closes and waits for EOF. Echo
//! (and the relay, whose upstream echoes):
//! distinctive data (text lines, binary with NULs, one 4095-byte piece without a
//! newline, lines split across pieces) and its echo. kv: `set`s of binary values
//! (NULs, `\r\n`, one longer than a command line), split inside the command line and
//! the data, `get`s of them back, a pipelined `set`+`get`, a `delete`. Chat: an
//! opening round, one client at a time (a line alone, then two lines in one
//! write), then the exchange all at once; each line (tagged with its sender and
//! number; binary, NULs, CRs, one longer than the loop's line) must reach every
//! other client, whole and in its sender's order, and nothing else may arrive.
//! A fresh client (chat: two) must then be served, the
//! server is stopped with SIGTERM, and its counters must say exactly what the row
//! expects. The strace output is read back: the `(INJECTED)` lines must be exactly
//! the planned ones, so a row whose fault never fired fails.
//!
//! Run with `cargo test --test fault_injection -- --ignored --nocapture`; each test
//! prints its measured rows as a table (`docs/reliability.md`, "Every errno of every
//! system call").
//!
//! Layout: this file has what a row and a case are (modes, servers, expectations);
//! one module per family of system calls holds its rows and its test (`wait`,
//! `accept`, `recv`, `send`, `close`, `epoll`, `startup`, `fixed_bugs`, `workers`,
//! `relay`: also the relay's upstream); the
//! harness runs a case under strace (`harness`), reads the trace (`trace`) and
//! judges the outcome (`check`); the clients are in `clients` (echo, kv), `chat` and
//! `fresh` (the check after the faults).
#![cfg(target_os = "linux")] // strace, and Linux errno values

#[path = "../common/mod.rs"]
mod common;

// The harness, and what the clients do.
mod chat;
mod check;
mod clients;
mod fresh;
mod harness;
mod trace;
// One module per system call family: its rows and its test.
mod accept;
mod close;
mod epoll;
mod fixed_bugs;
mod recv;
mod relay;
mod send;
mod startup;
mod wait;
mod workers;

use chat::*;
use check::*;
use clients::*;
use fresh::*;
use harness::*;
use relay::*;
use trace::*;

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::mem;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::Watchdog;

// ---- the rows ---------------------------------------------------------------------

/// The readiness call of the mode: glibc's `select` is `pselect6` on x86_64, `poll` is
/// `poll`, epoll's is `epoll_wait`.
const WAIT: &str = "WAIT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Select,
    Poll,
    Large,
    Epoll,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Select, Mode::Poll, Mode::Large, Mode::Epoll];

    fn flag(self) -> Option<&'static str> {
        match self {
            Mode::Select => None,
            Mode::Poll => Some("--poll"),
            Mode::Large => Some("--large"),
            Mode::Epoll => Some("--epoll"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Select => "select",
            Mode::Poll => "poll",
            Mode::Large => "large",
            Mode::Epoll => "epoll",
        }
    }

    fn syscall(self, sys: &'static str) -> &'static str {
        match (sys, self) {
            (WAIT, Mode::Poll) => "poll",
            (WAIT, Mode::Epoll) => "epoll_wait",
            (WAIT, _) => "pselect6",
            (s, _) => s,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EchoMode {
    Bytes,
    Lines,
}

/// The server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `echo_server --bytes` or `--lines`: its own loop (`unp_select::echo`).
    Echo(EchoMode),
    /// `chat_server`: each line goes to every other client (`unp_select::server`).
    Chat,
    /// `kv_server`: memcached's text protocol (`unp_select::server`).
    Kv,
    /// `relay LISTEN UPSTREAM`: each client paired with its own connection to an
    /// echo server the test runs (`Upstream`), so it gets its bytes back.
    Relay,
}

const ECHO: Target = Target::Echo(EchoMode::Bytes);
const ECHO_LINES: Target = Target::Echo(EchoMode::Lines);
/// The servers on the generic loop (but the relay, whose rows are its own).
const OTHERS: [Target; 2] = [Target::Chat, Target::Kv];

impl Target {
    fn example(self) -> &'static str {
        match self {
            Target::Echo(_) => "echo_server",
            Target::Chat => "chat_server",
            Target::Kv => "kv_server",
            Target::Relay => "relay",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Target::Echo(EchoMode::Bytes) => &["--bytes"],
            Target::Echo(EchoMode::Lines) => &["--lines"],
            Target::Chat | Target::Kv | Target::Relay => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::Echo(EchoMode::Bytes) => "echo bytes",
            Target::Echo(EchoMode::Lines) => "echo lines",
            Target::Chat => "chat",
            Target::Kv => "kv",
            Target::Relay => "relay",
        }
    }

    /// How many clients the check after the faults uses (chat needs two).
    fn fresh_clients(self) -> u64 {
        match self {
            Target::Chat => 2,
            _ => 1,
        }
    }

    /// A row's `when`, re-tuned to this server's workload (see `PLANS`).
    fn when(self, sys: &str, errno: &str, when: &'static str) -> &'static str {
        let plan = |&&(t, s, e, w, _): &&Plan| {
            t == self && s == sys && w == when && e.is_none_or(|e| e == errno)
        };
        let mut plans = PLANS.iter().chain(RELAY_PLANS);
        plans.find(plan).map_or(when, |p| p.4)
    }
}

/// How many loops the server runs (`--workers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workers {
    /// One loop, on the main thread: every call number is planned exactly.
    One,
    /// `--workers 2`: two threads, one shared listener; they race for each
    /// connection.
    Shared,
    /// `--workers 2 --reuseport`: a listener each, the kernel picks.
    Reuseport,
}

impl Workers {
    fn args(self) -> &'static [&'static str] {
        match self {
            Workers::One => &[],
            Workers::Shared => &["--workers", "2", "--shared-listener"],
            Workers::Reuseport => &["--workers", "2", "--reuseport"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workers::One => "",
            Workers::Shared => " ×2",
            Workers::Reuseport => " ×2 reuseport",
        }
    }

    /// strace attaches to the running server (`-p`) instead of starting it: the
    /// `close` rows, whose call numbers would otherwise also count the loader's
    /// closes in the main thread (and the loader dies when one fails).
    fn attach(self, row: &Row) -> bool {
        self != Workers::One && row.sys == "close"
    }
}

/// What a row expects the server to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Retried at once or back to select: nothing lost, no counter moves.
    Retry,
    /// Waited and retried: `backoffs` == faults injected, nothing lost.
    Backoff,
    /// "Not now" from accept: `empty_accepts.<bucket>` == faults injected.
    NotNow(&'static str),
    /// Out of descriptors: one pending connection shed per fault (`shed`,
    /// `out_of_resources` == faults; those clients see a reset).
    Shed,
    /// Out of descriptors and the shed's own accept fails too: listener paused,
    /// `out_of_resources` == 1, nothing shed, every client served.
    ShedFails,
    /// Out of memory in accept (or no reserve descriptor): listener paused,
    /// `out_of_resources` == faults, nothing shed, every client served.
    Pause,
    /// Out of descriptors, connection shed, but re-opening the reserve fails: the
    /// client is reset and the listener paused. `shed` should count the connection.
    ShedReopenFails,
    /// That client is closed (`closed_reset` == faults), the others lose nothing.
    CloseClient,
    /// The server stops: exit 1, stderr names the errno.
    Fatal,
    /// The server refuses to start: exit 1, stderr names the errno.
    NoStart,
    /// The loop cannot be set up (epoll's descriptor, or its listener's
    /// registration): the server exits 1 without serving anyone, stderr names the
    /// errno. (It has printed its address by then.)
    NoLoop,
    /// A connection cannot be watched (its `epoll_ctl` registration failed): refused
    /// with a reset (`refused` == faults), the others lose nothing.
    Refuse,
    /// `getsockname` failed: the server runs without printing its address.
    NoAddress,
    /// `close` failed: ignored. strace skipped the real close, so those clients see
    /// no EOF (the descriptor leaks under strace; on Linux close always frees it).
    CloseIgnored,
    /// `SO_LINGER` failed while refusing: that connection gets a FIN, not an RST.
    LingerFin,
    /// A write to stdout failed: ignored; what it had to say is lost (the counters),
    /// the server serves and exits 0.
    OutputLost,
    /// std's debug-build I/O-safety check (`fcntl(F_GETFD)` before `close`) saw
    /// EBADF: the process aborts (SIGABRT).
    Abort,
    /// This server never makes the call: nothing is injected, nothing lost, no
    /// counter moves. When it starts making it, the row fails and says so.
    NeverCalled,
    /// The relay's connection to its upstream fails (its `socket`, `connect`,
    /// `SO_ERROR` or registration): that client is closed at its hello, the
    /// others and the next client are relayed. `connect_failed` counts it once the
    /// connect was under way; when `socket` or `connect` itself fails, the
    /// protocol hears it at once and only closes its client.
    NoUpstream,
}

/// One more fault in the same run (a row may inject into two system calls).
#[derive(Clone, Copy, Debug)]
struct Also {
    sys: &'static str,
    errno: &'static str,
    when: &'static str,
    /// Every injected line of this system call must contain this.
    matching: Option<&'static str>,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    sys: &'static str,
    errno: &'static str,
    when: &'static str,
    expect: Expect,
    matching: Option<&'static str>,
    also: Option<Also>,
    /// strace `-P PATH`: inject only into calls on that path.
    path: Option<&'static str>,
    /// Extra server options.
    args: &'static [&'static str],
}

const fn row(sys: &'static str, errno: &'static str, when: &'static str, expect: Expect) -> Row {
    Row {
        sys,
        errno,
        when,
        expect,
        matching: None,
        also: None,
        path: None,
        args: &[],
    }
}

impl Row {
    const fn matching(mut self, m: &'static str) -> Row {
        self.matching = Some(m);
        self
    }
    const fn also(mut self, also: Also) -> Row {
        self.also = Some(also);
        self
    }
    const fn path(mut self, p: &'static str) -> Row {
        self.path = Some(p);
        self
    }
    const fn args(mut self, a: &'static [&'static str]) -> Row {
        self.args = a;
        self
    }
}

/// A row's `when` re-tuned for a server: (server, system call, only for this errno,
/// echo's `when`, this server's).
type Plan = (
    Target,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
);

/// The rows' `when`, re-tuned for chat's and kv's workloads (the relay's are
/// `RELAY_PLANS`). A row not listed keeps echo's; the first plan that fits is taken.
const PLANS: &[Plan] = &[
    // Chat's hellos are sendto 1-10 (client k's to the k clients before it). The
    // exchange opens with a round, one client at a time, in which each says a
    // line alone (sendto 11-30: each client's to the four others) and then two
    // lines in one write (sendmsg 1-20). The closing faults go to two receivers
    // in that round: sendto 12 and 17 (client 0's line to its 2nd receiver,
    // client 1's to its 3rd), sendmsg 4 and 8 (echo's plan). Concurrent sends
    // after it are a copy or a shared chunk alone (sendto) or several (sendmsg)
    // as the timing has it: no plan could count on them.
    (Target::Chat, "sendto", None, "4..8+4", "12..17+5"),
    // chat and kv set TCP_NODELAY on each accepted connection (calls 2 and 3 for
    // clients 0 and 1): client 2's SO_LINGER is call 4.
    (Target::Chat, "setsockopt", None, "2", "4"),
    (Target::Kv, "setsockopt", None, "2", "4"),
];

// ---- the tests ----------------------------------------------------------------------

const LIMIT: Duration = Duration::from_secs(170);

/// One run: a row, against one server, in one mode.
#[derive(Clone, Copy, Debug)]
struct Case {
    row: Row,
    mode: Mode,
    target: Target,
    workers: Workers,
}

/// Every row in every mode, against each of `targets`.
fn every(rows: &[Row], targets: &[Target]) -> Vec<Case> {
    cases(rows, targets, |_| Mode::ALL.to_vec())
}

/// The rows shared out over the modes (row `i` in mode `i % 4`), against each of
/// `targets`: every row once per server, every mode with some rows.
fn spread(rows: &[Row], targets: &[Target]) -> Vec<Case> {
    cases(rows, targets, |i| vec![Mode::ALL[i % Mode::ALL.len()]])
}

/// Row `i` of `rows` in each of `modes(i)`, against each of `targets`.
fn cases(rows: &[Row], targets: &[Target], modes: fn(usize) -> Vec<Mode>) -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, &row) in rows.iter().enumerate() {
        for mode in modes(i) {
            for &target in targets {
                cases.push(Case {
                    row,
                    mode,
                    target,
                    workers: Workers::One,
                });
            }
        }
    }
    cases
}
