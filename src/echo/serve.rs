//! The loop itself: `tcpservselect01`'s `for ( ; ; )`, step by step, over a
//! [`Driver`] that is select(2) or poll(2).

use std::io::{self, Read};
use std::mem;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use super::client::{Client, Close, Next, ReadBuf};
use super::driver::{Driver, Interest, Slot};
use super::stats::{bump, Stats};
use super::{Config, EchoServer, ShutdownHandle, ACCEPT_BACKOFF, RESOURCE_BACKOFF};
use crate::accept::{accept_nonblocking, Accept, FdReserve};

/// The loop's state, shared by the select and poll drivers.
pub(super) struct Loop {
    listener: TcpListener,
    config: Config,
    wake: UnixStream,
    /// Kept so the wake-up socket's other end stays open even when nobody took a
    /// handle: otherwise `wake` would read EOF, stay readable, and the loop would spin.
    handle: ShutdownHandle,
    reserve: Option<FdReserve>,
    accept_paused_until: Option<Instant>,
    /// UNP's `client[]`, grown on demand up to `max_clients` entries.
    client: Vec<Option<Client>>,
    /// UNP's `maxi`: the highest index of `client` ever used (`None` = UNP's -1).
    maxi: Option<usize>,
    /// Clients with work left in their buffers, served next turn without waiting
    /// (UNP 6.8's `readlinebuf` check).
    backlog: Vec<usize>,
    /// Clients with a deadline: echoes stalled (write timeout) or parked (back-off).
    timed: Vec<usize>,
    /// The turn number, so that no client is served twice in one turn.
    turn: u64,
    /// UNP's `char buf[MAXLINE]`: every read goes here first.
    buf: ReadBuf,
    stats: Stats,
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

impl Loop {
    pub(super) fn new(server: EchoServer) -> Loop {
        let EchoServer {
            listener,
            config,
            wake,
            handle,
        } = server;
        Loop {
            listener,
            config,
            wake,
            handle,
            // Without a spare descriptor the server still runs; it backs off instead.
            reserve: FdReserve::new().ok(),
            accept_paused_until: None,
            client: Vec::new(),
            maxi: None,
            backlog: Vec::new(),
            timed: Vec::new(),
            turn: 0,
            buf: ReadBuf::new(),
            stats: Stats::default(),
        }
    }

    pub(super) fn run<D: Driver>(mut self, mut driver: D) -> io::Result<Stats> {
        let listenfd = self.listener.as_raw_fd();
        let wakefd = self.wake.as_raw_fd();
        driver.watch(Slot::Listener, listenfd, Interest::Read)?;
        driver.watch(Slot::Wake, wakefd, Interest::Read)?;
        let mut deadline = None;
        while !self.handle.is_requested() {
            self.turn += 1;
            let timeout = if self.backlog.is_empty() {
                deadline.map(|d: Instant| d.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO) // buffered work: do not sleep
            };
            // UNP: rset = allset; nready = Select(maxfd + 1, &rset, NULL, NULL, NULL);
            let mut nready = match driver.wait(self.maxi, timeout) {
                Ok(n) => n,
                Err(e) => {
                    wait_failed(e, &mut self.stats)?;
                    continue;
                }
            };

            if driver.is_ready(Slot::Wake, wakefd) {
                let _ = (&self.wake).read(&mut [0; 64]);
                continue; // the loop condition sees the request
            }

            // UNP: if (FD_ISSET(listenfd, &rset)) { connfd = Accept(…); … }
            if driver.is_ready(Slot::Listener, listenfd) {
                nready = nready.saturating_sub(1);
                self.accept_one(&mut driver)?;
            }

            // UNP 6.8: serve what is already in our buffers before sleeping again.
            for i in mem::take(&mut self.backlog) {
                self.serve(i, &mut driver)?;
            }

            // UNP: for (i = 0; i <= maxi; i++) { if (FD_ISSET(sockfd, &rset)) …
            //          if (--nready <= 0) break; }
            for i in 0..self.maxi.map_or(0, |m| m + 1) {
                if nready == 0 {
                    break;
                }
                let Some(sockfd) = self.client[i].as_ref().map(Client::fd) else {
                    continue;
                };
                if driver.is_ready(Slot::Client(i), sockfd) {
                    nready -= 1;
                    self.serve(i, &mut driver)?;
                }
            }

            deadline = self.timers(&mut driver);
        }
        Ok(self.stats)
    }

    /// The listener is readable: (optionally sleep, as UNP 16.6 does, then) accept.
    fn accept_one<D: Driver>(&mut self, driver: &mut D) -> io::Result<()> {
        if let Some(delay) = self.config.accept_delay {
            thread::sleep(delay); // UNP 16.6's sleep(5): the race window
        }
        match accept_nonblocking(&self.listener)? {
            Accept::Connection(stream, _) => self.add_client(stream, driver),
            Accept::NotNow(e) => self.stats.empty_accepts.count(&e),
            Accept::OutOfResources(e) => {
                bump(&mut self.stats.out_of_resources);
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                let shed = match self.reserve.as_mut() {
                    Some(reserve) if out_of_fds => reserve.shed(&self.listener),
                    _ => Err(e), // out of memory: shedding frees nothing
                };
                if let Ok(true) = shed {
                    bump(&mut self.stats.shed);
                }
                let armed = self.reserve.as_ref().is_some_and(FdReserve::is_armed);
                if shed.is_err() || !armed {
                    // Could not shed, or the spare is gone: stop watching the
                    // listener for a while rather than spin on it (`timers` re-arms).
                    driver.forget(Slot::Listener, self.listener.as_raw_fd());
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                }
            }
        }
        Ok(())
    }

    /// UNP: find the first free `client[i]`, save the descriptor, add it to `allset`.
    fn add_client<D: Driver>(&mut self, stream: TcpStream, driver: &mut D) {
        let connfd = stream.as_raw_fd();
        let free = self.client.iter().position(Option::is_none);
        let Some(i) = free.or_else(|| {
            // client[] grows up to max_clients instead of being allocated whole.
            (self.client.len() < self.config.max_clients).then(|| {
                self.client.push(None);
                self.client.len() - 1
            })
        }) else {
            return self.refuse(stream); // UNP: err_quit("too many clients")
        };
        if crate::sys::prepare_nosigpipe(connfd).is_err()
            || driver
                .watch(Slot::Client(i), connfd, Interest::Read)
                .is_err()
        {
            return self.refuse(stream); // e.g. connfd >= FD_SETSIZE
        }
        self.client[i] = Some(Client::new(stream));
        self.maxi = Some(self.maxi.map_or(i, |m| m.max(i)));
        bump(&mut self.stats.accepted);
    }

    fn refuse(&mut self, stream: TcpStream) {
        bump(&mut self.stats.refused);
        // Reset, so the client learns at once; the descriptor is closed either way.
        let _ = crate::linger::abort(OwnedFd::from(stream));
    }

    /// One client's turn, at most once per turn of the loop: UNP's `Read` and
    /// `Writen`, without blocking. Then watch it for what it waits for.
    fn serve<D: Driver>(&mut self, i: usize, driver: &mut D) -> io::Result<()> {
        let Some(client) = self.client[i].as_mut() else {
            return Ok(());
        };
        if client.served_in == self.turn {
            return Ok(()); // fair turns: once per client per turn
        }
        client.served_in = self.turn;
        let fd = client.fd();
        let ready = driver.is_ready(Slot::Client(i), fd);
        let now = Instant::now();
        let (echo, max_line) = (self.config.echo, self.config.max_line);
        let next = match client.turn(ready, echo, max_line, &mut self.buf, &mut self.stats, now) {
            Ok(next) => next,
            Err(Close::Fatal(e)) => return Err(e),
            Err(why) => {
                self.close(i, why, driver);
                return Ok(());
            }
        };
        let interest = match next {
            Next::Read => Interest::Read,
            Next::Write => Interest::Write,
            Next::Again => {
                self.backlog.push(i);
                Interest::Nothing
            }
            Next::Park => Interest::Nothing,
        };
        if client.stalled_since.is_some() || client.parked_until.is_some() {
            self.timed.push(i);
        }
        if driver.watch(Slot::Client(i), fd, interest).is_err() {
            // Cannot happen: the fd was accepted into the same driver.
            self.close(i, Close::Reset, driver);
        }
        Ok(())
    }

    /// UNP: `Close(sockfd); FD_CLR(sockfd, &allset); client[i] = -1;`
    fn close<D: Driver>(&mut self, i: usize, why: Close, driver: &mut D) {
        if let Some(client) = self.client[i].take() {
            driver.forget(Slot::Client(i), client.fd());
            bump(match why {
                Close::Eof => &mut self.stats.closed_eof,
                Close::Policy => &mut self.stats.closed_policy,
                Close::Reset | Close::Fatal(_) => &mut self.stats.closed_reset,
            });
        }
    }

    /// Deadlines: closes clients whose echoes stayed unsent past the write timeout
    /// (deviation 7), brings parked clients back, re-arms the listener after its
    /// back-off. Returns the next deadline, if any.
    fn timers<D: Driver>(&mut self, driver: &mut D) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));

        if let Some(until) = self.accept_paused_until {
            if now >= until {
                self.accept_paused_until = None;
                if !self.reserve.as_ref().is_some_and(FdReserve::is_armed) {
                    self.reserve = FdReserve::new().ok(); // re-arm if fds are back
                }
                // Cannot fail: the listener was in the set before.
                let _ = driver.watch(Slot::Listener, self.listener.as_raw_fd(), Interest::Read);
            } else {
                soonest(until);
            }
        }

        let mut timed = mem::take(&mut self.timed);
        timed.sort_unstable();
        timed.dedup();
        for i in timed {
            let Some(client) = self.client[i].as_mut() else {
                continue; // closed since
            };
            if let Some(until) = client.parked_until {
                if now >= until {
                    client.parked_until = None;
                    self.backlog.push(i); // retry what failed, next turn
                } else {
                    soonest(until);
                    self.timed.push(i);
                }
            } else if let Some(since) = client.stalled_since {
                match since.checked_add(self.config.write_timeout) {
                    Some(due) if now >= due => self.close(i, Close::Policy, driver),
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
