//! The loop itself: `tcpservselect01`'s `for ( ; ; )`, step by step, over
//! [`Sources`] that wait with select(2) or poll(2).

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{next_message, Ending, Stage};
use super::dial::ConnectError;
use super::hub::{Hub, Post};
use super::protocol::{end_message, CloseReason, ConnId, Context, Frame, Protocol};
use super::stats::{add, bump, Published, Stats};
use super::table::Table;
use super::timers::Timer;
use super::totals::Totals;
use super::{Config, Listener, ShutdownHandle, Stop, ACCEPT_BACKOFF, RESOURCE_BACKOFF};
use crate::accept::{self, Accept, FdReserve};
use crate::poll::{poll, PollFd, PollFlags};
use crate::sources::{Backend, Events, Interest, Readiness, Sources};

/// The listener's key in the loop's [`Sources`]; connection `i` is `FIRST_CONN + i`.
const LISTENER: usize = 0;
/// This worker's shutdown waker's key.
const WAKE: usize = 1;
/// The key of this worker's inbox (posts from other workers).
const INBOX: usize = 2;
const FIRST_CONN: usize = 3;

/// What to do after an error of `recv` or `send`: `Ok(())` to back off and retry
/// (`ENOMEM`, `ENOBUFS`), `Err(None)` to close the connection, `Err(Some(e))` when
/// the server itself is broken (see [`broken`]).
fn sort(e: io::Error) -> Result<(), Option<io::Error>> {
    match e.raw_os_error() {
        Some(libc::ENOMEM | libc::ENOBUFS) => Ok(()),
        _ if broken(&e) => Err(Some(e)),
        // ECONNRESET, EPIPE, ETIMEDOUT, ENOTCONN, EHOSTUNREACH, ENETDOWN, EIO, …:
        // this connection is over, whatever the reason.
        _ => Err(None),
    }
}

/// An error of a call on a connection's descriptor that says the server itself is
/// broken: the descriptor is not the socket the loop holds (`EBADF`, `ENOTSOCK`),
/// or the call is wrong (`EFAULT`, `EINVAL`). The loop stops.
fn broken(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EFAULT | libc::EINVAL | libc::ENOTSOCK)
    )
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
    /// What all workers count together.
    pub(super) totals: Arc<Totals>,
}

/// The listener's state: the accept batch, and the back-off after running out of
/// descriptors.
struct Accepting {
    reserve: Option<FdReserve>,
    paused_until: Option<Instant>,
    /// How many connections the next readiness of the listener may accept (see
    /// `accept_some`), and the turn whose batch took all it could.
    quota: usize,
    full_batch_in: Option<u64>,
}

/// One worker's loop.
pub(super) struct Loop<P: Protocol> {
    index: u16,
    listener: Arc<Listener>,
    protocol: P,
    config: Config,
    shutdown: ShutdownHandle,
    stats_slot: Arc<Published>,
    /// Scratch: what the inbox held.
    posts: Vec<Post>,
    /// A duplicate of this worker's wake-up socket below `FD_SETSIZE`, watched
    /// when the waker's own descriptor is too high for select.
    wake: Option<UnixStream>,
    sources: Sources<usize>,
    events: Events<usize>,
    accepting: Accepting,
    /// UNP's `client[]` and what the protocol touches.
    table: Table,
    /// The protocol's state of each connection, by the same index.
    state: Vec<Option<P::Conn>>,
    /// Connections with work left (messages buffered, output from others, a
    /// stream to go on), served next turn without waiting (UNP 6.8's
    /// `readlinebuf` check).
    backlog: Vec<usize>,
    /// Connections that would read, held while all output together is over
    /// `max_output_total`.
    held: Vec<usize>,
    /// This turn: all output together is over `max_output_total`.
    over_total: bool,
    /// Draining after a shutdown request, until this instant (`None` if the
    /// deadline is too far to add to an `Instant`: drain until done).
    draining: Option<Option<Instant>>,
    /// The turn number, so that no connection is served twice in one turn.
    turn: u64,
    /// UNP's `char buf[MAXLINE]`: every read goes here first.
    buf: Vec<u8>,
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
            totals,
        } = worker;
        // Made now, so that epoll_create1's or kqueue's error is its own.
        let mut sources = Sources::try_new(backend)?;
        sources
            .register_owned(LISTENER, &listener, Interest::READ)
            .map_err(|e| match e.kind() {
                // Too high for select: an error of ours, without an errno; say
                // which descriptor. Anything else keeps its errno as it is.
                io::ErrorKind::InvalidInput => {
                    let fd = listener.as_fd().as_raw_fd();
                    io::Error::new(e.kind(), format!("the listener (descriptor {fd}): {e}"))
                }
                _ => e,
            })?;
        let wake = Self::watch_wake(shutdown.waker(usize::from(index)).as_fd(), &mut sources)?;
        if let Some(hub) = &hub {
            let inbox = &hub.inbox(usize::from(index)).waker;
            sources.register_owned(INBOX, inbox, Interest::READ)?;
        }
        Ok(Loop {
            index,
            listener,
            protocol,
            stats_slot: stats,
            posts: Vec::new(),
            wake,
            sources,
            events: Events::new(),
            accepting: Accepting {
                // Without a spare descriptor the server still runs; it backs off.
                reserve: FdReserve::new().ok(),
                paused_until: None,
                quota: 1,
                full_batch_in: None,
            },
            table: Table::new(index, hub, &config, totals, shutdown.clone()),
            shutdown,
            config,
            state: Vec::new(),
            backlog: Vec::new(),
            held: Vec::new(),
            over_total: false,
            draining: None,
            turn: 0,
            buf: Vec::new(),
        })
    }

    /// Registers the wake-up socket. It was made when the server was, and may have
    /// got a descriptor too high for select then (low ones busy): the loop then
    /// watches a duplicate, which takes the lowest free descriptor now.
    fn watch_wake(
        waker: BorrowedFd<'_>,
        sources: &mut Sources<usize>,
    ) -> io::Result<Option<UnixStream>> {
        let Err(e) = sources.register_owned(WAKE, &waker, Interest::READ) else {
            return Ok(None);
        };
        if e.kind() != io::ErrorKind::InvalidInput {
            return Err(e); // the kernel's (ENOMEM, …): its errno kept
        }
        let dup = UnixStream::from(waker.try_clone_to_owned()?);
        sources
            .register_owned(WAKE, &dup, Interest::READ)
            .map_err(|_| {
                let fd = waker.as_raw_fd();
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

    /// This worker's wake-up socket (or the duplicate it watches).
    fn wake_fd(&self) -> BorrowedFd<'_> {
        match &self.wake {
            Some(dup) => dup.as_fd(),
            None => self.shutdown.waker(usize::from(self.index)).as_fd(),
        }
    }

    /// Runs the loop until shutdown. Whatever ends it, every connection still open
    /// is closed and the protocol told.
    pub(super) fn run(mut self) -> io::Result<Stats> {
        let mut events = mem::take(&mut self.events);
        let result = loop {
            match self.turn(&mut events) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if !self.table.dialed.is_empty() {
            self.watch_dialed(); // counted as connected before they are closed
        }
        self.close_all();
        self.stats_slot.store(&self.table.stats);
        result.map(|()| self.table.stats)
    }

    /// One turn of UNP's `for ( ; ; )`; `false` when the loop is to stop.
    fn turn(&mut self, events: &mut Events<usize>) -> io::Result<bool> {
        match self.shutdown.stop() {
            Stop::No => {}
            Stop::Now => return Ok(false),
            Stop::Drain if self.config.drain_timeout.is_zero() => return Ok(false),
            Stop::Drain if self.draining.is_none() => self.begin_drain(),
            Stop::Drain => {}
        }
        if let Some(until) = self.draining {
            let over = until.is_some_and(|u| Instant::now() >= u);
            if self.table.open == 0 || over {
                return Ok(false);
            }
        }
        self.turn += 1;
        self.over_total = self.table.totals.over();
        let timeout = if self.backlog.is_empty() {
            self.next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO) // buffered work: do not sleep
        };
        // UNP: rset = allset; nready = Select(maxfd + 1, &rset, NULL, NULL, NULL);
        if let Err(e) = self.sources.wait_interruptible(events, timeout) {
            wait_failed(e, &mut self.table.stats)?;
            return Ok(true);
        }
        if events
            .iter()
            .any(|(&key, readiness)| key == WAKE && !readiness.is_invalid())
        {
            // A shutdown request: read it, and look at what it asks next turn.
            let _ = match &self.wake {
                Some(dup) => crate::sources::waker_reset(dup),
                None => self.shutdown.waker(usize::from(self.index)).reset(),
            };
            return Ok(true);
        }
        // What earlier turns left, served after this turn's ready descriptors, so
        // that a connection with both gets its readiness.
        let backlog = mem::take(&mut self.backlog);
        // Posts from other workers first: a broadcast made before a connection
        // arrived must not reach it, if both are ready now.
        if events.iter().any(|(&key, _)| key == INBOX) {
            self.read_inbox()?;
        }
        // UNP: if (FD_ISSET(listenfd, &rset)) { connfd = Accept(…); … }
        // then for each client: if (FD_ISSET(sockfd, &rset)) { … }
        for (&key, readiness) in &*events {
            if readiness.is_invalid() {
                // Only the server closes its descriptors: its state is broken.
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            match key {
                LISTENER => self.accept_some()?,
                INBOX | WAKE => {}
                _ => self.serve(key - FIRST_CONN, readiness)?,
            }
        }
        // UNP 6.8: serve what is already in our buffers before sleeping again.
        for i in backlog {
            self.serve(i, Readiness::EMPTY)?;
        }
        if !self.held.is_empty() {
            if self.table.totals.over() {
                self.held.sort_unstable();
                self.held.dedup();
            } else {
                self.backlog.append(&mut self.held);
            }
        }
        self.timers();
        if !self.table.dialed.is_empty() {
            self.watch_dialed();
        }
        self.stats_slot.store(&self.table.stats); // live counters: relaxed stores
        Ok(true)
    }

    /// The first shutdown request: stop accepting and reading; every connection is
    /// served once more, to be closed when its output is sent.
    fn begin_drain(&mut self) {
        let until = Instant::now().checked_add(self.config.drain_timeout);
        self.draining = Some(until);
        let _ = self.sources.set_interest(&*self.listener, Interest::NONE);
        self.accepting.paused_until = None;
        for i in 0..self.table.client.len() {
            match self.table.client[i].as_ref().map(|c| c.stage) {
                None => {}
                // Nothing to deliver on these: they go now, so that the drain
                // ends when the last connection's output is out.
                Some(Stage::Watched | Stage::Connecting) => self.close(i, CloseReason::Shutdown),
                Some(_) => self.backlog.push(i),
            }
        }
    }

    /// The soonest of every deadline: timers, the listener's back-off, the end of
    /// a drain, a retry.
    fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.table.timers.next();
        let mut soonest = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
        };
        soonest(self.accepting.paused_until);
        soonest(self.draining.flatten());
        if !self.table.rewake.is_empty() || !self.held.is_empty() {
            soonest(Some(Instant::now() + RESOURCE_BACKOFF));
        }
        next
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
        if self.draining.is_some() {
            return Ok(());
        }
        if let Some(delay) = self.config.accept_delay {
            // UNP 16.6's sleep(5), the race window; a shutdown ends it.
            let mut wake = [PollFd::from_fd(&self.wake_fd(), PollFlags::POLLIN)];
            if matches!(poll(&mut wake, Some(delay)), Ok(n) if n > 0) {
                return Ok(());
            }
        }
        let a = &mut self.accepting;
        if !self.config.nonblocking_listener {
            // A second accept on a blocking listener would sleep until the next
            // connection, freezing every client: one per readiness, as the book.
            a.quota = 1;
        } else if a.full_batch_in == Some(self.turn.wrapping_sub(1)) {
            a.quota = (a.quota * 2).min(self.config.accept_batch);
        } else {
            a.quota = 1;
        }
        for n in 0..self.accepting.quota {
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
                    self.table.stats.empty_accepts.count(e);
                }
                if would_block {
                    self.accepting.full_batch_in = None;
                    return Ok(()); // the queue is empty: the batch is done
                }
                continue; // a connection that vanished: the queue may hold more
            }
            self.accept_failed(outcome);
            self.accepting.full_batch_in = None;
            return Ok(());
        }
        // All it could take: the queue may hold more.
        self.accepting.full_batch_in = Some(self.turn);
        Ok(())
    }

    /// `accept` ran out of descriptors or memory (UNP: `err_sys`, the server dies).
    fn accept_failed(&mut self, outcome: Accept) {
        let Accept::OutOfResources(e) = outcome else {
            return; // connections and "not now" are the caller's
        };
        bump(&mut self.table.stats.out_of_resources);
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        let a = &mut self.accepting;
        let shed = match a.reserve.as_mut() {
            Some(reserve) if out_of_fds => reserve.shed(&*self.listener),
            _ => Err(e), // out of memory: shedding frees nothing
        };
        if let Ok(true) = shed {
            bump(&mut self.table.stats.shed);
        }
        let armed = a.reserve.as_ref().is_some_and(FdReserve::is_armed);
        if shed.is_err() || !armed {
            // Could not shed, or the spare is gone: stop watching the
            // listener for a while rather than spin on it (`timers` re-arms).
            let _ = self.sources.set_interest(&*self.listener, Interest::NONE);
            a.paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
        }
    }

    /// Posts from other workers: broadcasts, messages to one connection, closes.
    fn read_inbox(&mut self) -> io::Result<()> {
        let Some(hub) = self.table.hub.clone() else {
            return Ok(());
        };
        let mut posts = mem::take(&mut self.posts);
        hub.take(usize::from(self.index), &mut posts)?;
        let max_output = self.config.max_output;
        for post in posts.drain(..) {
            match post {
                Post::All(data) => {
                    self.table.queue_all(None, &data);
                }
                Post::To(id, data) => {
                    let totals = Arc::clone(&self.table.totals);
                    if let Some(conn) = self.table.open_conn(id) {
                        conn.out.copy(&data);
                        end_message(conn, max_output);
                        // Counted at once, as the inbox stops counting it.
                        let unsent = conn.unsent();
                        totals.charge(&mut conn.charged, unsent);
                        self.backlog.push(id.index());
                    }
                }
                Post::Close(id) => {
                    if let Some(conn) = self.table.open_conn(id) {
                        conn.ending = Ending::Close;
                        self.backlog.push(id.index());
                    }
                }
            }
        }
        self.backlog.append(&mut self.table.woken);
        self.posts = posts;
        Ok(())
    }

    /// UNP: find the first free `client[i]`, save the descriptor, add it to `allset`.
    fn add_client(&mut self, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        let (i, id) = match self.table.insert(fd) {
            Ok(entry) => entry,
            Err(fd) => return self.refuse(fd), // UNP: err_quit("too many clients")
        };
        self.fit_state();
        let conn = self.table.client[i].as_ref().expect("just inserted");
        if self.config.nodelay && matches!(*self.listener, Listener::Tcp(_)) {
            // Only latency is at stake: a failure leaves Nagle's algorithm on.
            let _ = crate::sys::set_nodelay(conn.fd.as_fd());
        }
        if crate::sys::prepare_nosigpipe(raw).is_err()
            || self
                .sources
                .register_owned(FIRST_CONN + i, &conn.fd, Interest::READ)
                .is_err()
        {
            let conn = self.table.remove(i).expect("just inserted");
            return self.refuse(conn.fd); // e.g. connfd >= FD_SETSIZE
        }
        bump(&mut self.table.stats.accepted);
        self.greet(i, id);
    }

    /// The protocol's state for connection `i` (UNP: the client is in `client[]`
    /// now): its [`Protocol::connect`], and its idle time-out starts.
    fn greet(&mut self, i: usize, id: ConnId) {
        let table = &mut self.table;
        table.now = Instant::now();
        let idle = self
            .config
            .idle_timeout
            .and_then(|t| table.now.checked_add(t));
        table.set_timer(id, Timer::Idle, idle);
        if let Some(conn) = table.client[i].as_mut() {
            conn.stage = Stage::Open;
        }
        let mut ctx = Context::new(table, id, &[]);
        let protocol = &mut self.protocol;
        let state = guarded(|| protocol.connect(&mut ctx));
        self.backlog.append(&mut self.table.woken);
        match state {
            Ok(state) => {
                self.state[i] = Some(state);
                let conn = self.table.client[i].as_ref();
                if conn.is_some_and(|c| c.unsent() > 0 || c.ending != Ending::Open) {
                    self.backlog.push(i); // a greeting to send, or a close: next turn
                }
            }
            Err(()) => self.close(i, CloseReason::Panic),
        }
    }

    /// `state[]` as long as `client[]`.
    fn fit_state(&mut self) {
        let n = self.table.client.len();
        if self.state.len() < n {
            self.state.resize_with(n, || None);
        }
    }

    /// Watches the connections the protocol opened or adopted this turn: a
    /// connect in progress for writable (UNP 16.3), under its connect time-out;
    /// an established one is greeted at its turn.
    fn watch_dialed(&mut self) {
        self.fit_state();
        for i in mem::take(&mut self.table.dialed) {
            let table = &mut self.table;
            let Some(generation) = table.client[i].as_ref().map(|c| c.generation) else {
                continue;
            };
            let id = table.conn_id(i, generation);
            let conn = table.client[i].as_mut().expect("looked up");
            let connecting = conn.stage == Stage::Connecting;
            let interest = match conn.stage {
                Stage::Connecting => Interest::WRITE,
                Stage::Watched => conn.interest,
                _ => Interest::READ,
            };
            if let Err(e) = self
                .sources
                .register_owned(FIRST_CONN + i, &conn.fd, interest)
            {
                if conn.stage == Stage::Watched {
                    self.table.remove(i); // closed: the protocol sees no more `ready`
                } else {
                    self.fail_dial(i, id, ConnectError::from(e));
                }
                continue;
            }
            conn.interest = interest;
            if conn.stage == Stage::Watched {
                continue;
            }
            if connecting {
                let at = Instant::now().checked_add(self.config.connect_timeout);
                table.set_timer(id, Timer::Connect, at);
            } else {
                bump(&mut table.stats.connected);
                self.backlog.push(i);
            }
        }
    }

    /// A connect in progress reported writable (or failed): `SO_ERROR` says how
    /// it ended (UNP 16.3). Returns whether it is established; an error if the
    /// server is broken (`getsockopt` itself failed as a `recv` would stop it).
    fn finish_connect(&mut self, i: usize) -> io::Result<bool> {
        let table = &mut self.table;
        let Some(generation) = table.client[i].as_ref().map(|c| c.generation) else {
            return Ok(false);
        };
        let id = table.conn_id(i, generation);
        let conn = table.client[i].as_mut().expect("looked up");
        let error = match crate::sys::take_socket_error(conn.fd.as_fd()) {
            Ok(None) => None,
            Err(e) if broken(&e) => return Err(e),
            Ok(Some(e)) | Err(e) => Some(e),
        };
        if let Some(e) = error {
            self.fail_dial(i, id, ConnectError::from(e));
            return Ok(false);
        }
        conn.stage = Stage::Made;
        if self.config.nodelay {
            let _ = crate::sys::set_nodelay(conn.fd.as_fd());
        }
        table.set_timer(id, Timer::Connect, None);
        bump(&mut table.stats.connected);
        Ok(true)
    }

    /// A connection the protocol opened was not established: it goes (with its
    /// partner, once that one's output is sent), and the protocol hears why.
    fn fail_dial(&mut self, i: usize, id: ConnId, error: ConnectError) {
        let Some(conn) = self.table.remove(i) else {
            return;
        };
        self.sources.unregister(&conn.fd);
        bump(&mut self.table.stats.connect_failed);
        self.close_partner(conn.partner());
        drop(conn);
        let protocol = &mut self.protocol;
        let _ = guarded(|| protocol.connect_failed(id, error));
    }

    /// The partner of a connection that went closes once its output is sent.
    fn close_partner(&mut self, partner: Option<ConnId>) {
        if let Some(conn) = partner.and_then(|p| self.table.get_mut(p)) {
            conn.link_mut().partner = None;
            if conn.ending != Ending::Close {
                conn.ending = Ending::Close;
                self.backlog.push(partner.expect("looked up").index());
            }
        }
    }

    /// Connection `i`'s output is within `max_unsent`: a partner whose input
    /// waited on it is served again.
    #[cold]
    fn wake_partner(&mut self, i: usize) {
        let max_unsent = self.config.max_unsent;
        let Some(conn) = self.table.client[i].as_ref() else {
            return;
        };
        let Some(p) = conn.partner().filter(|_| conn.unsent() <= max_unsent) else {
            return;
        };
        if let Some(partner) = self.table.get_mut(p).filter(|c| c.waits_for_partner()) {
            partner.link_mut().waits_for_partner = false;
            self.backlog.push(p.index());
        }
    }

    /// Whether connection `i`'s partner holds more than `max_unsent` unsent bytes
    /// (then `i` is not read).
    fn partner_full(&self, i: usize) -> bool {
        let partner = self.table.client[i].as_ref().and_then(|c| c.partner());
        let Some(p) = partner else {
            return false;
        };
        let conn = self.table.client.get(p.index()).and_then(Option::as_ref);
        conn.is_some_and(|c| c.generation == p.generation && c.unsent() > self.config.max_unsent)
    }

    fn refuse(&mut self, fd: OwnedFd) {
        bump(&mut self.table.stats.refused);
        // Reset, so the client learns at once; the descriptor is closed either way.
        let _ = crate::linger::abort(fd);
    }

    /// One connection's turn, at most once per turn of the loop: UNP's `read` and
    /// `writen`, without blocking. Then watch it for what it waits for.
    fn serve(&mut self, i: usize, readiness: Readiness) -> io::Result<()> {
        let now = Instant::now();
        self.table.now = now;
        let Some(conn) = self.table.client[i].as_mut() else {
            return Ok(());
        };
        if conn.served_in == self.turn {
            return Ok(()); // fair turns: once per connection per turn
        }
        conn.served_in = self.turn;
        if conn.deadline(Timer::Park).is_set() {
            self.unpark(i);
        }
        let conn = self.table.client[i]
            .as_mut()
            .expect("served connection is open");
        let (stage, generation, linked) = (conn.stage, conn.generation, conn.link.is_some());
        if stage == Stage::Watched {
            self.serve_watch(i, readiness);
            return Ok(());
        }
        match stage {
            // Woken (output queued for it) before its connect ended: wait on.
            Stage::Connecting if readiness.is_empty() => return Ok(()),
            Stage::Connecting if !self.finish_connect(i)? => return Ok(()),
            Stage::Open => {}
            _ => {
                let id = self.table.conn_id(i, generation);
                self.greet(i, id);
            }
        }
        let partner_full = linked && self.partner_full(i); // no link, no partner
        let Some(conn) = self.table.client[i].as_mut() else {
            return Ok(()); // the protocol panicked in `connect`
        };
        if conn.overflowed {
            self.close(i, CloseReason::MaxOutput);
            return Ok(());
        }
        let readable = readiness.is_read_closed() || mem::take(&mut conn.retry_read);
        // A streamed reply goes on once its output is down to the low-water mark.
        let low_water = self.config.max_unsent / 2;
        if conn.streaming && conn.ending != Ending::Close && conn.unsent() <= low_water {
            conn.streaming = false;
            self.callback(i, |p, state, ctx| p.drained(state, ctx));
        }
        let Some(conn) = self.table.client[i].as_mut() else {
            return Ok(()); // the protocol panicked
        };
        // Input is delivered unless the connection is closing, streams a reply, or
        // its output is over `max_unsent` (back-pressure), or the server drains or
        // is over its total; it is read unless, also, EOF came.
        let held = (conn.unsent() > self.config.max_unsent && conn.partner().is_none())
            || partner_full
            || conn.streaming
            || self.over_total
            || self.draining.is_some();
        let can_deliver = conn.ending != Ending::Close && !held;
        let can_read = can_deliver && !conn.eof;
        let mut parked = false;
        let mut delivered = 0;
        if can_deliver && !conn.input.is_empty() {
            delivered = self.deliver(i, Source::Input)?;
        }
        if can_read && delivered == 0 && readable {
            match self.read(i)? {
                Read::Data(source) => {
                    self.deliver(i, source)?;
                }
                Read::Park => parked = true,
                Read::Reset => {}
            }
        } else if delivered == 0 {
            // Nothing delivered and nothing read: only output to send.
            self.flush(i, &[], None)?;
        }
        self.after_turn(i, parked);
        Ok(())
    }

    /// UNP: `n = Read(sockfd, buf, MAXLINE)`, once, into the loop's buffer when the
    /// connection has no input waiting, else after its input.
    #[inline(always)] // once per echo turn: no call
    fn read(&mut self, i: usize) -> io::Result<Read> {
        let conn = self.table.client[i]
            .as_mut()
            .expect("served connection is open");
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
        add(&mut self.table.stats.bytes_received, n as u64);
        Ok(Read::Data(if into_buf {
            Source::LoopBuf(n)
        } else {
            Source::Input
        }))
    }

    /// Delivers messages from `source` to the protocol, up to
    /// [`Config::input_per_turn`] bytes of input, and while the connection's
    /// unsent output stays within `max_unsent` (back-pressure per message); sends
    /// the output once, and keeps what is left of the input. Returns how many
    /// messages were delivered.
    fn deliver(&mut self, i: usize, source: Source) -> io::Result<usize> {
        let conn = self.table.client[i]
            .as_mut()
            .expect("served connection is open");
        let (eof, max_line, generation) = (conn.eof, self.config.max_line, conn.generation);
        let mut scanned = conn.scanned;
        let input = mem::take(&mut conn.input);
        let buf = mem::take(&mut self.buf);
        let data: &[u8] = match source {
            Source::LoopBuf(n) => &buf[..n],
            Source::Input => &input,
        };
        let (byte_quota, message_quota) =
            (self.config.input_per_turn, self.config.messages_per_turn);
        let max_unsent = self.config.max_unsent;
        let id = self.table.conn_id(i, generation);
        let mut state = self.state[i].take();
        let mut ctx = Context::new(&mut self.table, id, data);
        // `used` counts each message as at least one byte, so empty messages
        // (`Frame::Exact(0)`) end too.
        let (mut pos, mut used, mut count, mut panicked, mut stopped) = (0, 0, 0, false, false);
        while let Some(conn) = ctx.table.client[i].as_ref() {
            let frame = conn.frame;
            if pos == data.len() && frame != Frame::Exact(0) {
                break; // nothing left to cut (the usual end of a turn)
            }
            // The quota, closing, a stream, back-pressure: the rest waits.
            if used >= byte_quota
                || count >= message_quota
                || conn.ending == Ending::Close
                || conn.overflowed
                || conn.streaming
                || (conn.unsent() > max_unsent && conn.partner().is_none())
            {
                stopped = true;
                break;
            }
            let Some(len) = next_message(&data[pos..], frame, max_line, eof, &mut scanned) else {
                break;
            };
            let msg = &data[pos..pos + len];
            pos += len;
            used += len.max(1);
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
        add(&mut self.table.stats.messages_received, count as u64);
        if count > 0 {
            self.active(i);
        }
        self.backlog.append(&mut self.table.woken);
        // One send, while the input the output may come from is still here.
        self.flush(i, data, borrowed)?;
        // Keep what was not delivered, in the connection's own buffer.
        if let Some(conn) = self.table.client[i].as_mut() {
            conn.scanned = scanned;
            conn.pending = stopped && pos < data.len();
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
            self.close(i, CloseReason::Panic);
        }
        Ok(count)
    }

    /// Calls the protocol for connection `i` outside a message (a stream's next
    /// piece, a timer); its output is sent at the connection's turn.
    fn callback(&mut self, i: usize, f: impl FnOnce(&mut P, &mut P::Conn, &mut Context<'_>)) {
        let Some(generation) = self.table.client[i].as_ref().map(|c| c.generation) else {
            return;
        };
        let Some(mut state) = self.state[i].take() else {
            return;
        };
        self.table.now = Instant::now();
        let id = self.table.conn_id(i, generation);
        let mut ctx = Context::new(&mut self.table, id, &[]);
        let protocol = &mut self.protocol;
        let result = guarded(|| f(protocol, &mut state, &mut ctx));
        self.state[i] = Some(state);
        self.backlog.append(&mut self.table.woken);
        if result.is_err() {
            self.close(i, CloseReason::Panic);
        }
    }

    /// Connection `i` delivered a message or sent output: its idle time-out starts
    /// again.
    fn active(&mut self, i: usize) {
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        let table = &mut self.table;
        if let Some(generation) = table.client[i].as_ref().map(|c| c.generation) {
            let at = table.now.checked_add(timeout);
            table.set_timer(table.conn_id(i, generation), Timer::Idle, at);
        }
    }

    /// UNP's `Writen(sockfd, buf, n)`, once and without blocking: sends the
    /// connection's queued output, or the part of `input` the protocol sent back
    /// (`borrowed`), in one `send` (or one `sendmsg` of its pieces). What the
    /// kernel does not take stays queued.
    fn flush(
        &mut self,
        i: usize,
        input: &[u8],
        borrowed: Option<(usize, usize)>,
    ) -> io::Result<()> {
        let table = &mut self.table;
        let Some(conn) = table.client[i].as_mut() else {
            return Ok(());
        };
        let result = if let Some((s, e)) = borrowed {
            // Zero copy: straight out of the read buffer. The ends are counted
            // from `s`; the connection's queue is empty.
            let data = &input[s..e];
            let sent = crate::sys::send_nosignal(conn.fd.as_raw_fd(), data);
            let n = *sent.as_ref().unwrap_or(&0);
            let done = table.ends.iter().take_while(|&&end| end <= n).count();
            add(&mut table.stats.messages_sent, done as u64);
            if n < data.len() {
                let base = conn.out.queued();
                conn.out.copy(&data[n..]);
                for &end in &table.ends[done..] {
                    conn.out.end_at(base + (end - n) as u64);
                }
            }
            sent
        } else {
            if conn.unsent() == 0 {
                return Ok(());
            }
            conn.out.send(conn.fd.as_fd()).map(|(n, done)| {
                add(&mut table.stats.messages_sent, done);
                n
            })
        };
        table.ends.clear();
        let n = *result.as_ref().unwrap_or(&0);
        add(&mut table.stats.bytes_sent, n as u64);
        if n > 0 {
            self.active(i);
            let table = &mut self.table;
            if let Some(generation) = table.client[i]
                .as_ref()
                .filter(|c| c.partner().is_some())
                .map(|c| c.generation)
            {
                let id = table.conn_id(i, generation);
                table.set_timer(id, Timer::Write, None);
            }
        }
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => match sort(e) {
                Ok(()) => {
                    self.park(i); // kept, and sent when memory is back
                    Ok(())
                }
                Err(Some(fatal)) => Err(fatal),
                Err(None) => {
                    if let Some(conn) = self.table.client[i].as_mut() {
                        conn.reset = true; // closed after this turn
                    }
                    Ok(())
                }
            },
        }
    }

    /// Out of kernel memory: serve the connection again after the back-off.
    fn park(&mut self, i: usize) {
        let table = &mut self.table;
        let Some(conn) = table.client[i].as_mut() else {
            return;
        };
        if !conn.deadline(Timer::Park).is_set() {
            let generation = conn.generation;
            bump(&mut table.stats.backoffs);
            let id = table.conn_id(i, generation);
            table.set_timer(id, Timer::Park, Some(Instant::now() + RESOURCE_BACKOFF));
        }
    }

    /// Connection `i` is served: a back-off it waited on is over.
    #[cold]
    fn unpark(&mut self, i: usize) {
        if let Some(generation) = self.table.client[i].as_ref().map(|c| c.generation) {
            let id = self.table.conn_id(i, generation);
            self.table.set_timer(id, Timer::Park, None);
        }
    }

    /// After a turn: close, or watch the connection for what it waits for.
    #[inline]
    fn after_turn(&mut self, i: usize, parked: bool) {
        if !parked && self.settled(i) {
            return; // the usual echo turn: all sent, watched for input already
        }
        self.settle(i, parked);
    }

    /// Whether connection `i` needs nothing after its turn: open, alone, with no
    /// input left, nothing unsent or charged, no timer of its own, already
    /// watched for reading only, while the server reads (what [`settle`](Self::settle)
    /// would leave as it is).
    #[inline]
    fn settled(&self, i: usize) -> bool {
        let Some(c) = self.table.client[i].as_ref() else {
            return false;
        };
        c.unsent() == 0
            && c.charged == 0
            && c.interest == Interest::READ
            && c.ending == Ending::Open
            && !(c.eof || c.pending || c.reset || c.overflowed || c.streaming)
            && c.link.is_none() // no partner, not waiting for one
            && !c.deadlines[Timer::Write as usize].is_set()
            && !c.deadlines[Timer::Park as usize].is_set()
            && !self.over_total
            && self.draining.is_none()
    }

    /// After a turn that left something to do: close, or watch the connection
    /// for what it waits for.
    fn settle(&mut self, i: usize, parked: bool) {
        if parked {
            self.park(i);
        }
        let Some(conn) = self.table.client[i].as_ref() else {
            return; // closed during the turn (panic)
        };
        let (eof, paired) = (conn.eof && !conn.eof_told, conn.partner().is_some());
        if eof {
            self.tell_end_of_input(i);
        }
        if paired {
            self.wake_partner(i);
        }
        let partner_full = paired && self.partner_full(i);
        let Table {
            client,
            timers,
            now,
            totals,
            ..
        } = &mut self.table;
        let Some(conn) = client[i].as_mut() else {
            return; // closed during the turn (panic)
        };
        if conn.reset {
            return self.close(i, CloseReason::Reset);
        }
        if conn.overflowed {
            return self.close(i, CloseReason::MaxOutput);
        }
        let unsent = conn.unsent();
        totals.charge(&mut conn.charged, unsent);
        let max_unsent = self.config.max_unsent;
        if let Some(link) = conn.link.as_mut() {
            link.waits_for_partner = partner_full; // a partner has a link
        }
        if conn.ending == Ending::Close {
            conn.streaming = false; // closing ends a stream
        }
        let (generation, draining) = (conn.generation, self.draining.is_some());
        let write = conn.deadline(Timer::Write);
        if unsent == 0 {
            if write.is_set() {
                timers.set(write, None, i, generation, Timer::Write);
            }
            if !conn.streaming {
                match conn.ending {
                    Ending::Close => return self.close(i, CloseReason::Protocol),
                    Ending::ShutdownWrite if !conn.fin_sent => {
                        conn.fin_sent = true;
                        let _ = crate::sys::shutdown_write(conn.fd.as_fd());
                    }
                    _ => {}
                }
                // Everything delivered and answered (a partial message is
                // dropped); a paired connection also waits for its own half-close.
                if conn.eof && !conn.pending && (conn.partner().is_none() || conn.fin_sent) {
                    return self.close(i, CloseReason::Eof);
                }
                if draining {
                    return self.close(i, CloseReason::Shutdown);
                }
            }
        } else if !write.is_set() {
            // Output stays unsent from now: the write timeout runs.
            let at = now.checked_add(self.config.write_timeout);
            timers.set(write, at, i, generation, Timer::Write);
        }
        let parked = conn.deadline(Timer::Park).is_set();
        let stream_ready = conn.streaming && unsent <= self.config.max_unsent / 2;
        let can_deliver = conn.ending != Ending::Close
            && !conn.streaming
            && (conn.partner().is_some() || unsent <= max_unsent)
            && !partner_full
            && !draining;
        let wants_input = can_deliver && (conn.pending || !conn.eof);
        let mut interest = Interest::NONE;
        if !parked {
            if can_deliver && !conn.eof && !conn.pending && !self.over_total {
                interest = interest | Interest::READ;
            }
            if unsent > 0 {
                interest = interest | Interest::WRITE;
            }
            if stream_ready || (can_deliver && conn.pending && !self.over_total) {
                self.backlog.push(i);
                if interest == Interest::NONE {
                    // Served next turn whatever the kernel says: leave its
                    // interest as it is (no call; with epoll, no removal and
                    // re-adding).
                    interest = conn.interest;
                }
            }
            if wants_input && self.over_total {
                self.held.push(i); // served when the total is back under its bound
            }
        }
        if interest != conn.interest {
            // Select and poll cannot fail here. Epoll and kqueue can, when a
            // connection watched for nothing is watched again (ENOMEM, ENOSPC):
            // its interest stays as it was, and it is served again after the
            // back-off, as for ENOMEM from recv or send.
            match self.sources.set_interest(&conn.fd, interest) {
                Ok(()) => conn.interest = interest,
                Err(_) => self.park(i),
            }
        }
    }

    /// A watched descriptor is ready: the protocol's [`Protocol::ready`]; or it is
    /// to be unwatched: closed, without a word to the protocol (it asked).
    fn serve_watch(&mut self, i: usize, readiness: Readiness) {
        let Some(conn) = self.table.client[i].as_ref() else {
            return;
        };
        if conn.ending == Ending::Close {
            if let Some(conn) = self.table.remove(i) {
                self.sources.unregister(&conn.fd);
            }
            return;
        }
        if readiness.is_empty() {
            return; // woken for nothing it takes
        }
        let id = self.table.conn_id(i, conn.generation);
        self.table.now = Instant::now();
        let mut ctx = Context::new(&mut self.table, id, &[]);
        let protocol = &mut self.protocol;
        let panicked = guarded(|| protocol.ready(readiness, &mut ctx)).is_err();
        let closing = self.table.client[i]
            .as_ref()
            .is_some_and(|c| c.ending == Ending::Close);
        if panicked || closing {
            if let Some(conn) = self.table.remove(i) {
                self.sources.unregister(&conn.fd);
            }
        }
        self.backlog.append(&mut self.table.woken);
    }

    /// The peer's end of file reached the protocol's [`Protocol::end_of_input`],
    /// once, after every message was delivered.
    #[cold]
    fn tell_end_of_input(&mut self, i: usize) {
        let Some(conn) = self.table.client[i].as_mut() else {
            return;
        };
        if conn.eof && !conn.pending && !conn.eof_told && !conn.reset && conn.stage == Stage::Open {
            conn.eof_told = true;
            self.callback(i, |p, state, ctx| p.end_of_input(state, ctx));
        }
    }

    /// UNP: `Close(sockfd); FD_CLR(sockfd, &allset); client[i] = -1;`
    fn close(&mut self, i: usize, why: CloseReason) {
        let table = &mut self.table;
        if let Some(conn) = table.client[i].as_ref() {
            if conn.stage == Stage::Watched {
                if let Some(conn) = table.remove(i) {
                    self.sources.unregister(&conn.fd);
                }
                return;
            }
            if conn.stage == Stage::Connecting {
                // Never established: not a connection to close, a connect that failed.
                let id = table.conn_id(i, conn.generation);
                let e = io::Error::new(io::ErrorKind::Interrupted, "the server stopped");
                return self.fail_dial(i, id, ConnectError::Other(e));
            }
        }
        let Some(conn) = table.remove(i) else {
            return;
        };
        self.sources.unregister(&conn.fd);
        self.close_partner(conn.partner());
        let stats = &mut self.table.stats;
        if why == CloseReason::Shutdown && conn.unsent() > 0 {
            bump(&mut stats.undelivered);
        }
        bump(match why {
            CloseReason::Eof => &mut stats.closed_eof,
            CloseReason::Reset => &mut stats.closed_reset,
            CloseReason::WriteTimeout | CloseReason::MaxOutput => &mut stats.closed_policy,
            CloseReason::IdleTimeout => &mut stats.closed_idle,
            CloseReason::Protocol => &mut stats.closed_protocol,
            CloseReason::Panic => &mut stats.closed_panic,
            CloseReason::Shutdown => &mut stats.closed_shutdown,
        });
        let id = self.table.conn_id(i, conn.generation);
        drop(conn); // closes the descriptor
        if let Some(state) = self.state[i].take() {
            let protocol = &mut self.protocol;
            let _ = guarded(|| protocol.disconnect(state, id, why));
        }
    }

    /// When the loop ends (shutdown, or an error that stops the server): every
    /// connection is closed, and the protocol told.
    fn close_all(&mut self) {
        for i in 0..self.table.client.len() {
            self.close(i, CloseReason::Shutdown);
        }
    }

    /// Deadlines: the due timers of connections (write and idle time-outs, the
    /// protocol's timers, parked connections), the listener's back-off, inbox
    /// wake-ups to retry. Only what is due is looked at.
    fn timers(&mut self) {
        let table = &self.table;
        if table.timers.is_empty()
            && table.rewake.is_empty()
            && self.accepting.paused_until.is_none()
        {
            return; // nothing waits on the clock (the usual echo turn)
        }
        let now = Instant::now();
        if let Some(hub) = self.table.hub.as_ref().filter(|_| !table.rewake.is_empty()) {
            // Inbox wake-ups that could not be written: again, until they are.
            let rewake = &mut self.table.rewake;
            rewake.sort_unstable();
            rewake.dedup();
            rewake.retain(|&w| !hub.wake(w));
        }
        if let Some(until) = self.accepting.paused_until {
            if now >= until {
                self.accepting.paused_until = None;
                let a = &mut self.accepting;
                if !a.reserve.as_ref().is_some_and(FdReserve::is_armed) {
                    a.reserve = FdReserve::new().ok(); // re-arm if fds are back
                }
                if self
                    .sources
                    .set_interest(&*self.listener, Interest::READ)
                    .is_err()
                {
                    // Epoll or kqueue out of memory: rest again rather than stop
                    // accepting for good.
                    self.accepting.paused_until = Some(now + ACCEPT_BACKOFF);
                }
            }
        }
        while let Some(due) = self.table.timers.pop_due(now) {
            let table = &mut self.table;
            let Some(conn) = table.client[due.index].as_mut() else {
                continue; // closed since
            };
            if conn.generation != due.generation
                || !table.timers.fires(conn.deadline(due.timer), due, now)
            {
                continue;
            }
            match due.timer {
                Timer::Park => self.backlog.push(due.index), // retry what failed
                Timer::Write => self.close(due.index, CloseReason::WriteTimeout),
                Timer::Idle => self.close(due.index, CloseReason::IdleTimeout),
                Timer::Connect => {
                    let id = self.table.conn_id(due.index, due.generation);
                    let late = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    self.fail_dial(due.index, id, ConnectError::TimedOut(late));
                }
                Timer::Protocol => {
                    self.callback(due.index, |p, state, ctx| p.timer(state, ctx));
                    self.backlog.push(due.index); // its output, at its turn
                }
            }
        }
        // The write timers this turn set, and the entries of connections closed.
        self.table.compact_timers();
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
