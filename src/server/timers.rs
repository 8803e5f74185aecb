//! Per-connection deadlines in one heap: a turn pops what is due and never walks
//! every connection.
//!
//! Each connection keeps, per kind of timer, the instant it wants ([`Deadline`]) and
//! the one queued in the heap. Moving a deadline later (the idle time-out after each
//! message) only changes what is wanted: the queued entry pops early, sees that, and
//! queues the new instant. So a connection has one entry per kind in the heap,
//! plus, for a timer moved earlier, the stale later one it leaves until it pops,
//! and a closed connection leaves its entries until they pop. Those stale entries
//! are dropped ([`Timers::compact`]) whenever they could outnumber the live ones:
//! the heap never holds more than about twice the entries the open connections
//! can have, however often a protocol moves its timer earlier.
//!
//! Instants are kept as nanoseconds since the heap was made ([`Tick`]): 8 bytes
//! where an `Option<Instant>` takes 16, so a connection's deadlines take 80 bytes
//! and a heap entry 24.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The kinds of timer a connection has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// Out of kernel memory: serve again.
    Park = 0,
    /// Output unsent for [`Config::write_timeout`](super::Config::write_timeout).
    Write = 1,
    /// No message and no output progress for
    /// [`Config::idle_timeout`](super::Config::idle_timeout).
    Idle = 2,
    /// The protocol's own ([`Context::set_timer`](super::Context::set_timer)).
    Protocol = 3,
    /// A connect in progress, for [`Config::connect_timeout`](super::Config::connect_timeout).
    Connect = 4,
}

/// How many kinds of [`Timer`] there are.
pub(super) const KINDS: usize = 5;

/// Heaps this small are never compacted.
const SLACK: usize = 64;

/// An instant, in nanoseconds since the heap's epoch (enough for 584 years; one
/// later than that is taken as then). [`NEVER`] is none.
type Tick = u64;

/// No instant: a timer not set, or not queued.
const NEVER: Tick = Tick::MAX;

/// One timer of one connection: the instant wanted, and the one queued.
#[derive(Clone, Copy, Debug)]
pub(super) struct Deadline {
    wanted: Tick,
    queued: Tick,
}

impl Default for Deadline {
    fn default() -> Deadline {
        Deadline {
            wanted: NEVER,
            queued: NEVER,
        }
    }
}

impl Deadline {
    /// Whether this timer is set.
    #[inline]
    pub(super) fn is_set(&self) -> bool {
        self.wanted != NEVER
    }

    /// Whether `due` is this deadline's live entry (the one [`Timers::fires`]
    /// looks at), not a stale one.
    pub(super) fn is_queued(&self, due: &Due) -> bool {
        self.queued == due.at
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Tick,
    index: u32,
    generation: u32,
    timer: Timer,
}

impl Entry {
    fn due(&self) -> Due {
        Due {
            index: self.index as usize,
            generation: self.generation,
            timer: self.timer,
            at: self.at,
        }
    }
}

/// A due entry: connection `index` and `generation`, its timer `timer` queued
/// for `at`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Due {
    pub(super) index: usize,
    pub(super) generation: u32,
    pub(super) timer: Timer,
    at: Tick,
}

/// The heap of every connection's deadlines.
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The instant ticks count from.
    epoch: Instant,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            epoch: Instant::now(),
        }
    }
}

impl Timers {
    /// `at` as a tick: one before the epoch is the epoch (it is due at once
    /// either way); one too far is the last tick before [`NEVER`].
    fn tick(&self, at: Instant) -> Tick {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        Tick::try_from(nanos).unwrap_or(NEVER - 1).min(NEVER - 1)
    }

    /// Sets `deadline` (timer `timer` of connection `index` and `generation`) to
    /// `at`, or clears it. Queues an entry only if none as early is queued.
    pub(super) fn set(
        &mut self,
        deadline: &mut Deadline,
        at: Option<Instant>,
        index: usize,
        generation: u32,
        timer: Timer,
    ) {
        let at = at.map_or(NEVER, |at| self.tick(at));
        self.queue(deadline, at, index, generation, timer);
    }

    /// Sets `deadline` to tick `at` ([`NEVER`] clears it), and queues an entry
    /// if none as early is queued.
    fn queue(
        &mut self,
        deadline: &mut Deadline,
        at: Tick,
        index: usize,
        generation: u32,
        timer: Timer,
    ) {
        deadline.wanted = at;
        if at < deadline.queued {
            deadline.queued = at;
            self.heap.push(Reverse(Entry {
                at,
                index: index as u32, // client[] holds fewer than 2^32 slots
                generation,
                timer,
            }));
        }
    }

    /// The earliest instant queued.
    pub(super) fn next(&self) -> Option<Instant> {
        let at = self.heap.peek()?.0.at;
        self.epoch.checked_add(Duration::from_nanos(at))
    }

    /// Whether no entry is queued.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Takes the next entry due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Due> {
        if self.heap.peek()?.0.at > self.tick(now) {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        Some(e.due())
    }

    /// Drops every entry `live` says is stale, if the heap holds more than twice
    /// `most_live` (the most live entries there can be: [`KINDS`] per open
    /// connection) plus a small slack. Between two compactions at least
    /// `most_live` entries are pushed, so each push costs O(log n) amortized.
    pub(super) fn compact(&mut self, most_live: usize, mut live: impl FnMut(&Due) -> bool) {
        if self.heap.len() > most_live.saturating_mul(2).saturating_add(SLACK) {
            self.heap.retain(|Reverse(e)| live(&e.due()));
        }
    }

    /// The entry `due` of `deadline` popped: whether the timer fires now. A stale
    /// entry does not; a deadline moved later is queued again.
    pub(super) fn fires(&mut self, deadline: &mut Deadline, due: Due, now: Instant) -> bool {
        if deadline.queued != due.at {
            return false; // stale: an earlier entry replaced it
        }
        deadline.queued = NEVER;
        let at = deadline.wanted;
        if at == NEVER {
            false
        } else if at <= self.tick(now) {
            deadline.wanted = NEVER;
            true
        } else {
            self.queue(deadline, at, due.index, due.generation, due.timer);
            false
        }
    }

    /// How many entries the heap holds (stale ones included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_moved_later_stays_one_entry_and_fires_once() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        let ms = Duration::from_millis;
        timers.set(&mut d, Some(t0 + ms(10)), 7, 1, Timer::Idle);
        for k in 11..100 {
            timers.set(&mut d, Some(t0 + ms(k)), 7, 1, Timer::Idle);
        }
        assert_eq!(timers.len(), 1);
        // Due at 10 ms: not yet wanted, so queued again for 99 ms.
        let due = timers.pop_due(t0 + ms(50)).unwrap();
        assert!(!timers.fires(&mut d, due, t0 + ms(50)));
        assert!(timers.pop_due(t0 + ms(50)).is_none());
        let due = timers.pop_due(t0 + ms(99)).unwrap();
        assert_eq!((due.index, due.generation, due.timer), (7, 1, Timer::Idle));
        assert!(timers.fires(&mut d, due, t0 + ms(99)));
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn a_deadline_moved_earlier_fires_early_and_its_stale_entry_never() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        timers.set(&mut d, Some(t0 + ms(100)), 0, 0, Timer::Protocol);
        timers.set(&mut d, Some(t0 + ms(5)), 0, 0, Timer::Protocol);
        let due = timers.pop_due(t0 + ms(5)).unwrap();
        assert!(timers.fires(&mut d, due, t0 + ms(5)));
        let stale = timers.pop_due(t0 + ms(100)).unwrap();
        assert!(!timers.fires(&mut d, stale, t0 + ms(100)));
    }

    #[test]
    fn a_timer_moved_earlier_again_and_again_keeps_the_heap_bounded() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        let mut most = 0;
        // One connection: at most KINDS live entries.
        for k in (1..100_000u64).rev() {
            timers.set(&mut d, Some(t0 + ms(k)), 0, 0, Timer::Protocol);
            timers.compact(KINDS, |due| d.is_queued(due));
            most = most.max(timers.len());
        }
        assert!(most <= 2 * KINDS + SLACK + 1, "{most} entries");
        // The live one still fires, once.
        let due = timers.pop_due(t0 + ms(1)).unwrap();
        assert!(timers.fires(&mut d, due, t0 + ms(1)));
        while let Some(due) = timers.pop_due(t0 + ms(100_000)) {
            assert!(!timers.fires(&mut d, due, t0 + ms(100_000)));
        }
    }

    #[test]
    fn the_entries_of_closed_connections_are_dropped() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        for i in 0..1000 {
            let mut d = Deadline::default();
            timers.set(&mut d, Some(t0), i, 0, Timer::Idle);
        }
        // None of them is open any more.
        timers.compact(0, |_| false);
        assert_eq!(timers.len(), 0);
        // A heap within the bound is left alone.
        let mut d = Deadline::default();
        timers.set(&mut d, Some(t0), 0, 1, Timer::Idle);
        timers.compact(0, |_| false);
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn a_cleared_deadline_never_fires() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        timers.set(&mut d, Some(t0), 3, 2, Timer::Write);
        timers.set(&mut d, None, 3, 2, Timer::Write);
        let due = timers.pop_due(t0).unwrap();
        assert!(!timers.fires(&mut d, due, t0));
        assert!(!d.is_set());
    }
}
