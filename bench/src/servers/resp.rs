//! A small RESP (Redis protocol) store on the crate's `Server<P>`, for the RESP
//! rows of `echo-bench resp`: `SET`, `GET`, `PING`, and `CONFIG GET` (answered
//! empty, for `redis-benchmark`'s start), in RESP arrays (`*N` then `N` bulk
//! strings, as clients send them) or inline (`PING\r\n`).
//!
//! It is served with `Config::default()` and reads everything as
//! [`Frame::Line`]: a `SET key value` is 7 lines (`*3`, `$3`, `SET`, `$len`, the
//! key, `$len`, the value), which makes it a test of the loop's per-message
//! costs and per-turn fairness bound. A bulk string that holds a `\n` of its own
//! comes in several lines; they are joined until the length its `$len` gave.
//!
//! `echo-bench serve resp ADDR` runs it (prints `ready ADDR PID`) until killed;
//! [`start`] starts it or `redis-server` for a run.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use unp_select::server::{Config, Context, Frame, Protocol, Server as Loop};

use super::kv::{free_port, spawn_listening};
use super::{spawn_ready, Server};
use crate::invalid;

/// The longest bulk string accepted (Redis takes 512 MB; this is a benchmark).
const MAX_BULK: usize = 1 << 20;

/// The most arguments of one command.
const MAX_ARGS: usize = 1024;

/// Where a connection is in the command it reads.
#[derive(Default)]
pub struct Reading {
    /// Bulk strings still to come of a `*N` command.
    left: usize,
    /// The length (with its `\r\n`) of the bulk string being read, once its
    /// `$len` line came.
    bulk: Option<usize>,
    args: Vec<Vec<u8>>,
}

/// The store and one reply buffer.
#[derive(Default)]
pub struct Resp {
    store: HashMap<Vec<u8>, Vec<u8>>,
    out: Vec<u8>,
}

/// What a line asked for.
enum Step {
    /// More lines to come.
    More,
    /// A whole command.
    Run,
    /// Malformed: answer the error and close.
    Error(&'static str),
}

/// `line` without its `\r\n` (or `\n`).
fn trim(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The number after the first byte of `line` (`*3`, `$12`).
fn number(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(trim(line).get(1..)?).ok()?.parse().ok()
}

impl Reading {
    fn take(&mut self, line: &[u8]) -> Step {
        if let Some(need) = self.bulk {
            let Some(arg) = self.args.last_mut() else {
                return Step::Error("-ERR Protocol error: no argument\r\n");
            };
            arg.extend_from_slice(line);
            if arg.len() < need {
                return Step::More; // the value held a '\n': the rest follows
            }
            if arg.len() > need || !arg.ends_with(b"\r\n") {
                return Step::Error("-ERR Protocol error: bad bulk length\r\n");
            }
            arg.truncate(need - 2);
            self.bulk = None;
            self.left -= 1;
            return if self.left == 0 {
                Step::Run
            } else {
                Step::More
            };
        }
        if !line.ends_with(b"\n") {
            return Step::Error("-ERR Protocol error: too big request\r\n");
        }
        if self.left > 0 {
            return match (line.first(), number(line)) {
                (Some(b'$'), Some(n)) if (0..=MAX_BULK as i64).contains(&n) => {
                    let n = n as usize + 2;
                    self.args.push(Vec::with_capacity(n));
                    self.bulk = Some(n);
                    Step::More
                }
                _ => Step::Error("-ERR Protocol error: expected '$'\r\n"),
            };
        }
        self.args.clear();
        if line.first() == Some(&b'*') {
            return match number(line) {
                Some(n) if n <= 0 => Step::More,
                Some(n) if n <= MAX_ARGS as i64 => {
                    self.left = n as usize;
                    Step::More
                }
                _ => Step::Error("-ERR Protocol error: invalid multibulk length\r\n"),
            };
        }
        // Inline: words separated by spaces.
        self.args = trim(line)
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if self.args.is_empty() {
            Step::More
        } else {
            Step::Run
        }
    }
}

fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

impl Resp {
    /// Runs one command, its reply appended to `self.out`.
    fn command(&mut self, args: &mut Vec<Vec<u8>>) {
        let out = &mut self.out;
        let name = args[0].to_ascii_uppercase();
        match (name.as_slice(), args.len()) {
            (b"SET", 3) => {
                let value = args.pop().unwrap_or_default();
                let key = args.pop().unwrap_or_default();
                self.store.insert(key, value);
                out.extend_from_slice(b"+OK\r\n");
            }
            (b"GET", 2) => match self.store.get(&args[1]) {
                Some(v) => bulk(out, v),
                None => out.extend_from_slice(b"$-1\r\n"),
            },
            (b"PING", 1) => out.extend_from_slice(b"+PONG\r\n"),
            (b"CONFIG", 3) if args[1].eq_ignore_ascii_case(b"GET") => {
                out.extend_from_slice(b"*2\r\n");
                bulk(out, &args[2]);
                bulk(out, b"");
            }
            (b"SET" | b"GET" | b"PING" | b"CONFIG", _) => {
                out.extend_from_slice(b"-ERR wrong number of arguments\r\n");
            }
            _ => out.extend_from_slice(b"-ERR unknown command\r\n"),
        }
        args.clear();
    }
}

impl Protocol for Resp {
    type Conn = Reading;

    fn connect(&mut self, ctx: &mut Context<'_>) -> Reading {
        ctx.set_frame(Frame::Line);
        Reading::default()
    }

    fn receive(&mut self, reading: &mut Reading, line: &[u8], ctx: &mut Context<'_>) {
        self.out.clear();
        match reading.take(line) {
            Step::More => return,
            Step::Run => self.command(&mut reading.args),
            Step::Error(e) => {
                // Closing anyway: a refused error reply changes nothing.
                let _ = ctx.send(e.as_bytes());
                ctx.close();
                return;
            }
        }
        // A client that lets more than max_output of replies pile up unread is
        // closed, as Redis closes one past its client-output-buffer-limit.
        if ctx.send(&self.out).is_err() {
            ctx.close();
        }
    }
}

/// `echo-bench serve resp ADDR`: the RESP server on select(2) with
/// `Config::default()`, until killed.
pub fn serve(args: &[String]) -> io::Result<()> {
    let [addr] = args else {
        return Err(invalid("serve resp ADDR"));
    };
    let server = Loop::bind(addr.as_str(), Resp::default(), Config::default())?;
    println!("ready {} {}", server.local_addr()?, std::process::id());
    let stats = server.run()?;
    eprintln!("{stats:?}");
    Ok(())
}

/// The servers of the RESP rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RespKind {
    /// This module's server (`Server<Resp>`, select, `Config::default()`).
    Ours,
    /// `redis-server` on 127.0.0.1 with persistence off.
    Redis,
}

impl RespKind {
    pub const ALL: [RespKind; 2] = [RespKind::Ours, RespKind::Redis];

    pub fn name(self) -> &'static str {
        match self {
            RespKind::Ours => "resp",
            RespKind::Redis => "redis",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RespKind::Ours => "ours (Server<Resp>, select, Config::default())",
            RespKind::Redis => "redis-server",
        }
    }

    pub fn from_name(s: &str) -> Option<RespKind> {
        RespKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Starts `kind` on 127.0.0.1, pinned to `cpu`, and returns once it accepts.
/// Ours is this executable's `serve resp`; `redis-server` runs without
/// persistence (`--save '' --appendonly no`), its files in `dir`.
pub fn start(kind: RespKind, cpu: Option<usize>, dir: &Path) -> io::Result<Server> {
    match kind {
        RespKind::Ours => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["serve", "resp", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            spawn_ready(cmd, "the RESP server", "ready ", cpu)
        }
        RespKind::Redis => {
            let port = free_port()?;
            let mut cmd = Command::new("redis-server");
            cmd.args(["--bind", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--protected-mode", "yes", "--logfile", ""])
                .arg("--dir")
                .arg(dir);
            spawn_listening(cmd, "redis-server", port, cpu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Reading, text: &[u8]) -> Vec<bool> {
        let mut runs = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            match r.take(line) {
                Step::More => runs.push(false),
                Step::Run => runs.push(true),
                Step::Error(e) => panic!("{e}"),
            }
        }
        runs
    }

    #[test]
    fn a_set_is_seven_lines_and_a_value_may_hold_newlines() {
        let mut r = Reading::default();
        let runs = feed(&mut r, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\nb\r\n");
        assert_eq!(
            runs,
            [false, false, false, false, false, false, false, true]
        );
        assert_eq!(r.args, [b"SET".to_vec(), b"k".to_vec(), b"a\nb".to_vec()]);
        let mut p = Resp::default();
        p.command(&mut r.args);
        assert_eq!(p.out, b"+OK\r\n");
        p.out.clear();
        assert_eq!(feed(&mut r, b"GET k\r\n"), [true]);
        p.command(&mut r.args);
        assert_eq!(p.out, b"$3\r\na\nb\r\n");
    }

    #[test]
    fn a_wrong_length_is_an_error() {
        let mut r = Reading::default();
        feed(&mut r, b"*2\r\n$3\r\nGET\r\n$1\r\n");
        assert!(matches!(r.take(b"kk\r\n"), Step::Error(_)));
    }
}
