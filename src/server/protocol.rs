//! What a user of the loop writes: a [`Protocol`]. What it gets to answer with: a
//! [`Context`].

use std::fmt;
use std::sync::Arc;

use super::conn::{Conn, Ending};
use super::hub::{Hub, Post};

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
    /// Exactly this many bytes. At end of file a shorter rest is dropped.
    Exact(usize),
}

/// A connection's name, for [`Context::send_to`]: its worker, its slot in that
/// worker's `client[]`, and a generation, so an id whose connection closed never
/// reaches a later connection that got the same slot.
///
/// # Examples
/// ```
/// use std::collections::HashSet;
/// use unp_select::server::ConnId;
/// fn remember(ids: &mut HashSet<ConnId>, id: ConnId) -> bool {
///     ids.insert(id) // Copy + Eq + Hash
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) worker: u16,
    pub(super) index: u32,
    pub(super) gen: u32,
}

impl ConnId {
    /// The connection's index in its worker's `client[]` (reused after it closes).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The worker that serves the connection (0 with one worker).
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
        write!(f, "{}.{}#{}", self.worker, self.index, self.gen)
    }
}

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
///         ctx.send(line);
///     }
/// }
/// ```
/// A complete server is in the [module documentation](super).
pub trait Protocol {
    /// What the protocol keeps per connection.
    type Conn;

    /// A connection was accepted. Set its first [`Frame`] here (the default is
    /// [`Frame::Bytes`]), and send a greeting if the protocol has one.
    fn connect(&mut self, ctx: &mut Context<'_>) -> Self::Conn;

    /// One message arrived, cut as the connection's [`Frame`] says.
    fn receive(&mut self, conn: &mut Self::Conn, msg: &[u8], ctx: &mut Context<'_>);

    /// The connection is gone (closed by either side, reset, or by the server's
    /// policy). The default does nothing.
    fn disconnect(&mut self, conn: Self::Conn, id: ConnId) {
        let _ = (conn, id);
    }
}

/// What a protocol can do while it handles one connection's message: answer it,
/// write to other connections, choose the next frame, close.
///
/// Output is queued and sent once per turn of the loop (one `send` per connection
/// per turn, as the loop's fair turns promise). What the kernel does not take
/// stays queued, and the connection is not read while more than
/// [`Config::max_unsent`](super::Config::max_unsent) bytes wait.
///
/// Sending part of the message just received costs no copy: the loop sends it
/// straight out of its read buffer (UNP's `buf[MAXLINE]`), as long as the parts
/// follow each other in the input.
///
/// # Examples
/// A relay: `@N text` goes to the connection that was told it is `N`, anything
/// else to everybody else; `quit` is answered, then the connection closes.
/// ```
/// use std::collections::HashMap;
/// use unp_select::server::{ConnId, Context, Frame, Protocol};
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
///         ctx.send(format!("you are @{n}\n").as_bytes());
///         n
///     }
///     fn receive(&mut self, _: &mut usize, line: &[u8], ctx: &mut Context<'_>) {
///         if line == b"quit\n" {
///             ctx.send(b"bye\n");
///             ctx.close(); // after "bye" is sent
///         } else if let Some((to, text)) = parse_to(line) {
///             let delivered = self.by_number.get(&to).is_some_and(|&id| ctx.send_to(id, text));
///             if !delivered {
///                 ctx.send(b"no such connection\n");
///             }
///         } else {
///             ctx.broadcast(line);
///         }
///     }
///     fn disconnect(&mut self, n: usize, _: ConnId) {
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
    pub(super) conns: &'a mut [Option<Conn>],
    /// The input the messages come from: output inside it may be sent from there
    /// without a copy.
    pub(super) input: &'a [u8],
    /// The part of the input queued for sending, not copied yet.
    pub(super) borrowed: Option<(usize, usize)>,
    /// Where each message this turn ends, in the connection's output.
    pub(super) ends: &'a mut Vec<usize>,
    /// Other connections that got output: flushed on the next turn.
    pub(super) woken: &'a mut Vec<usize>,
    /// Workers whose inbox wake-up could not be written: woken again later.
    pub(super) rewake: &'a mut Vec<usize>,
    pub(super) max_output: usize,
    /// The other workers, if there are any.
    pub(super) hub: Option<&'a Hub>,
}

impl Context<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// This connection's current frame.
    pub fn frame(&self) -> Frame {
        self.this().map_or(Frame::Bytes, |c| c.frame)
    }

    /// Cuts the next messages of this connection as `frame` says.
    pub fn set_frame(&mut self, frame: Frame) {
        if let Some(conn) = self.this_mut() {
            if conn.frame != frame {
                conn.frame = frame;
                conn.scanned = 0;
            }
        }
    }

    /// Queues `data` for this connection. Ignored after [`close`](Self::close) or
    /// [`shutdown_write`](Self::shutdown_write).
    #[inline]
    pub fn send(&mut self, data: &[u8]) {
        let index = self.id.index();
        let Some(conn) = self.conns[index].as_mut() else {
            return;
        };
        if conn.ending != Ending::Open || data.is_empty() {
            return;
        }
        // Part of the input, right after what is queued from it already, and
        // nothing queued before: send it from the input (compared as addresses
        // only; nothing is read through them).
        let base = self.input.as_ptr() as usize;
        let addr = data.as_ptr() as usize;
        let inside = addr >= base && addr + data.len() <= base + self.input.len();
        if inside && conn.unsent() == 0 {
            let (start, end) = (addr - base, addr - base + data.len());
            match self.borrowed {
                None => {
                    self.borrowed = Some((start, end));
                    self.ends.push(data.len());
                    return;
                }
                Some((s, e)) if e == start => {
                    self.borrowed = Some((s, end));
                    self.ends.push(end - s);
                    return;
                }
                Some(_) => {}
            }
        }
        // Anything else is copied into the connection's queue, after what was
        // borrowed (whose message ends are already counted from 0).
        if let Some((s, e)) = self.borrowed.take() {
            conn.queue(&self.input[s..e]);
        }
        conn.queue(data);
        self.ends.push(conn.queued_end());
        if conn.unsent() > self.max_output {
            conn.overflowed = true;
        }
    }

    /// Queues `data` for connection `id`; returns whether it is still there (an id
    /// of a connection that closed, or that is closing, gets nothing). `send_to`
    /// this connection's own id is [`send`](Self::send).
    ///
    /// A connection of another worker gets `data` through that worker's inbox, at
    /// its next turn; `true` then says only that it was posted.
    pub fn send_to(&mut self, id: ConnId, data: &[u8]) -> bool {
        if id == self.id {
            self.send(data);
            return true;
        }
        if id.worker != self.id.worker {
            return self.post(id.worker(), || Post::To(id, data.into()));
        }
        let max_output = self.max_output;
        let Some(conn) = self.other_mut(id) else {
            return false;
        };
        queue_for(conn, data, max_output);
        self.woken.push(id.index());
        true
    }

    /// Queues `data` for every other open connection, of every worker (not this
    /// one); returns how many of this worker's got it (the others' are posted to
    /// their workers, one copy for all).
    ///
    /// "Open" means accepted: a connection still in the listen queue misses it, as
    /// with any select server. With several workers each worker delivers a post
    /// to the connections it has accepted when it reads the post (it reads posts
    /// before it accepts), so a client whose `connect` returned just before the
    /// broadcast may miss it if its worker had not accepted it yet.
    pub fn broadcast(&mut self, data: &[u8]) -> usize {
        let mut sent = 0;
        for index in 0..self.conns.len() {
            if index == self.id.index() {
                continue;
            }
            let Some(conn) = self.conns[index].as_mut() else {
                continue;
            };
            if conn.ending == Ending::Open {
                queue_for(conn, data, self.max_output);
                self.woken.push(index);
                sent += 1;
            }
        }
        if let Some(hub) = self.hub {
            let shared: Arc<[u8]> = data.into();
            for worker in (0..hub.workers()).filter(|&w| w != self.id.worker()) {
                if !hub.post(worker, Post::All(Arc::clone(&shared))) {
                    self.rewake.push(worker);
                }
            }
        }
        sent
    }

    /// Bytes queued for this connection and not yet taken by the kernel.
    pub fn unsent(&self) -> usize {
        self.this().map_or(0, Conn::unsent)
    }

    /// Closes this connection once what is queued for it has been sent; the rest
    /// of its input is dropped.
    pub fn close(&mut self) {
        if let Some(conn) = self.this_mut() {
            conn.ending = Ending::Close;
        }
    }

    /// Closes connection `id` the same way; returns whether it was open (for a
    /// connection of another worker: that the request was posted).
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
        self.woken.push(id.index());
        true
    }

    /// Half-closes this connection (`shutdown(SHUT_WR)`, UNP 6.6) once what is
    /// queued has been sent: the peer reads end of file, and this side goes on
    /// reading until the peer closes. Later output is dropped.
    pub fn shutdown_write(&mut self) {
        if let Some(conn) = self.this_mut() {
            if conn.ending == Ending::Open {
                conn.ending = Ending::ShutdownWrite;
            }
        }
    }

    /// How many connections this worker has open, this one included.
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Posts to another worker; false if there is no such worker.
    fn post(&mut self, worker: usize, post: impl FnOnce() -> Post) -> bool {
        match self.hub {
            Some(hub) if worker < hub.workers() => {
                if !hub.post(worker, post()) {
                    self.rewake.push(worker);
                }
                true
            }
            _ => false,
        }
    }

    fn this(&self) -> Option<&Conn> {
        self.conns.get(self.id.index())?.as_ref()
    }

    fn this_mut(&mut self) -> Option<&mut Conn> {
        self.conns.get_mut(self.id.index())?.as_mut()
    }

    /// Connection `id` if it is open and accepts output.
    fn other_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let conn = self.conns.get_mut(id.index())?.as_mut()?;
        (conn.gen == id.gen && conn.ending == Ending::Open).then_some(conn)
    }
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

/// Queues `data` for `conn` as one message; marks it for closing past
/// `max_output`.
pub(super) fn queue_for(conn: &mut Conn, data: &[u8], max_output: usize) {
    conn.queue(data);
    let at = conn.queued_end();
    conn.ends.push_back(at);
    if conn.unsent() > max_output {
        conn.overflowed = true;
    }
}
