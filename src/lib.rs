//! Safe `select(2)`, `poll(2)`, `SO_LINGER` and UNP's line I/O, with the select-based
//! TCP echo server of W. Richard Stevens' *Unix Network Programming* (UNP) ported
//! faithfully and its RST-before-accept race (UNP 16.6) fixed.
//!
//! | module | UNP | |
//! |---|---|---|
//! | [`select`](mod@select) | `Select`, `FD_SET`, `FD_ISSET`, `FD_CLR`, `FD_ZERO` | bounds-checked [`FdSet`], growable [`LargeFdSet`], [`select()`](fn@select), `pselect` |
//! | [`poll`](mod@poll) | `Poll` | [`PollFd`], [`PollFlags`], [`poll()`](fn@poll) |
//! | [`linger`](mod@linger) | `setsockopt(SO_LINGER)` | [`set_linger`], [`linger()`](fn@linger), [`abort`] (close with RST) |
//! | [`readline`](mod@readline) | `readline`, `readlinebuf` | [`LineReader`]: one buffer per connection, visible to the select loop |
//! | [`readn`](mod@readn) | `readn` | [`readn()`](fn@readn) |
//! | [`writen`](mod@writen) | `writen` | [`writen()`](fn@writen), [`try_writen`]: no `SIGPIPE` death |
//! | [`accept`](mod@accept) | `Accept` | [`accept()`](fn@accept) that sorts its errors (UNP 16.6), [`FdReserve`] |
//! | [`echo`](mod@echo) | `tcpservselect01`, `tcpservpoll01` | [`EchoServer`] |
//!
//! # A complete select loop
//!
//! UNP's server loop in miniature: one listener, its clients, one `select`. The
//! listener is nonblocking and [`accept()`](fn@accept) sorts its errors, so a
//! connection that vanishes between `select` and `accept` (UNP 16.6) sends the loop
//! back to `select` instead of hanging it. The client lives in a thread so the
//! example runs on its own.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::os::fd::AsRawFd;
//! use unp_select::{accept, select, writen, Accept, FdSet, LineReader};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?; // UNP 16.6
//! let addr = listener.local_addr()?;
//! let client = std::thread::spawn(move || -> std::io::Result<String> {
//!     let mut conn = TcpStream::connect(addr)?;
//!     conn.write_all(b"hello\n")?;
//!     let mut echo = String::new();
//!     BufReader::new(conn).read_line(&mut echo)?;
//!     Ok(echo)
//! });
//!
//! let mut allset = FdSet::new();
//! allset.insert(listener.as_raw_fd())?;
//! let mut clients: Vec<LineReader<TcpStream>> = Vec::new();
//! let mut line = Vec::new();
//! let mut echoed = 0;
//! while echoed < 1 {
//!     let mut rset = allset.clone();
//!     match select(Some(&mut rset), None, None, None) {
//!         Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
//!         other => other?,
//!     };
//!     if rset.contains(listener.as_raw_fd()) {
//!         match accept(&listener)? {
//!             Accept::Connection(stream, _) => {
//!                 allset.insert(stream.as_raw_fd())?; // Err if >= FD_SETSIZE
//!                 clients.push(LineReader::new(stream));
//!             }
//!             Accept::NotNow(_) => {}                // gone before accept: not an error
//!             Accept::OutOfResources(e) => return Err(e),
//!             _ => {} // #[non_exhaustive]: an outcome added later; back to select
//!         }
//!     }
//!     for reader in &mut clients {
//!         if rset.contains(reader.get_ref().as_raw_fd()) {
//!             line.clear();
//!             if reader.readline(&mut line)? > 0 {
//!                 writen(reader.get_ref(), &line)?;
//!                 echoed += 1;
//!             }
//!         }
//!     }
//! }
//! assert_eq!(client.join().unwrap()?, "hello\n");
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

pub use accept::{accept, accept_nonblocking, Accept, FdReserve};
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
