//! Safe `select(2)`, `poll(2)`, `SO_LINGER` and UNP's line I/O, with the select-based
//! TCP echo server of W. Richard Stevens' *Unix Network Programming* (UNP) ported
//! faithfully and its RST-before-accept race (UNP 16.6) fixed.
//!
//! Three layers, each public and usable alone:
//!
//! 1. **Primitives**, one module per UNP function or macro:
//!
//! | module | UNP | |
//! |---|---|---|
//! | [`select`](mod@select) | `Select`, `FD_SET`, `FD_ISSET`, `FD_CLR`, `FD_ZERO` | bounds-checked [`FdSet`], growable [`LargeFdSet`], [`select()`](fn@select), `pselect` |
//! | [`poll`](mod@poll) | `Poll` | [`PollFd`], [`PollFlags`], [`poll()`](fn@poll) |
//! | [`linger`](mod@linger) | `setsockopt(SO_LINGER)` | [`set_linger`], [`linger()`](fn@linger), [`abort`] (close with RST) |
//! | [`readline`](mod@readline) | `readline`, `readlinebuf` | [`LineReader`]: one buffer per connection, visible to the select loop |
//! | [`readn`](mod@readn) | `readn` | [`readn()`](fn@readn) |
//! | [`writen`](mod@writen) | `writen` | [`writen()`](fn@writen), [`try_writen`]: no `SIGPIPE` death |
//! | [`accept`](mod@accept) | `Accept` | [`accept()`](fn@accept) that sorts its errors (UNP 16.6), on TCP or Unix-domain listeners, [`FdReserve`] |
//!
//! 2. **Keyed readiness**, [`sources`]: register descriptors under keys of your
//!    own, wait with select, large select, poll, epoll or kqueue, iterate the
//!    ready keys; a [`Waker`](sources::Waker) wakes the wait from another thread
//!    or a signal handler.
//! 3. **The hardened server loop**, [`server`]: UNP's `tcpservselect01` with the
//!    16.6 fix, sorted `accept` errors, the `EMFILE` reserve, fair turns,
//!    back-pressure and time-outs, generic over a [`Protocol`](server::Protocol)
//!    you write. [`echo`](mod@echo) is the book's echo server on it
//!    (`tcpservselect01`, `tcpservpoll01`): [`EchoServer`].
//!
//! # Waiting on a few descriptors
//! A pipe, a Unix socket and a TCP listener in one wait, each under a key of the
//! caller's type, so a ready descriptor needs no map back to its object:
//!
//! ```
//! use std::io::Write;
//! use std::net::{TcpListener, TcpStream};
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use unp_select::sources::{Backend, Events, Interest, Sources};
//!
//! #[derive(Clone, Copy, Debug, PartialEq)]
//! enum Key { Control, Listener }
//!
//! let (mut control_tx, control) = UnixStream::pair()?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut sources = Sources::new(Backend::Select);
//! sources.register(Key::Control, &control, Interest::READ)?;
//! sources.register(Key::Listener, &listener, Interest::READ)?;
//!
//! control_tx.write_all(b"reload\n")?;
//! let _client = TcpStream::connect(listener.local_addr()?)?;
//! let mut events = Events::new();
//! let mut seen = Vec::new();
//! while seen.len() < 2 {
//!     sources.wait(&mut events, Some(Duration::from_secs(5)))?;
//!     for (key, readiness) in &events {
//!         assert!(readiness.is_readable());
//!         if !seen.contains(key) {
//!             seen.push(*key);
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # A complete server
//! The loop of UNP's select server, hardened, with a protocol of five lines: each
//! line comes back reversed. Connections are nonblocking, a client that sends half
//! a line freezes nobody, a client at end of file is removed once answered, and the
//! listener is nonblocking (UNP 16.6).
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use unp_select::server::{Config, Context, Frame, Protocol, Server};
//!
//! struct Reverse;
//! impl Protocol for Reverse {
//!     type Conn = ();
//!     fn connect(&mut self, ctx: &mut Context<'_>) {
//!         ctx.set_frame(Frame::Line);
//!     }
//!     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
//!         let text = line.strip_suffix(b"\n").unwrap_or(line);
//!         let mut reply: Vec<u8> = text.iter().rev().copied().collect();
//!         reply.push(b'\n');
//!         let _ = ctx.send(&reply);
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:0", Reverse, Config::default())?;
//! let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
//! let thread = std::thread::spawn(move || server.run());
//!
//! let mut stalled = TcpStream::connect(addr)?;
//! stalled.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//! stalled.write_all(b"hel")?; // half a line: the others are served anyway
//! let mut conn = TcpStream::connect(addr)?;
//! conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//! conn.write_all(b"select\n")?;
//! let mut reply = String::new();
//! BufReader::new(&conn).read_line(&mut reply)?;
//! assert_eq!(reply, "tceles\n");
//!
//! stop.shutdown();
//! assert_eq!(thread.join().unwrap()?.accepted, 2);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Descriptors: borrowed or owned
//! One rule across the crate: a function that only uses a descriptor borrows it,
//! `&(impl AsFd + ?Sized)`, so `&stream`, `&owned_fd`, `&borrowed_fd` and a
//! `&dyn AsFd` all work and the descriptor stays open after the call:
//! [`FdSet::insert_fd`] (and `remove_fd`, `contains_fd`, the same on
//! [`LargeFdSet`]), [`PollFd::from_fd`], [`set_linger`], [`linger()`](fn@linger),
//! [`writen()`](fn@writen), [`try_writen`], [`FdReserve::shed`], and
//! [`Sources`](sources::Sources)' `register`, `set_interest`, `unregister` and `key`.
//! [`accept()`](fn@accept) borrows too, a [`TcpListener`](std::net::TcpListener) or
//! a [`UnixListener`](std::os::unix::net::UnixListener), whose type decides the
//! stream it returns. Only a function whose job is to close takes ownership:
//! [`abort`], `impl Into<OwnedFd>`. So an owned descriptor passed by value to a
//! borrowing function, which would close it at the end of the call, does not
//! compile:
//!
//! ```compile_fail,E0308
//! use std::os::unix::net::UnixStream;
//! use unp_select::{writen, FdSet};
//!
//! let (a, _b) = UnixStream::pair()?;
//! let mut set = FdSet::new();
//! set.insert_fd(&a)?; // borrowed: fine
//! writen(a, b"x")?; // error[E0308]: expected `&_`, found `UnixStream`
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Platform-specific behavior
//! Linux is tested; macOS and FreeBSD are checked to compile. Every platform
//! difference lives in one private module; the items that differ say so in their
//! docs. `docs/rst-accept-race.md` in the repository says what Linux does in the race
//! (measured) and how Berkeley kernels differ.
#![deny(missing_docs)]
// Unsafe code lives in `sys` alone, and every unsafe block says why it is sound.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod accept;
pub mod echo;
pub mod linger;
pub mod poll;
pub mod readline;
pub mod readn;
pub mod select;
pub mod server;
pub mod sources;
#[allow(unsafe_code)]
mod sys;
mod time;
pub mod writen;

pub use accept::{accept, accept_nonblocking, Accept, FdReserve, StreamListener};
pub use echo::{EchoServer, ShutdownHandle};
pub use linger::{abort, linger, set_linger};
pub use poll::{poll, poll_restarting, PollFd, PollFlags};
pub use readline::LineReader;
pub use readn::{readn, PartialRead};
pub use select::{
    pselect, select, select_large, select_large_restarting, select_restarting, FdSet, FdSetLike,
    LargeFdSet, FD_SETSIZE,
};
pub use writen::{try_writen, writen};

/// The `nix` crate this one is built on: [`pselect`] takes its `SigSet`, so a caller
/// can name the same version as `unp_select::nix::sys::signal::SigSet`.
pub use nix;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
