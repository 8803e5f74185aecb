//! What a user of the loop writes: a [`Protocol`]. What it gets to answer with: a
//! [`Context`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::conn::{Conn, Ending, Stage};
use super::dial::ConnectError;
use super::hub::Post;
use super::output::SHARE_MIN;
use super::table::Table;
use super::timers::Timer;
use crate::sources::Interest;

/// How the loop cuts a connection's input into messages for
/// [`Protocol::receive`]. A protocol may change it between messages
/// ([`Context::set_frame`]): memcached's `set` is a line, then a data block of a
/// length the line gave.
///
/// # Examples
/// ```
/// use unp_select::server::Frame;
/// assert_eq!(Frame::default(), Frame::Bytes);
/// let body = Frame::Exact(5 + 2); // five bytes and "\r\n"
/// assert_ne!(body, Frame::Line);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Frame {
    /// Whatever one `read` returned, at most [`Config::max_line`](super::Config::max_line)
    /// bytes: UNP's `tcpservselect01`.
    #[default]
    Bytes,
    /// One line, with its `\n`. A line longer than
    /// [`Config::max_line`](super::Config::max_line) comes in pieces of that many
    /// bytes without a `\n` (as UNP's `readline` returns them), and a last line
    /// without a `\n` comes when the peer closes or half-closes.
    Line,
    /// Exactly this many bytes. The connection buffers up to this many (the loop
    /// reads the whole length into one buffer, so bound `n` by what one connection
    /// may hold; a protocol that accepts large messages should count them against
    /// a budget of its own). `Exact(0)` delivers empty messages until the frame
    /// changes (each counts as one byte of the turn's quota). At end of file a
    /// shorter rest is dropped.
    Exact(usize),
}

/// A connection's name, for [`Context::send_to`]: its worker, its slot in that
/// worker's `client[]`, and a generation, so an id whose connection closed never
/// reaches a later connection that got the same slot.
///
/// # Examples
/// Each client is told its worker and its slot; a slot freed by a client that
/// left is given to the next one, under a new id.
/// ```
/// use std::io::{BufRead, BufReader, Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use unp_select::server::{Config, Context, Frame, Protocol, Server};
///
/// struct Where;
/// impl Protocol for Where {
///     type Conn = ();
///     fn connect(&mut self, ctx: &mut Context<'_>) {
///         ctx.set_frame(Frame::Line);
///         let id = ctx.id();
///         let _ = ctx.send(format!("{} {} {id}\n", id.worker(), id.index()).as_bytes());
///     }
///     fn receive(&mut self, _: &mut (), _: &[u8], ctx: &mut Context<'_>) {
///         ctx.close(); // any line: goodbye
///     }
/// }
///
/// let server = Server::bind("127.0.0.1:0", Where, Config::default())?;
/// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
/// let thread = std::thread::spawn(move || server.run_poll());
/// let client = || -> std::io::Result<(TcpStream, Vec<String>)> {
///     let conn = TcpStream::connect(addr)?;
///     conn.set_read_timeout(Some(Duration::from_secs(5)))?;
///     let mut line = String::new();
///     BufReader::new(&conn).read_line(&mut line)?;
///     Ok((conn, line.split_whitespace().map(String::from).collect()))
/// };
///
/// let (mut a, a_id) = client()?;
/// let (_b, b_id) = client()?;
/// assert_eq!(a_id[..2], ["0", "0"]); // worker 0, slot 0
/// assert_eq!(b_id[..2], ["0", "1"]);
/// a.write_all(b"bye\n")?;
/// assert_eq!(a.read(&mut [0; 1])?, 0); // a is gone: slot 0 is free
/// let (_c, c_id) = client()?;
/// assert_eq!(c_id[..2], ["0", "0"]); // a's slot,
/// assert_ne!(c_id[2], a_id[2]); // not a's id
///
/// stop.shutdown();
/// assert_eq!(thread.join().unwrap()?.accepted, 3);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// It is `Copy + Eq + Hash`, a key for a protocol's maps:
/// ```
/// use std::collections::HashSet;
/// use unp_select::server::ConnId;
/// fn remember(ids: &mut HashSet<ConnId>, id: ConnId) -> bool {
///     ids.insert(id)
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) worker: u16,
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl ConnId {
    /// The connection's index in its worker's `client[]` (reused after it closes).
    ///
    /// # Examples
    /// See [`ConnId`]'s example: a slot reused, under a new id.
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The worker that serves the connection (0 with one worker).
    ///
    /// # Examples
    /// See [`ConnId`]'s example.
    pub fn worker(self) -> usize {
        usize::from(self.worker)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({self})")
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}#{}", self.worker, self.index, self.generation)
    }
}

/// Why a connection ended, as [`Protocol::disconnect`] hears it.
///
/// # Examples
/// ```
/// use unp_select::server::CloseReason;
/// fn worth_logging(reason: CloseReason) -> bool {
///     !matches!(reason, CloseReason::Eof | CloseReason::Protocol)
/// }
/// assert!(worth_logging(CloseReason::IdleTimeout));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed (end of file) and got all its output.
    Eof,
    /// A read or write failed (`ECONNRESET`, `EPIPE`, …): the connection is gone.
    Reset,
    /// Output stayed unsent for [`Config::write_timeout`](super::Config::write_timeout).
    WriteTimeout,
    /// No whole message and no output progress for
    /// [`Config::idle_timeout`](super::Config::idle_timeout).
    IdleTimeout,
    /// Output from other connections ([`Context::send_to`], [`Context::broadcast`])
    /// went past [`Config::max_output`](super::Config::max_output): a reader too slow
    /// for what it is sent.
    MaxOutput,
    /// The server stopped ([`ShutdownHandle`](super::ShutdownHandle)).
    Shutdown,
    /// The protocol panicked while handling the connection.
    Panic,
    /// The protocol closed it ([`Context::close`], [`Context::close_other`]), or
    /// the connection it was paired with ([`Context::pair`]) went.
    Protocol,
}

/// Why [`Context::send`] or [`Context::send_shared`] queued nothing. The connection
/// stays as it was: nothing is cut.
///
/// # Examples
/// ```
/// use unp_select::server::SendError;
/// assert_eq!(
///     SendError::MaxOutput.to_string(),
///     "the output would pass the connection's max_output"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or half-closed ([`Context::close`],
    /// [`Context::shutdown_write`]), or gone: it takes no more output.
    Closing,
    /// The data would take the connection's unsent output past
    /// [`Config::max_output`](super::Config::max_output). Send less at a time: a
    /// reply that large is streamed ([`Context::wait_drained`]).
    MaxOutput,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closing => "the connection takes no more output",
            SendError::MaxOutput => "the output would pass the connection's max_output",
        })
    }
}

impl std::error::Error for SendError {}

/// A protocol served by the loop: state per connection, and what to do with each
/// message. Everything else (readiness, `accept` and its errors, buffering, fair
/// turns, back-pressure, time-outs, shutdown) is the loop's.
///
/// The methods run on the loop's thread and must not block: a protocol that
/// sleeps or does blocking I/O stalls every connection. A method that panics
/// loses its connection only ([`Stats::closed_panic`](super::Stats::closed_panic));
/// the server goes on (with `panic = "abort"` the process ends instead).
///
/// # Examples
/// UNP's echo, in lines:
/// ```
/// use unp_select::server::{Context, Frame, Protocol};
///
/// struct Echo;
/// impl Protocol for Echo {
///     type Conn = ();
///     fn connect(&mut self, ctx: &mut Context<'_>) {
///         ctx.set_frame(Frame::Line);
///     }
///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
///         let _ = ctx.send(line); // refused only past max_output
///     }
/// }
/// ```
/// A complete server is in the [module documentation](super); a streamed reply
/// in [`drained`](Self::drained)'s.
pub trait Protocol {
    /// What the protocol keeps per connection.
    type Conn;

    /// A connection was accepted. Set its first [`Frame`] here (the default is
    /// [`Frame::Bytes`]), and send a greeting if the protocol has one.
    fn connect(&mut self, ctx: &mut Context<'_>) -> Self::Conn;

    /// One message arrived, cut as the connection's [`Frame`] says.
    fn receive(&mut self, conn: &mut Self::Conn, msg: &[u8], ctx: &mut Context<'_>);

    /// The connection's unsent output fell to the low-water mark
    /// ([`Config::max_unsent`](super::Config::max_unsent) / 2) after
    /// [`Context::wait_drained`]: send the next piece of a streamed reply, and call
    /// `wait_drained` again if more is to come. Until the stream ends, no further
    /// message of this connection is delivered (its input waits in its buffer),
    /// so a reply of any size costs at most `max_unsent` plus one piece of memory.
    /// The default does nothing (the stream ends).
    ///
    /// # Examples
    /// `count N` is answered with the numbers 0 to N-1, a line each, produced
    /// while the client reads them, at most 16 KiB ahead of it:
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{Shutdown, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Count;
    /// impl Protocol for Count {
    ///     type Conn = std::ops::Range<u64>; // what is left to send
    ///     fn connect(&mut self, ctx: &mut Context<'_>) -> Self::Conn {
    ///         ctx.set_frame(Frame::Line);
    ///         0..0
    ///     }
    ///     fn receive(&mut self, left: &mut Self::Conn, line: &[u8], ctx: &mut Context<'_>) {
    ///         let n = std::str::from_utf8(line).ok().and_then(|l| {
    ///             l.trim().strip_prefix("count ")?.parse().ok()
    ///         });
    ///         *left = 0..n.unwrap_or(0);
    ///         self.drained(left, ctx);
    ///     }
    ///     fn drained(&mut self, left: &mut Self::Conn, ctx: &mut Context<'_>) {
    ///         while ctx.unsent() < 16 * 1024 {
    ///             let Some(i) = left.next() else {
    ///                 return; // all sent: the stream ends
    ///             };
    ///             let _ = ctx.send(format!("{i}\n").as_bytes());
    ///         }
    ///         ctx.wait_drained(); // called back when the output has gone out
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Count, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"count 20000\n")?;
    /// conn.shutdown(Shutdown::Write)?;
    /// let mut numbers = String::new();
    /// conn.read_to_string(&mut numbers)?; // 108,890 bytes
    /// assert_eq!(numbers.lines().count(), 20000);
    /// assert_eq!(numbers.lines().last(), Some("19999"));
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.messages_sent, 20000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn drained(&mut self, conn: &mut Self::Conn, ctx: &mut Context<'_>) {
        let _ = (conn, ctx);
    }

    /// The timer set with [`Context::set_timer`] expired. The default does nothing.
    ///
    /// # Examples
    /// See [`Context::set_timer`]'s: a reminder rings back.
    fn timer(&mut self, conn: &mut Self::Conn, ctx: &mut Context<'_>) {
        let _ = (conn, ctx);
    }

    /// The peer sent end of file (or half-closed), and every message it sent was
    /// delivered. Then the connection closes once its output is sent, unless it is
    /// paired ([`Context::pair`]): a paired one stays until its own side is
    /// half-closed too ([`Context::shutdown_write`]) or its partner goes, so a
    /// relay can pass the half-close on ([`Context::shutdown_write_other`]). The
    /// default does nothing.
    ///
    /// # Examples
    /// `wc -l`: the count goes out when the client has sent everything.
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{Shutdown, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct CountLines;
    /// impl Protocol for CountLines {
    ///     type Conn = usize; // lines so far
    ///     fn connect(&mut self, ctx: &mut Context<'_>) -> usize {
    ///         ctx.set_frame(Frame::Line);
    ///         0
    ///     }
    ///     fn receive(&mut self, n: &mut usize, _: &[u8], _: &mut Context<'_>) {
    ///         *n += 1;
    ///     }
    ///     fn end_of_input(&mut self, n: &mut usize, ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(format!("{n}\n").as_bytes()); // then it closes
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", CountLines, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"one\ntwo\nthree\n")?;
    /// conn.shutdown(Shutdown::Write)?;
    /// let mut count = String::new();
    /// conn.read_to_string(&mut count)?;
    /// assert_eq!(count, "3\n");
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_eof, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn end_of_input(&mut self, conn: &mut Self::Conn, ctx: &mut Context<'_>) {
        let _ = (conn, ctx);
    }

    /// A connection opened with [`Context::connect`] was not established: refused,
    /// timed out ([`Config::connect_timeout`](super::Config::connect_timeout)),
    /// unreachable, reset, or still connecting when the server stopped (also an
    /// adopted one, [`Context::adopt`], that the loop could not watch). Its id is dead; the connection paired with it, if any,
    /// closes once its output is sent. The default does nothing.
    ///
    /// # Examples
    /// A client whose upstream refuses is closed with it; the protocol hears why.
    /// ```
    /// use std::io::Read;
    /// use std::net::{SocketAddr, TcpListener, TcpStream};
    /// use std::sync::mpsc::{channel, Sender};
    /// use std::time::Duration;
    /// use unp_select::server::{Config, ConnId, ConnectError, Context, Protocol, Server};
    ///
    /// struct Dial(SocketAddr, Sender<ConnectError>);
    /// impl Protocol for Dial {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         if ctx.is_outgoing() {
    ///             return;
    ///         }
    ///         match ctx.connect(self.0) {
    ///             Ok(upstream) => {
    ///                 ctx.pair(upstream);
    ///             }
    ///             Err(_) => ctx.close(), // failed at once
    ///         }
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    ///     fn connect_failed(&mut self, _: ConnId, error: ConnectError) {
    ///         let _ = self.1.send(error);
    ///     }
    /// }
    ///
    /// let nobody = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // closed again
    /// let (tx, failed) = channel();
    /// let server = Server::bind("127.0.0.1:0", Dial(nobody, tx), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// assert_eq!(conn.read(&mut [0; 1])?, 0); // closed
    /// let error = failed.recv_timeout(Duration::from_secs(5)).expect("connect_failed");
    /// assert!(matches!(error, ConnectError::Refused(_)), "{error:?}");
    /// assert_eq!(error.error().raw_os_error(), Some(libc::ECONNREFUSED));
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.connect_failed, stats.closed_protocol), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn connect_failed(&mut self, id: ConnId, error: ConnectError) {
        let _ = (id, error);
    }

    /// A descriptor watched with [`Context::watch`] is ready as `readiness` says;
    /// `ctx.id()` is the watch's id. Read it with [`Context::read_watched`]. The
    /// wait is level-triggered: a descriptor left readable is reported again at the
    /// next turn. The default does nothing.
    ///
    /// # Examples
    /// See [`Context::watch`]'s.
    fn ready(&mut self, readiness: crate::sources::Readiness, ctx: &mut Context<'_>) {
        let _ = (readiness, ctx);
    }

    /// The connection is gone, for `reason`. The default does nothing.
    ///
    /// # Examples
    /// See [`Context::shutdown_write`]'s: the reason goes to the test through a
    /// channel.
    fn disconnect(&mut self, conn: Self::Conn, id: ConnId, reason: CloseReason) {
        let _ = (conn, id, reason);
    }
}

/// What a protocol can do while it handles one connection's message: answer it,
/// write to other connections, choose the next frame, set a timer, close.
///
/// Output is queued and sent once per turn of the loop: everything a turn
/// produces for a connection leaves in one `send` (or one `sendmsg` of several
/// buffers), so pipelined requests are answered together whatever Nagle's
/// algorithm does. What the kernel does not take stays queued; after each message
/// the loop looks at it, and while more than
/// [`Config::max_unsent`](super::Config::max_unsent) bytes wait, the connection's
/// further messages wait in its buffer (back-pressure per message).
///
/// Sending part of the message just received costs no copy: the loop sends it
/// straight out of its read buffer (UNP's `buf[MAXLINE]`), as long as the parts
/// follow each other in the input. A buffer that many connections get, or that
/// lives on (a cache's item), is queued without a copy with
/// [`send_shared`](Self::send_shared); [`broadcast`](Self::broadcast) shares one
/// copy among its receivers.
///
/// # Examples
/// A relay: `@N text` goes to the connection that was told it is `N`, anything
/// else to everybody else; `quit` is answered, then the connection closes.
/// ```
/// use std::collections::HashMap;
/// use unp_select::server::{CloseReason, ConnId, Context, Frame, Protocol};
///
/// #[derive(Default)]
/// struct Relay {
///     by_number: HashMap<usize, ConnId>,
/// }
///
/// impl Protocol for Relay {
///     type Conn = usize; // the number this connection was given
///     fn connect(&mut self, ctx: &mut Context<'_>) -> usize {
///         ctx.set_frame(Frame::Line);
///         let n = ctx.id().index();
///         self.by_number.insert(n, ctx.id());
///         let _ = ctx.send(format!("you are @{n}\n").as_bytes());
///         n
///     }
///     fn receive(&mut self, _: &mut usize, line: &[u8], ctx: &mut Context<'_>) {
///         if line == b"quit\n" {
///             let _ = ctx.send(b"bye\n");
///             ctx.close(); // after "bye" is sent
///         } else if let Some((to, text)) = parse_to(line) {
///             let delivered = self.by_number.get(&to).is_some_and(|&id| ctx.send_to(id, text));
///             if !delivered {
///                 let _ = ctx.send(b"no such connection\n");
///             }
///         } else {
///             ctx.broadcast(line);
///         }
///     }
///     fn disconnect(&mut self, n: usize, _: ConnId, _: CloseReason) {
///         self.by_number.remove(&n);
///     }
/// }
///
/// /// `@N rest` as (N, rest).
/// fn parse_to(line: &[u8]) -> Option<(usize, &[u8])> {
///     let rest = line.strip_prefix(b"@")?;
///     let space = rest.iter().position(|&b| b == b' ')?;
///     let n = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
///     Some((n, &rest[space + 1..]))
/// }
/// # let _ = unp_select::server::Server::bind("127.0.0.1:0", Relay::default(), Default::default());
/// ```
pub struct Context<'a> {
    pub(super) id: ConnId,
    /// The worker's connections, timers and counters.
    pub(super) table: &'a mut Table,
    /// The input the messages come from: output inside it may be sent from there
    /// without a copy.
    pub(super) input: &'a [u8],
    /// The part of the input queued for sending, not copied yet; where its
    /// messages end (counted from its start) is in `table.ends`.
    pub(super) borrowed: Option<(usize, usize)>,
}

impl<'a> Context<'a> {
    pub(super) fn new(table: &'a mut Table, id: ConnId, input: &'a [u8]) -> Context<'a> {
        table.ends.clear();
        Context {
            id,
            table,
            input,
            borrowed: None,
        }
    }
}

impl Context<'_> {
    /// This connection's id.
    ///
    /// # Examples
    /// See [`send_to`](Self::send_to)'s: the operator is known by its id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// This connection's current frame.
    ///
    /// # Examples
    /// See [`set_frame`](Self::set_frame)'s: which message is which.
    pub fn frame(&self) -> Frame {
        self.this().map_or(Frame::Bytes, |c| c.frame)
    }

    /// Cuts the next messages of this connection as `frame` says.
    ///
    /// # Examples
    /// A line with a length, then a block of that many bytes (memcached's `set`
    /// in short).
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{Shutdown, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Blocks;
    /// impl Protocol for Blocks {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), msg: &[u8], ctx: &mut Context<'_>) {
    ///         if ctx.frame() == Frame::Line {
    ///             match std::str::from_utf8(msg).ok().and_then(|l| l.trim().parse().ok()) {
    ///                 Some(n) => ctx.set_frame(Frame::Exact(n)),
    ///                 None => ctx.close(),
    ///             }
    ///         } else {
    ///             let _ = ctx.send(format!("{} bytes: {:?}\n", msg.len(), msg).as_bytes());
    ///             ctx.set_frame(Frame::Line);
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Blocks, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"3\na\nb2\ncd")?;
    /// conn.shutdown(Shutdown::Write)?;
    /// let mut reply = String::new();
    /// conn.read_to_string(&mut reply)?;
    /// assert_eq!(reply, "3 bytes: [97, 10, 98]\n2 bytes: [99, 100]\n");
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.messages_received, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_frame(&mut self, frame: Frame) {
        if let Some(conn) = self.this_mut() {
            if conn.frame != frame {
                conn.frame = frame;
                conn.scanned = 0;
            }
        }
    }

    /// Queues `data` for this connection, with no copy when it is part of the
    /// message just received (see above).
    ///
    /// # Errors
    /// Nothing is queued, and the connection stays as it is, if it is closing or
    /// half-closed ([`SendError::Closing`]), or if `data` would take its unsent
    /// output past [`Config::max_output`](super::Config::max_output)
    /// ([`SendError::MaxOutput`], counted in
    /// [`Stats::sends_refused`](super::Stats::sends_refused)).
    ///
    /// # Examples
    /// See [`close`](Self::close)'s: lines are echoed from the input, with no copy.
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<(), SendError> {
        let queued = self.writable(data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        // Part of the input, right after what is queued from it already, and
        // nothing queued before: send it from the input (compared as addresses
        // only; nothing is read through them).
        let base = self.input.as_ptr() as usize;
        let addr = data.as_ptr() as usize;
        let inside = addr >= base && addr + data.len() <= base + self.input.len();
        if inside && queued == 0 {
            let (start, end) = (addr - base, addr - base + data.len());
            match self.borrowed {
                None => {
                    self.borrowed = Some((start, end));
                    self.table.ends.push(data.len());
                    return Ok(());
                }
                Some((s, e)) if e == start => {
                    self.borrowed = Some((s, end));
                    self.table.ends.push(end - s);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        self.copy_borrowed();
        let conn = self.this_mut().ok_or(SendError::Closing)?;
        conn.out.copy(data);
        conn.out.end_message();
        Ok(())
    }

    /// Queues `data` for this connection without copying it: the queue holds a
    /// reference until the kernel has taken the bytes. For a buffer that lives on
    /// or that several connections get (a cache item's value, a large
    /// announcement); a buffer under 64 bytes is copied (the reference would cost
    /// as much).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use unp_select::server::{Context, Frame, Protocol};
    ///
    /// /// Every line is answered with the same large banner, shared, not copied.
    /// struct Banner(Arc<[u8]>);
    /// impl Protocol for Banner {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send_shared(Arc::clone(&self.0));
    ///     }
    /// }
    /// let _ = Banner(vec![b'='; 4096].into());
    /// ```
    pub fn send_shared(&mut self, data: Arc<[u8]>) -> Result<(), SendError> {
        self.writable(data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.copy_borrowed();
        let conn = self.this_mut().ok_or(SendError::Closing)?;
        conn.out.share(data);
        conn.out.end_message();
        Ok(())
    }

    /// Whether this connection takes `len` more bytes of output; if so, how many
    /// bytes its queue holds (what was borrowed from the input not included).
    fn writable(&mut self, len: usize) -> Result<usize, SendError> {
        let unsent = self.unsent();
        let max_output = self.table.max_output;
        let Some(conn) = self.table.client[self.id.index()].as_ref() else {
            return Err(SendError::Closing);
        };
        if conn.ending != Ending::Open {
            return Err(SendError::Closing);
        }
        if unsent.saturating_add(len) > max_output {
            super::stats::bump(&mut self.table.stats.sends_refused);
            return Err(SendError::MaxOutput);
        }
        Ok(conn.unsent())
    }

    /// What was borrowed from the input goes into the connection's queue (copied),
    /// so later output follows it.
    fn copy_borrowed(&mut self) {
        let Some((s, e)) = self.borrowed.take() else {
            return;
        };
        let Some(conn) = self.table.client[self.id.index()].as_mut() else {
            return;
        };
        let base = conn.out.queued();
        conn.out.copy(&self.input[s..e]);
        for &end in &self.table.ends {
            conn.out.end_at(base + end as u64);
        }
        self.table.ends.clear();
    }

    /// Queues `data` for connection `id`; returns whether it is still there (an id
    /// of a connection that closed, or that is closing, gets nothing). `send_to`
    /// this connection's own id is [`send`](Self::send).
    ///
    /// A connection of another worker gets `data` through that worker's inbox, at
    /// its next turn; `true` then says only that it was posted. A receiver whose
    /// unsent output passes [`Config::max_output`](super::Config::max_output) is
    /// closed ([`CloseReason::MaxOutput`]): a reader too slow for what it is sent.
    ///
    /// # Examples
    /// The first client is the operator; every other client's lines go to it.
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, ConnId, Context, Frame, Protocol, Server};
    ///
    /// struct Operator(Option<ConnId>);
    /// impl Protocol for Operator {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///         if self.0.is_none() {
    ///             self.0 = Some(ctx.id());
    ///             let _ = ctx.send(b"operator\n");
    ///         }
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let delivered = self.0.is_some_and(|op| ctx.send_to(op, line));
    ///         if !delivered {
    ///             let _ = ctx.send(b"no operator\n"); // it closed
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Operator(None), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let op = TcpStream::connect(addr)?;
    /// op.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// let mut op = BufReader::new(op);
    /// let mut line = String::new();
    /// op.read_line(&mut line)?; // accepted first
    /// assert_eq!(line, "operator\n");
    /// TcpStream::connect(addr)?.write_all(b"help\n")?;
    /// line.clear();
    /// op.read_line(&mut line)?;
    /// assert_eq!(line, "help\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.messages_received, stats.messages_sent), (1, 2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_to(&mut self, id: ConnId, data: &[u8]) -> bool {
        if id == self.id {
            return self.send(data).is_ok();
        }
        if id.worker != self.id.worker {
            return self.post(id.worker(), || Post::To(id, data.into()));
        }
        let max_output = self.table.max_output;
        let Some(conn) = self.other_mut(id) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        conn.out.copy(data);
        end_message(conn, max_output);
        self.table.woken.push(id.index());
        true
    }

    /// Queues `data` for every other open connection, of every worker (not this
    /// one); returns how many of this worker's got it (the others' are posted to
    /// their workers). One copy of `data` is shared by all receivers (a short one
    /// is copied to each).
    ///
    /// "Open" means accepted: a connection still in the listen queue misses it, as
    /// with any select server. With several workers each worker delivers a post
    /// to the connections it has accepted when it reads the post (it reads posts
    /// before it accepts), so a client whose `connect` returned just before the
    /// broadcast may miss it if its worker had not accepted it yet.
    ///
    /// # Examples
    /// See [`watch`](Self::watch)'s: what a socket brings goes to every connection.
    pub fn broadcast(&mut self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        let shared: Option<Arc<[u8]>> =
            (data.len() >= SHARE_MIN || self.table.hub.is_some()).then(|| data.into());
        let sent = match &shared {
            Some(shared) => self.table.queue_all(Some(self.id.index()), shared),
            None => self.table.queue_all_copies(self.id.index(), data),
        };
        if let (Some(hub), Some(shared)) = (self.table.hub.clone(), shared) {
            for worker in (0..hub.workers()).filter(|&w| w != self.id.worker()) {
                if !hub.post(worker, Post::All(Arc::clone(&shared))) {
                    self.table.rewake.push(worker);
                }
            }
        }
        sent
    }

    /// Bytes queued for this connection and not yet taken by the kernel, the part
    /// of the input it is to send back included.
    ///
    /// # Examples
    /// See [`Protocol::drained`]'s: a streamed reply kept 16 KiB ahead of its
    /// reader.
    pub fn unsent(&self) -> usize {
        let borrowed = self.borrowed.map_or(0, |(s, e)| e - s);
        self.this().map_or(0, Conn::unsent) + borrowed
    }

    /// Whether the peer has sent end of file (or half-closed): no message follows
    /// the ones already read. A line frame's last message may then lack its `\n`.
    ///
    /// # Examples
    /// Lines come back; a last line without its `\n` gets one. (A piece of a line
    /// longer than [`Config::max_line`](super::Config::max_line) lacks it too, but
    /// the input goes on after it.)
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{Shutdown, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Lines;
    /// impl Protocol for Lines {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(line);
    ///         if ctx.input_closed() && !line.ends_with(b"\n") {
    ///             let _ = ctx.send(b"\n");
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Lines, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"one\ntwo")?;
    /// conn.shutdown(Shutdown::Write)?;
    /// let mut reply = String::new();
    /// conn.read_to_string(&mut reply)?;
    /// assert_eq!(reply, "one\ntwo\n");
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_eof, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn input_closed(&self) -> bool {
        self.this().is_some_and(|c| c.eof)
    }

    /// Streams the reply: no further message of this connection is delivered,
    /// and [`Protocol::drained`] is called once its unsent output has fallen to
    /// the low-water mark ([`Config::max_unsent`](super::Config::max_unsent) / 2).
    /// Call it again from `drained` for each further piece; a `drained` that does
    /// not call it ends the stream, and the waiting messages are delivered.
    ///
    /// # Examples
    /// See [`Protocol::drained`]'s: a reply of any length, in bounded memory.
    pub fn wait_drained(&mut self) {
        if let Some(conn) = self.this_mut() {
            conn.streaming = true;
        }
    }

    /// Calls [`Protocol::timer`] for this connection `after` from now (replacing a
    /// timer set before). A duration too long to add to an
    /// [`Instant`](std::time::Instant) never expires.
    ///
    /// # Examples
    /// `remind` rings back after 50 ms, `cancel` calls it off; lines are echoed.
    /// ```
    /// use std::io::{BufRead, BufReader, Result, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Remind;
    /// impl Protocol for Remind {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         match line {
    ///             b"remind\n" => ctx.set_timer(Duration::from_millis(50)),
    ///             b"cancel\n" => ctx.cancel_timer(),
    ///             _ => {}
    ///         }
    ///         let _ = ctx.send(line);
    ///     }
    ///     fn timer(&mut self, _: &mut (), ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(b"ring\n");
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Remind, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    /// let client = |lines: &[u8]| -> Result<BufReader<TcpStream>> {
    ///     let mut conn = TcpStream::connect(addr)?;
    ///     conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///     conn.write_all(lines)?;
    ///     Ok(BufReader::new(conn))
    /// };
    /// let next = |conn: &mut BufReader<TcpStream>| -> Result<String> {
    ///     let mut line = String::new();
    ///     conn.read_line(&mut line)?;
    ///     Ok(line)
    /// };
    ///
    /// let mut a = client(b"remind\ncancel\n")?;
    /// assert_eq!(next(&mut a)? + &next(&mut a)?, "remind\ncancel\n");
    /// let mut b = client(b"remind\n")?;
    /// assert_eq!(next(&mut b)? + &next(&mut b)?, "remind\nring\n");
    /// // a's reminder, due before b's, was called off:
    /// a.get_mut().write_all(b"ping\n")?;
    /// assert_eq!(next(&mut a)?, "ping\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.messages_received, stats.messages_sent), (4, 5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_timer(&mut self, after: Duration) {
        let at = self.table.now.checked_add(after);
        self.table.set_timer(self.id, Timer::Protocol, at);
    }

    /// Cancels the timer of [`set_timer`](Self::set_timer), if one is set.
    ///
    /// # Examples
    /// See [`set_timer`](Self::set_timer)'s: `cancel` calls a reminder off.
    pub fn cancel_timer(&mut self) {
        self.table.set_timer(self.id, Timer::Protocol, None);
    }

    /// Opens a TCP connection to `addr` (UNP 16.3's nonblocking `connect`) and
    /// returns its id at once: output sent to it ([`send_to`](Self::send_to)) waits
    /// until it is established. Then the protocol's [`connect`](Protocol::connect)
    /// is called for it ([`is_outgoing`](Self::is_outgoing) says so there) and it
    /// is served as any accepted connection: framing, back-pressure, time-outs,
    /// close reasons. If it cannot be established within
    /// [`Config::connect_timeout`](super::Config::connect_timeout),
    /// [`Protocol::connect_failed`] says why. It counts in
    /// [`Config::max_clients`](super::Config::max_clients), in this worker.
    ///
    /// # Errors
    /// What fails at once, sorted ([`ConnectError`]): no socket (`EMFILE`, …),
    /// `max_clients` reached, or a connect the kernel refused before any packet
    /// (e.g. `ENETUNREACH`).
    ///
    /// # Examples
    /// A proxy: each client gets its own upstream connection, paired with it (here
    /// the upstream is an echo server).
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{SocketAddr, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::{Config, ConnId, Context, Protocol, Server};
    ///
    /// struct Proxy { upstream: SocketAddr }
    /// impl Protocol for Proxy {
    ///     type Conn = Option<ConnId>; // the other side
    ///     fn connect(&mut self, ctx: &mut Context<'_>) -> Option<ConnId> {
    ///         if ctx.is_outgoing() {
    ///             return ctx.partner();
    ///         }
    ///         let upstream = ctx.connect(self.upstream).ok();
    ///         match upstream {
    ///             Some(up) => { ctx.pair(up); }
    ///             None => ctx.close(),
    ///         }
    ///         upstream
    ///     }
    ///     fn receive(&mut self, other: &mut Option<ConnId>, msg: &[u8], ctx: &mut Context<'_>) {
    ///         if let Some(other) = *other {
    ///             ctx.send_to(other, msg);
    ///         }
    ///     }
    /// }
    ///
    /// let echo = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let (upstream, stop_echo) = (echo.local_addr()?, echo.shutdown_handle());
    /// let echo = std::thread::spawn(move || echo.run());
    /// let server = Server::bind("127.0.0.1:0", Proxy { upstream }, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"there and back\n")?; // waits until the upstream is connected
    /// let mut reply = [0; 15];
    /// conn.read_exact(&mut reply)?;
    /// assert_eq!(&reply, b"there and back\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.accepted, stats.connected), (1, 1));
    /// stop_echo.shutdown();
    /// echo.join().unwrap()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    /// The whole relay, half-closes passed on, is `examples/relay.rs`.
    pub fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, ConnectError> {
        self.table.dial(addr)
    }

    /// Serves a connected stream made elsewhere (a `TcpStream`, a `UnixStream`, a
    /// socket passed by another process) as if it had been accepted: the
    /// protocol's [`connect`](Protocol::connect) is called for it at the loop's
    /// next turn. The stream is made nonblocking.
    ///
    /// # Errors
    /// `fcntl(2)`'s, and `Other` if [`Config::max_clients`](super::Config::max_clients)
    /// connections are open; the stream is closed then.
    ///
    /// # Examples
    /// One end of a socket pair is served as a client, from the first accepted
    /// connection on.
    /// ```
    /// use std::io::Read;
    /// use std::net::TcpStream;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Protocol, Server};
    ///
    /// struct Hello(Option<UnixStream>);
    /// impl Protocol for Hello {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         if let Some(stream) = self.0.take() {
    ///             let _ = ctx.adopt(stream); // connected next turn
    ///         }
    ///         let _ = ctx.send(b"hello\n");
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let (mut ours, theirs) = UnixStream::pair()?;
    /// let server = Server::bind("127.0.0.1:0", Hello(Some(theirs)), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let _client = TcpStream::connect(addr)?;
    /// ours.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// let mut greeting = [0; 6];
    /// ours.read_exact(&mut greeting)?;
    /// assert_eq!(&greeting, b"hello\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.accepted, stats.connected), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn adopt(&mut self, stream: impl Into<OwnedFd>) -> io::Result<ConnId> {
        self.table.adopt(stream.into())
    }

    /// Watches `fd`, a descriptor the protocol hands over (a pipe, a Unix socket
    /// from another process, an eventfd), for `interest`: the loop calls
    /// [`Protocol::ready`] when it is ready, until
    /// [`unwatch`](Self::unwatch) or the server stops (then it is closed). The
    /// loop neither reads nor writes it; it counts in
    /// [`Config::max_clients`](super::Config::max_clients), in this worker.
    ///
    /// # Errors
    /// `Other` if `max_clients` entries are taken; those of registering it
    /// (select: a descriptor `>= FD_SETSIZE`; epoll: `EPERM` for a regular file)
    /// come later, as an unwatch: the descriptor is closed.
    ///
    /// # Examples
    /// What another thread (a child process, a signal handler) writes into a
    /// socket goes to every connection; when the writer is done, the socket is
    /// unwatched, and closed.
    /// ```
    /// use std::io::{ErrorKind, Read, Write};
    /// use std::net::{Shutdown, TcpStream};
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Protocol, Server};
    /// use unp_select::sources::{Interest, Readiness};
    ///
    /// struct Announce(Option<UnixStream>); // watched from the first connection on
    /// impl Protocol for Announce {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         if let Some(feed) = self.0.take() {
    ///             let _ = ctx.watch(feed, Interest::READ);
    ///         }
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    ///     fn ready(&mut self, _: Readiness, ctx: &mut Context<'_>) {
    ///         let mut buf = [0; 512];
    ///         match ctx.read_watched(&mut buf) {
    ///             Ok(n) if n > 0 => {
    ///                 ctx.broadcast(&buf[..n]);
    ///             }
    ///             Err(e) if e.kind() == ErrorKind::WouldBlock => {}
    ///             _ => {
    ///                 let id = ctx.id();
    ///                 ctx.unwatch(id); // end of file or error: the writer is done
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let (mut writer, feed) = UnixStream::pair()?;
    /// feed.set_nonblocking(true)?; // a read the loop makes never waits
    /// let server = Server::bind("127.0.0.1:0", Announce(Some(feed)), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let timeout = Some(Duration::from_secs(5));
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(timeout)?;
    /// writer.write_all(b"news\n")?;
    /// let mut news = [0; 5];
    /// conn.read_exact(&mut news)?;
    /// assert_eq!(&news, b"news\n");
    /// writer.shutdown(Shutdown::Write)?;
    /// writer.set_read_timeout(timeout)?;
    /// assert_eq!(writer.read(&mut [0; 1])?, 0); // the server closed its end
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.messages_sent, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn watch(&mut self, fd: impl Into<OwnedFd>, interest: Interest) -> io::Result<ConnId> {
        self.table.watch(fd.into(), interest)
    }

    /// Stops watching `id` ([`watch`](Self::watch)) and closes its descriptor, at
    /// the end of this turn. Returns whether it was watched.
    ///
    /// # Examples
    /// See [`watch`](Self::watch)'s: the socket is unwatched when its writer is
    /// done.
    pub fn unwatch(&mut self, id: ConnId) -> bool {
        if id.worker != self.id.worker {
            return false;
        }
        match self.table.get_mut(id) {
            Some(conn) if conn.stage == Stage::Watched => {
                conn.ending = Ending::Close;
                self.table.woken.push(id.index());
                true
            }
            _ => false,
        }
    }

    /// One `read(2)` from the descriptor this [`Protocol::ready`] call is about
    /// (nonblocking if the descriptor is).
    ///
    /// # Errors
    /// `read(2)`'s; `InvalidInput` outside a `ready` call.
    ///
    /// # Examples
    /// See [`watch`](Self::watch)'s.
    pub fn read_watched(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.this() {
            Some(conn) if conn.stage == Stage::Watched => crate::sys::read(conn.fd.as_fd(), buf),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read_watched is for a watched descriptor's ready call",
            )),
        }
    }

    /// Pairs this connection with `other` (of this worker): while either has more
    /// than [`Config::max_unsent`](super::Config::max_unsent) bytes unsent, the
    /// other is not read (its own queue does not hold back its reading: the two
    /// directions go on independently), so a relay's memory stays bounded whichever side is
    /// slow; when either closes, the other closes once its output is sent; and at
    /// end of input a paired connection stays open until its own side is
    /// half-closed too (see [`Protocol::end_of_input`]). Returns whether they were
    /// paired: not if `other` is gone, of another worker, a watched descriptor, or
    /// either is paired already.
    ///
    /// # Examples
    /// Clients are put through to each other two by two, as a relay puts a client
    /// through to its upstream; a half-close is passed on.
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{Shutdown, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::server::{Config, ConnId, Context, Protocol, Server};
    ///
    /// struct Switchboard(Option<ConnId>); // a client waiting for another
    /// impl Protocol for Switchboard {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         match self.0.take() {
    ///             Some(other) if ctx.pair(other) => {
    ///                 ctx.send_to(other, b"go\n");
    ///                 let _ = ctx.send(b"go\n");
    ///             }
    ///             _ => self.0 = Some(ctx.id()), // none, or it left
    ///         }
    ///     }
    ///     fn receive(&mut self, _: &mut (), bytes: &[u8], ctx: &mut Context<'_>) {
    ///         if let Some(other) = ctx.partner() {
    ///             ctx.send_to(other, bytes);
    ///         }
    ///     }
    ///     fn end_of_input(&mut self, _: &mut (), ctx: &mut Context<'_>) {
    ///         if let Some(other) = ctx.partner() {
    ///             ctx.shutdown_write_other(other); // its client reads end of file
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Switchboard(None), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let (mut a, mut b) = (TcpStream::connect(addr)?, TcpStream::connect(addr)?);
    /// for conn in [&mut a, &mut b] {
    ///     conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///     conn.read_exact(&mut [0; 3])?; // "go\n": put through
    /// }
    /// b.write_all(b"hi")?;
    /// b.shutdown(Shutdown::Write)?;
    /// let mut heard = String::new();
    /// a.read_to_string(&mut heard)?; // to b's half-close
    /// assert_eq!(heard, "hi");
    /// a.write_all(b"bye")?; // b still reads
    /// a.shutdown(Shutdown::Write)?;
    /// heard.clear();
    /// b.read_to_string(&mut heard)?;
    /// assert_eq!(heard, "bye");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.accepted, stats.messages_received), (2, 2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair(&mut self, other: ConnId) -> bool {
        let me = self.id;
        let free = |c: &Conn| c.partner().is_none() && c.stage != Stage::Watched;
        let mine = self.this().is_some_and(free);
        if other == me || other.worker != me.worker || !mine {
            return false;
        }
        if !self.table.get_mut(other).is_some_and(|c| free(c)) {
            return false;
        }
        if let Some(conn) = self.table.get_mut(other) {
            conn.link_mut().partner = Some(me);
        }
        if let Some(conn) = self.this_mut() {
            conn.link_mut().partner = Some(other);
        }
        true
    }

    /// The connection paired with this one ([`pair`](Self::pair)), if any.
    ///
    /// # Examples
    /// See [`pair`](Self::pair)'s.
    pub fn partner(&self) -> Option<ConnId> {
        self.this().and_then(Conn::partner)
    }

    /// Whether the server opened this connection ([`connect`](Self::connect))
    /// rather than accepted it.
    ///
    /// # Examples
    /// See [`connect`](Self::connect)'s: a proxy's upstream side.
    pub fn is_outgoing(&self) -> bool {
        self.this()
            .is_some_and(|c| c.link.as_ref().is_some_and(|l| l.outgoing))
    }

    /// The peer's address (`getpeername(2)`).
    ///
    /// # Errors
    /// `getpeername(2)`'s (`ENOTCONN` once the peer is gone), and `Unsupported`
    /// for a Unix-domain connection.
    ///
    /// # Examples
    /// Each client is told who it is and where it came in, then closed.
    /// ```
    /// use std::io::Read;
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Protocol, Server};
    ///
    /// struct WhoAmI;
    /// impl Protocol for WhoAmI {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         if let (Ok(peer), Ok(local)) = (ctx.peer_addr(), ctx.local_addr()) {
    ///             let _ = ctx.send(format!("{peer} to {local}\n").as_bytes());
    ///         }
    ///         ctx.close();
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", WhoAmI, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// let mut reply = String::new();
    /// conn.read_to_string(&mut reply)?;
    /// assert_eq!(reply, format!("{} to {addr}\n", conn.local_addr()?));
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_protocol, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let conn = self.this().ok_or_else(gone)?;
        crate::sys::peer_addr(conn.fd.as_fd())
    }

    /// This end's address (`getsockname(2)`).
    ///
    /// # Errors
    /// As [`peer_addr`](Self::peer_addr).
    ///
    /// # Examples
    /// See [`peer_addr`](Self::peer_addr)'s.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let conn = self.this().ok_or_else(gone)?;
        crate::sys::local_addr(conn.fd.as_fd())
    }

    /// Asks the server to stop with a drain, as a first
    /// [`ShutdownHandle::shutdown`](super::ShutdownHandle::shutdown) does: a
    /// protocol's SHUTDOWN command. Asking again does not turn the drain into a
    /// stop at once.
    ///
    /// # Examples
    /// A `shutdown` command: the server stops with no
    /// [`ShutdownHandle`](super::ShutdownHandle), after the reply is delivered.
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Admin;
    /// impl Protocol for Admin {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         if line == b"shutdown\n" {
    ///             let _ = ctx.send(b"bye\n");
    ///             ctx.shutdown_server();
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Admin, Config::default())?;
    /// let addr = server.local_addr()?;
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"shutdown\n")?;
    /// let mut reply = String::new();
    /// conn.read_to_string(&mut reply)?; // the drain delivers "bye", then closes
    /// assert_eq!(reply, "bye\n");
    ///
    /// assert_eq!(thread.join().unwrap()?.closed_shutdown, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_server(&mut self) {
        self.table.shutdown.drain();
    }

    /// Half-closes connection `id` (of this worker) as
    /// [`shutdown_write`](Self::shutdown_write) does for this one: a relay passes a
    /// half-close on. Returns whether it was open.
    ///
    /// # Examples
    /// See [`pair`](Self::pair)'s: each client's half-close reaches the other.
    pub fn shutdown_write_other(&mut self, id: ConnId) -> bool {
        if id.worker != self.id.worker {
            return false;
        }
        let Some(conn) = self.other_mut(id) else {
            return false;
        };
        conn.ending = Ending::ShutdownWrite;
        self.table.woken.push(id.index());
        true
    }

    /// Closes this connection once what is queued for it has been sent; the rest
    /// of its input is dropped.
    ///
    /// # Examples
    /// `quit` is answered, then the connection closes; other lines are echoed.
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Quit;
    /// impl Protocol for Quit {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         if line == b"quit\n" {
    ///             let _ = ctx.send(b"bye\n");
    ///             ctx.close(); // after "bye" is sent
    ///         } else {
    ///             let _ = ctx.send(line);
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Quit, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"hi\nquit\n")?;
    /// let mut reply = String::new();
    /// conn.read_to_string(&mut reply)?; // to the server's close
    /// assert_eq!(reply, "hi\nbye\n");
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_protocol, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self) {
        if let Some(conn) = self.this_mut() {
            conn.ending = Ending::Close;
        }
    }

    /// Closes connection `id` the same way; returns whether it was open (for a
    /// connection of another worker: that the request was posted).
    ///
    /// # Examples
    /// One client at a time: a new one closes the one before.
    /// ```
    /// use std::io::Read;
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, ConnId, Context, Protocol, Server};
    ///
    /// struct Latest(Option<ConnId>); // the client served
    /// impl Protocol for Latest {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         if let Some(before) = self.0.replace(ctx.id()) {
    ///             ctx.close_other(before);
    ///         }
    ///         let _ = ctx.send(format!("{} open\n", ctx.connections()).as_bytes());
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Latest(None), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    /// let client = || -> std::io::Result<(TcpStream, String)> {
    ///     let mut conn = TcpStream::connect(addr)?;
    ///     conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///     let mut greeting = [0; 7];
    ///     conn.read_exact(&mut greeting)?;
    ///     Ok((conn, String::from_utf8_lossy(&greeting).into_owned()))
    /// };
    ///
    /// let (mut first, greeting) = client()?;
    /// assert_eq!(greeting, "1 open\n");
    /// let (_second, greeting) = client()?;
    /// assert_eq!(greeting, "2 open\n"); // the first is closing
    /// let mut rest = String::new();
    /// first.read_to_string(&mut rest)?;
    /// assert_eq!(rest, ""); // closed
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.closed_protocol, stats.closed_shutdown), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close_other(&mut self, id: ConnId) -> bool {
        if id == self.id {
            self.close();
            return true;
        }
        if id.worker != self.id.worker {
            return self.post(id.worker(), || Post::Close(id));
        }
        let Some(conn) = self.other_mut(id) else {
            return false;
        };
        conn.ending = Ending::Close;
        self.table.woken.push(id.index());
        true
    }

    /// Half-closes this connection (`shutdown(SHUT_WR)`, UNP 6.6) once what is
    /// queued has been sent: the peer reads end of file, and this side goes on
    /// reading until the peer closes. Later output is refused.
    ///
    /// # Examples
    /// One answer, then end of file; the client may still talk.
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::sync::mpsc::{channel, Sender};
    /// use std::time::Duration;
    /// use unp_select::server::{CloseReason, Config, ConnId, Context, Frame, Protocol, Server};
    ///
    /// struct Answer(Sender<CloseReason>);
    /// impl Protocol for Answer {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], ctx: &mut Context<'_>) {
    ///         if ctx.send(b"42\n").is_ok() {
    ///             ctx.shutdown_write(); // later sends are refused
    ///         }
    ///     }
    ///     fn disconnect(&mut self, _: (), _: ConnId, reason: CloseReason) {
    ///         let _ = self.0.send(reason);
    ///     }
    /// }
    ///
    /// let (tx, closed) = channel();
    /// let server = Server::bind("127.0.0.1:0", Answer(tx), Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"question\n")?;
    /// let mut answer = String::new();
    /// conn.read_to_string(&mut answer)?; // to end of file, not to a close
    /// assert_eq!(answer, "42\n");
    /// conn.write_all(b"thanks\n")?; // still read
    /// drop(conn);
    /// assert_eq!(closed.recv_timeout(Duration::from_secs(5)), Ok(CloseReason::Eof));
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.messages_received, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_write(&mut self) {
        if let Some(conn) = self.this_mut() {
            if conn.ending == Ending::Open {
                conn.ending = Ending::ShutdownWrite;
            }
        }
    }

    /// How many connections this worker has open, this one included.
    ///
    /// # Examples
    /// See [`close_other`](Self::close_other)'s: the greeting counts.
    pub fn connections(&self) -> usize {
        self.table.open
    }

    /// Posts to another worker; false if there is no such worker.
    fn post(&mut self, worker: usize, post: impl FnOnce() -> Post) -> bool {
        match self.table.hub.as_deref() {
            Some(hub) if worker < hub.workers() => {
                if !hub.post(worker, post()) {
                    self.table.rewake.push(worker);
                }
                true
            }
            _ => false,
        }
    }

    fn this(&self) -> Option<&Conn> {
        self.table.client.get(self.id.index())?.as_ref()
    }

    fn this_mut(&mut self) -> Option<&mut Conn> {
        self.table.client.get_mut(self.id.index())?.as_mut()
    }

    /// Connection `id` if it is open and accepts output.
    fn other_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.table.open_conn(id)
    }
}

/// The error of an address asked for a connection that is gone.
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is gone")
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("frame", &self.frame())
            .field("unsent", &self.unsent())
            .finish_non_exhaustive()
    }
}

/// Ends a message just queued for `conn` by another connection; marks `conn` for
/// closing past `max_output`.
pub(super) fn end_message(conn: &mut Conn, max_output: usize) {
    conn.out.end_message();
    if conn.unsent() > max_output {
        conn.overflowed = true;
    }
}
