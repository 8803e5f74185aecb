//! UNP's `client[]` and what a protocol may touch while it handles a message: the
//! worker's connections, their timers, the counters, the other workers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use super::conn::{Conn, Ending};
use super::hub::Hub;
use super::protocol::{end_message, ConnId};
use super::stats::Stats;
use super::timers::{Timer, Timers, KINDS};
use super::totals::Totals;
use super::{Config, ShutdownHandle};

/// One worker's connections and what goes with them.
pub(super) struct Table {
    pub(super) worker: u16,
    /// UNP's `client[]`, grown on demand up to `max_clients` entries.
    pub(super) client: Vec<Option<Conn>>,
    /// How many entries of `client` are open.
    pub(super) open: usize,
    /// The free entries of `client`, lowest first: UNP's "first free `client[i]`"
    /// without a walk over every entry.
    free: BinaryHeap<Reverse<usize>>,
    /// Connections that got output from others: served next turn.
    pub(super) woken: Vec<usize>,
    /// Workers whose inbox wake-up could not be written: woken again later.
    pub(super) rewake: Vec<usize>,
    pub(super) timers: Timers,
    pub(super) stats: Stats,
    /// The other workers, if there are any.
    pub(super) hub: Option<Arc<Hub>>,
    pub(super) max_output: usize,
    /// The time at the start of the current connection's turn.
    pub(super) now: Instant,
    /// Scratch: where the messages sent from the input end, counted from the
    /// start of what is borrowed.
    pub(super) ends: Vec<usize>,
    /// What all workers count together.
    pub(super) totals: Arc<Totals>,
    /// For a protocol that stops its server.
    pub(super) shutdown: ShutdownHandle,
    /// Connections the protocol opened or adopted, to be watched by the loop.
    pub(super) dialed: Vec<usize>,
    /// The generation of the next connection (see [`ConnId`]).
    pub(super) next_generation: u32,
    pub(super) max_clients: usize,
}

impl Table {
    pub(super) fn new(
        worker: u16,
        hub: Option<Arc<Hub>>,
        config: &Config,
        totals: Arc<Totals>,
        shutdown: ShutdownHandle,
    ) -> Table {
        Table {
            worker,
            client: Vec::new(),
            open: 0,
            free: BinaryHeap::new(),
            woken: Vec::new(),
            rewake: Vec::new(),
            timers: Timers::default(),
            stats: Stats::default(),
            hub,
            max_output: config.max_output,
            now: Instant::now(),
            ends: Vec::new(),
            totals,
            shutdown,
            dialed: Vec::new(),
            next_generation: 0,
            max_clients: config.max_clients,
        }
    }

    /// The first free entry of `client[]`, growing it up to `max` entries; `None`
    /// if all `max` are taken.
    pub(super) fn free_slot(&mut self, max: usize) -> Option<usize> {
        if let Some(Reverse(i)) = self.free.pop() {
            return Some(i);
        }
        // client[] grows up to max entries instead of being allocated whole.
        (self.client.len() < max).then(|| {
            self.client.push(None);
            self.client.len() - 1
        })
    }

    /// A new connection in a free entry (counted in `max_clients`): its index and
    /// id; the descriptor back if `max_clients` are open.
    pub(super) fn insert(
        &mut self,
        fd: std::os::fd::OwnedFd,
    ) -> Result<(usize, ConnId), std::os::fd::OwnedFd> {
        if !self.totals.admit() {
            return Err(fd);
        }
        let Some(i) = self.free_slot(self.max_clients) else {
            self.totals.release();
            return Err(fd);
        };
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.client[i] = Some(Conn::new(fd, generation));
        self.open += 1;
        Ok((i, self.conn_id(i, generation)))
    }

    /// Takes connection `i` out (its entry is free again, and it no longer counts
    /// in `max_clients`).
    pub(super) fn remove(&mut self, i: usize) -> Option<Conn> {
        let mut conn = self.client.get_mut(i)?.take()?;
        self.release_slot(i);
        self.open -= 1;
        self.totals.release();
        self.totals.charge(&mut conn.charged, 0);
        Some(conn)
    }

    /// Connection `id`, if it is still there (whatever its state).
    pub(super) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let conn = self.client.get_mut(id.index())?.as_mut()?;
        (conn.generation == id.generation).then_some(conn)
    }

    /// Entry `i` is free again.
    fn release_slot(&mut self, i: usize) {
        self.free.push(Reverse(i));
    }

    pub(super) fn conn_id(&self, i: usize, generation: u32) -> ConnId {
        ConnId {
            worker: self.worker,
            index: i as u32, // client[] holds fewer than 2^32 slots
            generation,
        }
    }

    /// Connection `id` of this worker, if it is open and not ending.
    pub(super) fn open_conn(&mut self, id: ConnId) -> Option<&mut Conn> {
        let conn = self.client.get_mut(id.index())?.as_mut()?;
        (conn.generation == id.generation && conn.ending == Ending::Open && !conn.overflowed)
            .then_some(conn)
    }

    /// Queues a reference to `data` for every open connection but `except`; returns
    /// how many got it.
    pub(super) fn queue_all(&mut self, except: Option<usize>, data: &Arc<[u8]>) -> usize {
        let mut sent = 0;
        for (i, slot) in self.client.iter_mut().enumerate() {
            if Some(i) == except {
                continue;
            }
            if let Some(conn) = slot.as_mut().filter(|c| c.takes_output()) {
                conn.out.share(Arc::clone(data));
                end_message(conn, self.max_output);
                // Counted at once, not at its turn: a flood of broadcasts meets
                // `max_output_total` in the turn it passes it.
                let unsent = conn.unsent();
                self.totals.charge(&mut conn.charged, unsent);
                self.woken.push(i);
                sent += 1;
            }
        }
        sent
    }

    /// As [`queue_all`](Self::queue_all), with a copy each (for short data).
    pub(super) fn queue_all_copies(&mut self, except: usize, data: &[u8]) -> usize {
        let mut sent = 0;
        for (i, slot) in self.client.iter_mut().enumerate() {
            if i == except {
                continue;
            }
            if let Some(conn) = slot.as_mut().filter(|c| c.takes_output()) {
                conn.out.copy(data);
                end_message(conn, self.max_output);
                let unsent = conn.unsent();
                self.totals.charge(&mut conn.charged, unsent);
                self.woken.push(i);
                sent += 1;
            }
        }
        sent
    }

    /// Sets (or clears) timer `timer` of connection `id`.
    pub(super) fn set_timer(&mut self, id: ConnId, timer: Timer, at: Option<Instant>) {
        let Some(conn) = self.client.get_mut(id.index()).and_then(Option::as_mut) else {
            return;
        };
        if conn.generation == id.generation {
            self.timers
                .set(conn.deadline(timer), at, id.index(), id.generation, timer);
            self.compact_timers();
        }
    }

    /// Drops the timer entries that are stale (moved earlier since, or of a closed
    /// connection) once they could outnumber the live ones.
    pub(super) fn compact_timers(&mut self) {
        let client = &mut self.client;
        self.timers.compact(self.open.saturating_mul(KINDS), |due| {
            client
                .get_mut(due.index)
                .and_then(Option::as_mut)
                .is_some_and(|c| {
                    c.generation == due.generation && c.deadline(due.timer).is_queued(due)
                })
        });
    }
}
