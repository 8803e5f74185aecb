//! The loop itself: `tcpservselect01`'s `for ( ; ; )`, step by step, over
//! [`Sources`] that wait with select(2) or poll(2).

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::conn::{next_message, Conn, Ending};
use super::hub::{Hub, Post};
use super::protocol::{queue_for, ConnId, Context, Frame, Protocol};
use super::stats::{add, bump, Published, Stats};
use super::{Config, Listener, ShutdownHandle, ACCEPT_BACKOFF, RESOURCE_BACKOFF};
use crate::accept::{self, Accept, FdReserve};
use crate::poll::{poll, PollFd, PollFlags};
use crate::sources::{Backend, Events, Interest, Readiness, Sources};

/// The listener's key in the loop's [`Sources`]; connection `i` is `FIRST_CONN + i`.
const LISTENER: usize = 0;
/// The shutdown waker's key.
const WAKE: usize = 1;
/// The key of this worker's inbox (posts from other workers).
const INBOX: usize = 2;
const FIRST_CONN: usize = 3;

/// Why a connection ends.
#[derive(Debug)]
enum Close {
    /// The peer closed and got all its output.
    Eof,
    /// A read or write error: the connection is gone.
    Reset,
    /// The server's policy: output not taken in time, or too much of it.
    Policy,
    /// The protocol asked.
    Protocol,
    /// The protocol panicked.
    Panic,
}

/// What to do after an error of `recv` or `send`: `Ok(())` to back off and retry
/// (`ENOMEM`, `ENOBUFS`), `Err(None)` to close the connection, `Err(Some(e))` when
/// the server itself is broken (`EBADF`, `EFAULT`, `EINVAL`, `ENOTSOCK`).
fn sort(e: io::Error) -> Result<(), Option<io::Error>> {
    match e.raw_os_error() {
        Some(libc::ENOMEM | libc::ENOBUFS) => Ok(()),
        Some(libc::EBADF | libc::EFAULT | libc::EINVAL | libc::ENOTSOCK) => Err(Some(e)),
        // ECONNRESET, EPIPE, ETIMEDOUT, ENOTCONN, EHOSTUNREACH, ENETDOWN, EIO, …:
        // this connection is over, whatever the reason.
        _ => Err(None),
    }
}

/// What the loop does after `select`/`poll` failed.
fn wait_failed(e: io::Error, stats: &mut Stats) -> io::Result<()> {
    match e.raw_os_error() {
        Some(libc::EINTR) => Ok(()),
        // select(2), poll(2): "Unable to allocate memory for internal tables";
        // POSIX poll: EAGAIN, "a subsequent request may succeed". Nothing is lost
        // by waiting: the descriptors stay ready.
        Some(libc::ENOMEM | libc::EAGAIN) => {
            bump(&mut stats.backoffs);
            thread::sleep(RESOURCE_BACKOFF);
            Ok(())
        }
        // EBADF, EINVAL, EFAULT: the server's own sets are wrong.
        _ => Err(e),
    }
}

/// Runs `f`; a panic in it is caught and reported as `Err`.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(drop)
}

/// One read's worth of data for delivery: from the loop's buffer, or from the
/// connection's own input.
#[derive(Clone, Copy)]
enum Source {
    LoopBuf(usize),
    Input,
}

/// What one `read` brought.
enum Read {
    /// Data (or nothing, or end of file) to deliver.
    Data(Source),
    /// The kernel is out of memory: retry after the back-off.
    Park,
    /// The connection is gone: it is closed after this turn.
    Reset,
}

/// What one worker gets: its listener (shared, or its own with `SO_REUSEPORT`),
/// its copy of the protocol, and its place among the workers.
pub(super) struct Worker<P> {
    pub(super) index: u16,
    pub(super) listener: Arc<Listener>,
    pub(super) protocol: P,
    pub(super) config: Config,
    pub(super) shutdown: ShutdownHandle,
    /// Where this worker publishes its counters.
    pub(super) stats: Arc<Published>,
    /// The other workers' inboxes (none with one worker).
    pub(super) hub: Option<Arc<Hub>>,
}

/// One worker's loop.
pub(super) struct Loop<P: Protocol> {
    worker: u16,
    listener: Arc<Listener>,
    protocol: P,
    config: Config,
    shutdown: ShutdownHandle,
    stats_slot: Arc<Published>,
    hub: Option<Arc<Hub>>,
    /// Scratch: what the inbox held.
    posts: Vec<Post>,
    /// Workers whose inbox wake-up could not be written: woken again at each
    /// turn (at least every RESOURCE_BACKOFF) until it is.
    rewake: Vec<usize>,
    /// A duplicate of the wake-up socket below `FD_SETSIZE`, watched when the
    /// waker's own descriptor is too high for select.
    wake: Option<UnixStream>,
    sources: Sources<usize>,
    events: Events<usize>,
    reserve: Option<FdReserve>,
    accept_paused_until: Option<Instant>,
    /// How many connections the next readiness of the listener may accept (see
    /// `accept_some`), and the turn whose batch took all it could.
    accept_quota: usize,
    full_batch_in: Option<u64>,
    /// UNP's `client[]`, grown on demand up to `max_clients` entries.
    client: Vec<Option<Conn>>,
    /// The protocol's state of each connection, by the same index.
    state: Vec<Option<P::Conn>>,
    /// The generation of the next connection (see [`ConnId`]).
    next_gen: u32,
    /// Connections with work left (messages buffered, output from others), served
    /// next turn without waiting (UNP 6.8's `readlinebuf` check).
    backlog: Vec<usize>,
    /// Connections with a deadline: output stalled (write timeout) or parked.
    timed: Vec<usize>,
    /// The turn number, so that no connection is served twice in one turn.
    turn: u64,
    /// UNP's `char buf[MAXLINE]`: every read goes here first.
    buf: Vec<u8>,
    /// Scratch: where this turn's messages end in the output.
    ends: Vec<usize>,
    /// Scratch: connections that got output from others this turn.
    woken: Vec<usize>,
    stats: Stats,
}

impl<P: Protocol> Loop<P> {
    pub(super) fn new(worker: Worker<P>, backend: Backend) -> io::Result<Loop<P>> {
        let Worker {
            index,
            listener,
            protocol,
            config,
            shutdown,
            stats,
            hub,
        } = worker;
        let mut sources = Sources::new(backend);
        sources
            .register(LISTENER, &listener, Interest::READ)
            .map_err(|e| {
                let fd = listener.as_fd().as_raw_fd();
                io::Error::new(e.kind(), format!("the listener (descriptor {fd}): {e}"))
            })?;
        let wake = Self::watch_wake(&shutdown, &mut sources)?;
        if let Some(hub) = &hub {
            sources.register(INBOX, &hub.inbox(usize::from(index)).waker, Interest::READ)?;
        }
        Ok(Loop {
            worker: index,
            listener,
            protocol,
            config,
            shutdown,
            stats_slot: stats,
            hub,
            posts: Vec::new(),
            rewake: Vec::new(),
            wake,
            sources,
            events: Events::new(),
            // Without a spare descriptor the server still runs; it backs off instead.
            reserve: FdReserve::new().ok(),
            accept_paused_until: None,
            accept_quota: 1,
            full_batch_in: None,
            client: Vec::new(),
            state: Vec::new(),
            next_gen: 0,
            backlog: Vec::new(),
            timed: Vec::new(),
            turn: 0,
            buf: Vec::new(),
            ends: Vec::new(),
            woken: Vec::new(),
            stats: Stats::default(),
        })
    }

    /// Registers the wake-up socket. It was made when the server was, and may have
    /// got a descriptor too high for select then (low ones busy): the loop then
    /// watches a duplicate, which takes the lowest free descriptor now.
    fn watch_wake(
        shutdown: &ShutdownHandle,
        sources: &mut Sources<usize>,
    ) -> io::Result<Option<UnixStream>> {
        let Err(e) = sources.register(WAKE, &*shutdown.waker, Interest::READ) else {
            return Ok(None);
        };
        let dup = UnixStream::from(shutdown.waker.as_fd().try_clone_to_owned()?);
        sources.register(WAKE, &dup, Interest::READ).map_err(|_| {
            let fd = shutdown.waker.as_fd().as_raw_fd();
            io::Error::new(
                e.kind(),
                format!(
                    "the server's wake-up socket (descriptor {fd}) does not fit an \
                     fd_set and no lower descriptor is free; use run_large or run_poll"
                ),
            )
        })?;
        Ok(Some(dup))
    }

    /// Reads every pending wake-up.
    fn reset_wake(&self) {
        let _ = match &self.wake {
            Some(dup) => crate::sources::waker_reset(dup),
            None => self.shutdown.waker.reset(),
        };
    }

    pub(super) fn run(mut self) -> io::Result<Stats> {
        let mut deadline = None;
        let mut events = mem::take(&mut self.events);
        while !self.shutdown.is_requested() {
            self.turn += 1;
            let timeout = if self.backlog.is_empty() {
                deadline.map(|d: Instant| d.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO) // buffered work: do not sleep
            };
            // UNP: rset = allset; nready = Select(maxfd + 1, &rset, NULL, NULL, NULL);
            if let Err(e) = self.sources.wait_interruptible(&mut events, timeout) {
                wait_failed(e, &mut self.stats)?;
                continue;
            }

            if events.iter().any(|(&key, _)| key == WAKE) {
                if self.shutdown.is_requested() {
                    // Not read: every worker watches this waker, and each must see
                    // it readable.
                    break;
                }
                self.reset_wake(); // a wake-up without a request: cannot happen
                continue;
            }
            // UNP 6.8: serve what is already in our buffers before sleeping again
            // (what this turn leaves there waits for the next one).
            for i in mem::take(&mut self.backlog) {
                self.serve(i, Readiness::EMPTY)?;
            }
            // Posts from other workers first: a broadcast made before a
            // connection arrived must not reach it, if both are ready now.
            if events.iter().any(|(&key, _)| key == INBOX) {
                self.read_inbox()?;
            }
            // UNP: if (FD_ISSET(listenfd, &rset)) { connfd = Accept(…); … }
            // then for each client: if (FD_ISSET(sockfd, &rset)) { … }
            for (&key, readiness) in &events {
                if readiness.is_invalid() {
                    // Only the server closes its descriptors: its state is broken.
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                match key {
                    LISTENER => self.accept_some()?,
                    INBOX => {}
                    _ => self.serve(key - FIRST_CONN, readiness)?,
                }
            }

            deadline = self.timers();
            self.stats_slot.store(&self.stats); // live counters: relaxed stores
        }
        self.events = events;
        self.close_all();
        self.stats_slot.store(&self.stats);
        Ok(self.stats)
    }

    /// The listener is readable: (optionally wait, as UNP 16.6 does, then) accept
    /// a batch of connections, until the queue is empty. An `EAGAIN` counts as an
    /// empty accept only as the batch's first call (the race of UNP 16.6, or
    /// another worker was faster); later, it just ends the batch.
    ///
    /// The batch adapts, up to [`Config::accept_batch`]: one connection while
    /// connections come one at a time (so no `accept` is spent finding the queue
    /// empty: the book's one accept per select), doubled each time the listener is
    /// readable again right after a batch that took all it could, back to one when
    /// a batch finds the queue empty.
    fn accept_some(&mut self) -> io::Result<()> {
        if let Some(delay) = self.config.accept_delay {
            // UNP 16.6's sleep(5), the race window; a shutdown ends it.
            let fd = match &self.wake {
                Some(dup) => dup.as_fd(),
                None => self.shutdown.waker.as_fd(),
            };
            let mut wake = [PollFd::from_fd(fd, PollFlags::POLLIN)];
            if matches!(poll(&mut wake, Some(delay)), Ok(n) if n > 0) {
                return Ok(());
            }
        }
        if !self.config.nonblocking_listener {
            // A second accept on a blocking listener would sleep until the next
            // connection, freezing every client: one per readiness, as the book.
            self.accept_quota = 1;
        } else if self.full_batch_in == Some(self.turn.wrapping_sub(1)) {
            self.accept_quota = (self.accept_quota * 2).min(self.config.accept_batch);
        } else {
            self.accept_quota = 1;
        }
        for n in 0..self.accept_quota {
            let outcome = match crate::sys::accept_cloexec(self.listener.as_fd(), true) {
                Ok((fd, _)) => {
                    self.add_client(fd);
                    continue;
                }
                Err(e) => accept::classify(e)?,
            };
            if let Accept::NotNow(e) = &outcome {
                let would_block = e.kind() == io::ErrorKind::WouldBlock;
                if n == 0 || !would_block {
                    self.stats.empty_accepts.count(e);
                }
                if would_block {
                    self.full_batch_in = None;
                    return Ok(()); // the queue is empty: the batch is done
                }
                continue; // a connection that vanished: the queue may hold more
            }
            self.accept_failed(outcome);
            self.full_batch_in = None;
            return Ok(());
        }
        // All it could take: the queue may hold more.
        self.full_batch_in = Some(self.turn);
        Ok(())
    }

    /// `accept` ran out of descriptors or memory (UNP: `err_sys`, the server dies).
    fn accept_failed(&mut self, outcome: Accept) {
        let Accept::OutOfResources(e) = outcome else {
            return; // connections and "not now" are the caller's
        };
        bump(&mut self.stats.out_of_resources);
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        let shed = match self.reserve.as_mut() {
            Some(reserve) if out_of_fds => reserve.shed(&*self.listener),
            _ => Err(e), // out of memory: shedding frees nothing
        };
        if let Ok(true) = shed {
            bump(&mut self.stats.shed);
        }
        let armed = self.reserve.as_ref().is_some_and(FdReserve::is_armed);
        if shed.is_err() || !armed {
            // Could not shed, or the spare is gone: stop watching the
            // listener for a while rather than spin on it (`timers` re-arms).
            let _ = self.sources.set_interest(&*self.listener, Interest::NONE);
            self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
        }
    }

    /// Posts from other workers: broadcasts, messages to one connection, closes.
    fn read_inbox(&mut self) -> io::Result<()> {
        let Some(hub) = self.hub.clone() else {
            return Ok(());
        };
        let mut posts = mem::take(&mut self.posts);
        hub.take(usize::from(self.worker), &mut posts)?;
        let max_output = self.config.max_output;
        for post in posts.drain(..) {
            match post {
                Post::All(data) => {
                    for (i, slot) in self.client.iter_mut().enumerate() {
                        if let Some(conn) = slot.as_mut().filter(|c| c.ending == Ending::Open) {
                            queue_for(conn, &data, max_output);
                            self.backlog.push(i);
                        }
                    }
                }
                Post::To(id, data) => {
                    if let Some(conn) = self.open_conn(id) {
                        queue_for(conn, &data, max_output);
                        self.backlog.push(id.index());
                    }
                }
                Post::Close(id) => {
                    if let Some(conn) = self.open_conn(id) {
                        conn.ending = Ending::Close;
                        self.backlog.push(id.index());
                    }
                }
            }
        }
        self.posts = posts;
        Ok(())
    }

    /// Connection `id` of this worker, if it is open and not ending.
    fn open_conn(&mut self, id: ConnId) -> Option<&mut Conn> {
        let conn = self.client.get_mut(id.index())?.as_mut()?;
        (conn.gen == id.gen && conn.ending == Ending::Open).then_some(conn)
    }

    fn conn_id(&self, i: usize, gen: u32) -> ConnId {
        ConnId {
            worker: self.worker,
            index: i as u32,
            gen,
        }
    }

    /// UNP: find the first free `client[i]`, save the descriptor, add it to `allset`.
    fn add_client(&mut self, fd: OwnedFd) {
        let free = self.client.iter().position(Option::is_none);
        let Some(i) = free.or_else(|| {
            // client[] grows up to max_clients instead of being allocated whole.
            (self.client.len() < self.config.max_clients).then(|| {
                self.client.push(None);
                self.state.push(None);
                self.client.len() - 1
            })
        }) else {
            return self.refuse(fd); // UNP: err_quit("too many clients")
        };
        if self.config.nodelay && matches!(*self.listener, Listener::Tcp(_)) {
            // Only latency is at stake: a failure leaves Nagle's algorithm on.
            let _ = crate::sys::set_nodelay(fd.as_fd());
        }
        if crate::sys::prepare_nosigpipe(fd.as_raw_fd()).is_err()
            || self
                .sources
                .register(FIRST_CONN + i, &fd, Interest::READ)
                .is_err()
        {
            return self.refuse(fd); // e.g. connfd >= FD_SETSIZE
        }
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        self.client[i] = Some(Conn::new(fd, gen));
        bump(&mut self.stats.accepted);
        let id = self.conn_id(i, gen);
        self.ends.clear();
        let mut ctx = Context {
            id,
            conns: &mut self.client,
            input: &[],
            borrowed: None,
            ends: &mut self.ends,
            woken: &mut self.woken,
            rewake: &mut self.rewake,
            max_output: self.config.max_output,
            hub: self.hub.as_deref(),
        };
        let protocol = &mut self.protocol;
        let state = guarded(|| protocol.connect(&mut ctx));
        if let Some(conn) = self.client[i].as_mut() {
            conn.ends.extend(self.ends.drain(..)); // a greeting's messages
        }
        self.ends.clear();
        self.backlog.append(&mut self.woken);
        match state {
            Ok(state) => {
                self.state[i] = Some(state);
                let conn = self.client[i].as_ref();
                if conn.is_some_and(|c| c.unsent() > 0 || c.ending != Ending::Open) {
                    self.backlog.push(i); // a greeting to send, or a close: next turn
                }
            }
            Err(()) => self.close(i, Close::Panic),
        }
    }

    fn refuse(&mut self, fd: OwnedFd) {
        bump(&mut self.stats.refused);
        // Reset, so the client learns at once; the descriptor is closed either way.
        let _ = crate::linger::abort(fd);
    }

    /// One connection's turn, at most once per turn of the loop: UNP's `read` and
    /// `writen`, without blocking. Then watch it for what it waits for.
    fn serve(&mut self, i: usize, readiness: Readiness) -> io::Result<()> {
        let Some(conn) = self.client[i].as_mut() else {
            return Ok(());
        };
        if conn.served_in == self.turn {
            return Ok(()); // fair turns: once per connection per turn
        }
        conn.served_in = self.turn;
        conn.parked_until = None;
        if conn.overflowed {
            self.close(i, Close::Policy);
            return Ok(());
        }
        let readable = readiness.is_read_closed() || mem::take(&mut conn.retry_read);
        // Input is delivered unless the connection is closing or its output is
        // over `max_unsent` (back-pressure); it is read unless, also, EOF came.
        let held = conn.unsent() > self.config.max_unsent;
        let can_deliver = conn.ending != Ending::Close && !held;
        let can_read = can_deliver && !conn.eof;
        let has_input = !conn.input.is_empty();
        let now = Instant::now();
        let mut parked = false;
        let mut more = false;
        let mut delivered = 0;
        if can_deliver && has_input {
            (delivered, more) = self.deliver(i, Source::Input)?;
        }
        if can_read && delivered == 0 && readable {
            match self.read(i)? {
                Read::Data(source) => (_, more) = self.deliver(i, source)?,
                Read::Park => parked = true,
                Read::Reset => {}
            }
        } else if delivered == 0 {
            // Nothing delivered and nothing read: only output to send.
            self.flush(i, &[], None)?;
            if let Some(conn) = self.client[i].as_mut() {
                if conn.ending == Ending::Close || (conn.eof && can_deliver) {
                    // Closing, or EOF with no whole message left: what is left
                    // can never be delivered (a shorter rest is dropped).
                    conn.input = Vec::new();
                }
                // Input that back-pressure held is delivered once output drains.
                more = held && !conn.input.is_empty();
            }
        }
        self.after_turn(i, now, parked, more)
    }

    /// UNP: `n = Read(sockfd, buf, MAXLINE)`, once, into the loop's buffer when the
    /// connection has no input waiting, else after its input.
    fn read(&mut self, i: usize) -> io::Result<Read> {
        let conn = self.client[i].as_mut().expect("served connection is open");
        let room = conn.read_room(self.config.max_line);
        let into_buf = conn.input.is_empty();
        let result = if into_buf {
            if self.buf.len() < room {
                self.buf.resize(room, 0);
            }
            crate::sys::recv(conn.fd.as_fd(), &mut self.buf[..room])
        } else {
            let kept = conn.input.len();
            // An exact frame's whole length at once, so a large body is not copied
            // again at every read; otherwise one read's worth.
            let need = match conn.frame {
                Frame::Exact(n) => n.saturating_sub(kept).max(room),
                _ => room,
            };
            if conn.input.try_reserve_exact(need).is_err() {
                conn.retry_read = true;
                return Ok(Read::Park);
            }
            conn.input.resize(kept + room, 0);
            let n = crate::sys::recv(conn.fd.as_fd(), &mut conn.input[kept..]);
            conn.input.truncate(kept + n.as_ref().map_or(0, |&n| n));
            n
        };
        let n = match result {
            Ok(0) => {
                conn.eof = true;
                0
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => match sort(e) {
                Ok(()) => {
                    conn.retry_read = true;
                    return Ok(Read::Park);
                }
                Err(Some(fatal)) => return Err(fatal),
                Err(None) => {
                    conn.reset = true;
                    return Ok(Read::Reset);
                }
            },
        };
        add(&mut self.stats.bytes_received, n as u64);
        Ok(Read::Data(if into_buf {
            Source::LoopBuf(n)
        } else {
            Source::Input
        }))
    }

    /// Delivers up to `messages_per_turn` messages from `source` to the protocol,
    /// sends the output once, and keeps what is left of the input. Returns how
    /// many messages were delivered and whether whole messages may be left.
    fn deliver(&mut self, i: usize, source: Source) -> io::Result<(usize, bool)> {
        let conn = self.client[i].as_mut().expect("served connection is open");
        let (eof, max_line, gen) = (conn.eof, self.config.max_line, conn.gen);
        let id = ConnId {
            worker: self.worker,
            index: i as u32,
            gen,
        };
        let mut scanned = conn.scanned;
        let input = mem::take(&mut conn.input);
        let buf = mem::take(&mut self.buf);
        let data: &[u8] = match source {
            Source::LoopBuf(n) => &buf[..n],
            Source::Input => &input,
        };
        let quota = self.config.messages_per_turn;
        let mut state = self.state[i].take();
        let mut ctx = Context {
            id,
            conns: &mut self.client,
            input: data,
            borrowed: None,
            ends: &mut self.ends,
            woken: &mut self.woken,
            rewake: &mut self.rewake,
            max_output: self.config.max_output,
            hub: self.hub.as_deref(),
        };
        ctx.ends.clear();
        let (mut pos, mut count, mut panicked) = (0, 0, false);
        while count < quota {
            let Some(conn) = ctx.conns[i].as_ref() else {
                break;
            };
            if conn.ending == Ending::Close || conn.overflowed {
                break;
            }
            let frame = conn.frame;
            if pos == data.len() && frame != Frame::Exact(0) {
                break; // nothing left to cut (the usual end of a turn)
            }
            let Some(len) = next_message(&data[pos..], frame, max_line, eof, &mut scanned) else {
                break;
            };
            let msg = &data[pos..pos + len];
            pos += len;
            count += 1;
            let Some(st) = state.as_mut() else { break };
            let protocol = &mut self.protocol;
            if guarded(|| protocol.receive(st, msg, &mut ctx)).is_err() {
                panicked = true;
                break;
            }
        }
        let borrowed = ctx.borrowed;
        self.state[i] = state;
        add(&mut self.stats.messages_received, count as u64);
        let more = count == quota && pos < data.len();
        self.backlog.append(&mut self.woken);
        // One send, while the input the output may come from is still here.
        self.flush(i, data, borrowed)?;
        // Keep what was not delivered, in the connection's own buffer.
        if let Some(conn) = self.client[i].as_mut() {
            conn.scanned = scanned;
            let rest = &data[pos..];
            if matches!(source, Source::Input) && pos == 0 {
                conn.input = input; // unchanged: no copy
            } else if !rest.is_empty() && conn.ending != Ending::Close {
                let mut kept = Vec::new();
                if kept.try_reserve_exact(rest.len()).is_ok() {
                    kept.extend_from_slice(rest);
                    conn.input = kept;
                } else {
                    conn.input = rest.to_vec();
                }
            }
        }
        self.buf = buf;
        if panicked {
            self.close(i, Close::Panic);
        }
        Ok((count, more))
    }

    /// UNP's `Writen(sockfd, buf, n)`, once and without blocking: sends the
    /// connection's queued output, or the part of `input` the protocol sent back
    /// (`borrowed`), in one `send`. What the kernel does not take stays queued.
    fn flush(
        &mut self,
        i: usize,
        input: &[u8],
        borrowed: Option<(usize, usize)>,
    ) -> io::Result<()> {
        let Some(conn) = self.client[i].as_mut() else {
            return Ok(());
        };
        let result = if let Some((s, e)) = borrowed {
            // Zero copy: straight out of the read buffer. The ends are counted
            // from `s`; the connection's queue is empty.
            let data = &input[s..e];
            let sent = send(conn, data);
            let n = *sent.as_ref().unwrap_or(&0);
            let done = self.ends.iter().take_while(|&&end| end <= n).count();
            add(&mut self.stats.messages_sent, done as u64);
            if n < data.len() {
                conn.queue(&data[n..]);
                conn.ends
                    .extend(self.ends[done..].iter().map(|&end| end - n));
                if conn.unsent() > self.config.max_output {
                    conn.overflowed = true;
                }
            }
            add(&mut self.stats.bytes_sent, n as u64);
            sent
        } else {
            conn.ends.extend(self.ends.drain(..));
            if conn.unsent() == 0 {
                return Ok(());
            }
            let sent = send(conn, conn.unsent_bytes());
            let n = *sent.as_ref().unwrap_or(&0);
            let done = conn.sent(n);
            add(&mut self.stats.messages_sent, done);
            add(&mut self.stats.bytes_sent, n as u64);
            sent
        };
        self.ends.clear();
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => match sort(e) {
                Ok(()) => {
                    // Kept, and sent when memory is back.
                    conn_park(self.client[i].as_mut(), &mut self.stats);
                    Ok(())
                }
                Err(Some(fatal)) => Err(fatal),
                Err(None) => {
                    if let Some(conn) = self.client[i].as_mut() {
                        conn.reset = true; // closed after this turn
                    }
                    Ok(())
                }
            },
        }
    }

    /// After a turn: close, or watch the connection for what it waits for.
    fn after_turn(&mut self, i: usize, now: Instant, parked: bool, more: bool) -> io::Result<()> {
        let Some(conn) = self.client[i].as_mut() else {
            return Ok(()); // closed during the turn (panic)
        };
        if conn.reset || conn.overflowed {
            let why = if conn.reset {
                Close::Reset
            } else {
                Close::Policy
            };
            self.close(i, why);
            return Ok(());
        }
        if parked {
            conn_park(Some(&mut *conn), &mut self.stats);
        }
        let unsent = conn.unsent();
        if unsent == 0 {
            conn.stalled_since = None;
            let ending = conn.ending;
            match ending {
                Ending::Close => {
                    self.close(i, Close::Protocol);
                    return Ok(());
                }
                Ending::ShutdownWrite if !conn.fin_sent => {
                    conn.fin_sent = true;
                    let _ = crate::sys::shutdown_write(conn.fd.as_fd());
                }
                _ => {}
            }
            if conn.eof && !more {
                // Everything delivered and answered (a partial message is dropped).
                self.close(i, Close::Eof);
                return Ok(());
            }
        } else {
            conn.stalled_since.get_or_insert(now);
        }
        let reading = !conn.eof && conn.ending != Ending::Close && unsent <= self.config.max_unsent;
        let mut interest = Interest::NONE;
        if conn.parked_until.is_some() {
            self.timed.push(i);
        } else {
            if reading && !more {
                interest = interest | Interest::READ;
            }
            if unsent > 0 {
                interest = interest | Interest::WRITE;
                self.timed.push(i);
            }
            if more && unsent <= self.config.max_unsent {
                self.backlog.push(i);
            }
        }
        if interest != conn.interest {
            conn.interest = interest;
            // Cannot fail: the descriptor is registered.
            let _ = self.sources.set_interest(&conn.fd, interest);
        }
        Ok(())
    }

    /// UNP: `Close(sockfd); FD_CLR(sockfd, &allset); client[i] = -1;`
    fn close(&mut self, i: usize, why: Close) {
        let Some(conn) = self.client[i].take() else {
            return;
        };
        self.sources.unregister(&conn.fd);
        bump(match why {
            Close::Eof => &mut self.stats.closed_eof,
            Close::Reset => &mut self.stats.closed_reset,
            Close::Policy => &mut self.stats.closed_policy,
            Close::Protocol => &mut self.stats.closed_protocol,
            Close::Panic => &mut self.stats.closed_panic,
        });
        let id = self.conn_id(i, conn.gen);
        drop(conn); // closes the descriptor
        if let Some(state) = self.state[i].take() {
            let protocol = &mut self.protocol;
            let _ = guarded(|| protocol.disconnect(state, id));
        }
    }

    /// At shutdown: every connection is closed (and the protocol told).
    fn close_all(&mut self) {
        for i in 0..self.client.len() {
            if let Some(conn) = self.client[i].take() {
                self.sources.unregister(&conn.fd);
                bump(&mut self.stats.closed_shutdown);
                let id = self.conn_id(i, conn.gen);
                drop(conn);
                if let Some(state) = self.state[i].take() {
                    let protocol = &mut self.protocol;
                    let _ = guarded(|| protocol.disconnect(state, id));
                }
            }
        }
    }

    /// Deadlines: closes connections whose output stayed unsent past the write
    /// timeout, brings parked ones back, re-arms the listener after its back-off.
    /// Returns the next deadline, if any.
    fn timers(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));

        if let Some(hub) = &self.hub {
            // Inbox wake-ups that could not be written: again, until they are.
            self.rewake.sort_unstable();
            self.rewake.dedup();
            self.rewake.retain(|&w| !hub.wake(w));
            if !self.rewake.is_empty() {
                soonest(now + RESOURCE_BACKOFF);
            }
        }

        if let Some(until) = self.accept_paused_until {
            if now >= until {
                self.accept_paused_until = None;
                if !self.reserve.as_ref().is_some_and(FdReserve::is_armed) {
                    self.reserve = FdReserve::new().ok(); // re-arm if fds are back
                }
                let _ = self.sources.set_interest(&*self.listener, Interest::READ);
            } else {
                soonest(until);
            }
        }

        let mut timed = mem::take(&mut self.timed);
        timed.sort_unstable();
        timed.dedup();
        for i in timed {
            let Some(conn) = self.client[i].as_mut() else {
                continue; // closed since
            };
            if let Some(until) = conn.parked_until {
                if now >= until {
                    conn.parked_until = None;
                    self.backlog.push(i); // retry what failed, next turn
                } else {
                    soonest(until);
                    self.timed.push(i);
                }
            } else if let Some(since) = conn.stalled_since {
                match since.checked_add(self.config.write_timeout) {
                    Some(due) if now >= due => self.close(i, Close::Policy),
                    Some(due) => {
                        soonest(due);
                        self.timed.push(i);
                    }
                    // A timeout too long to add to an Instant never expires.
                    None => self.timed.push(i),
                }
            }
        }
        next
    }
}

/// One `send(2)` without `SIGPIPE`.
fn send(conn: &Conn, data: &[u8]) -> io::Result<usize> {
    crate::sys::send_nosignal(conn.fd.as_raw_fd(), data)
}

/// Out of kernel memory: serve the connection again after the back-off.
fn conn_park(conn: Option<&mut Conn>, stats: &mut Stats) {
    if let Some(conn) = conn {
        if conn.parked_until.is_none() {
            conn.parked_until = Some(Instant::now() + RESOURCE_BACKOFF);
            bump(&mut stats.backoffs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let os = io::Error::from_raw_os_error;
        assert!(sort(os(libc::ENOMEM)).is_ok());
        assert!(sort(os(libc::ENOBUFS)).is_ok());
        assert!(matches!(sort(os(libc::EBADF)), Err(Some(_))));
        assert!(matches!(sort(os(libc::ECONNRESET)), Err(None)));
        assert!(matches!(sort(os(libc::ETIMEDOUT)), Err(None)));
        assert!(matches!(sort(os(libc::EPIPE)), Err(None)));
    }
}
