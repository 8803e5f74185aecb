//! The items, in least-recently-used order, under a memory limit that counts what
//! they really cost: each item's key and value allocations, the slab place and the
//! index slot that hold it, and the data blocks of storage commands still arriving
//! (the loop buffers them whole). A store that is full evicts the least recently
//! used items, as memcached does, in O(1) per item.
//!
//! The statistics of `stats` (memcached's names) are kept here too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::index::Index;
use crate::lru::Lru;
use crate::parser::push_u64;
use crate::value::{self, Value};

/// Largest value: 1 MiB (memcached's default item size, `-I 1m`).
pub const MAX_VALUE: usize = 1 << 20;
/// Default memory limit, memcached's `-m 64`.
pub const DEFAULT_LIMIT: u64 = 64 << 20;
/// What `version` and `stats` report.
pub const VERSION: &str = "1.6.0-unp-select";

/// Expiry times up to 30 days are relative, larger ones are Unix times.
const RELATIVE_MAX: i64 = 60 * 60 * 24 * 30;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When an item expires, from a client's exptime (protocol.txt, "Expiration times").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    At(u64),
    /// Negative, or a Unix time already past: expired at once.
    Past,
}

impl Expiry {
    pub fn from_exptime(t: i64, now: u64) -> Expiry {
        match t {
            0 => Expiry::Never,
            t if t < 0 => Expiry::Past,
            t if t <= RELATIVE_MAX => Expiry::At(now + t as u64),
            t if t as u64 <= now => Expiry::Past,
            t => Expiry::At(t as u64),
        }
    }

    /// The item field: 0 for never.
    fn stamp(self) -> u64 {
        match self {
            Expiry::Never => 0,
            Expiry::At(t) => t,
            Expiry::Past => 1,
        }
    }
}

/// What an item costs beyond its slab place and index slot: what the allocator
/// hands out for its key (a `Box<[u8]>`) and for its value (see [`value::cost`]:
/// pieces of at most 32 KiB, each an `Arc<[u8]>`).
///
/// glibc's malloc gives a chunk of the request plus 8 bytes of header, in steps of
/// 16, 32 at least; a request past the mmap threshold (128 KiB at first, raised
/// up to the largest freed mmapped chunk) gets pages, or a heap chunk of about
/// the same size. Measured with VmRSS (`kv_clients`'s
/// `rss_stays_near_the_memory_limit` and by hand: 300,000 items filled in, RSS
/// read from /proc/PID/status before and after, divided by the count), these
/// charges plus the slab and index bytes came within a few percent of the RSS
/// growth, for values of 0 to 1 MiB.
pub fn charge(key_len: usize, value_len: usize) -> u64 {
    allocated(key_len) + value::cost(value_len + 2)
}

/// What the allocator hands out for a request of `n` bytes.
pub fn allocated(n: usize) -> u64 {
    const PAGE: usize = 4096;
    let n = if n >= 128 * 1024 {
        (n + 16).div_ceil(PAGE) * PAGE
    } else {
        ((n + 8).div_ceil(16) * 16).max(32)
    };
    n as u64
}

struct Item {
    key: Box<[u8]>,
    value: Value,
    flags: u32,
    /// The key's hash in the index.
    hash: u32,
    /// Unix time at which the item expires; 0: never.
    exp: u64,
    cas: u64,
}

impl Item {
    fn expired(&self, now: u64) -> bool {
        self.exp != 0 && now >= self.exp
    }

    fn data_len(&self) -> usize {
        self.value.len() - 2
    }

    fn charge(&self) -> u64 {
        charge(self.key.len(), self.data_len())
    }
}

/// A value found by a retrieval.
pub struct Hit {
    pub flags: u32,
    pub cas: u64,
    /// The data and its `"\r\n"`.
    pub value: Value,
}

/// The storage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// The answer to a storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    OutOfMemory,
}

impl Outcome {
    pub fn reply(self) -> &'static [u8] {
        match self {
            Outcome::Stored => b"STORED\r\n",
            Outcome::NotStored => b"NOT_STORED\r\n",
            Outcome::Exists => b"EXISTS\r\n",
            Outcome::NotFound => b"NOT_FOUND\r\n",
            Outcome::OutOfMemory => OUT_OF_MEMORY,
        }
    }
}

pub const OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";

/// Why an incr/decr changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    NotFound,
    NonNumeric,
}

/// Memory held for a data block on its way: counted in the store until dropped
/// (when the block arrived, or its connection went, whichever worker runs it).
pub struct Reservation {
    in_flight: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Counters reported by `stats` (memcached's names).
#[derive(Default, Clone, Copy)]
struct Counters {
    curr_connections: u64,
    total_connections: u64,
    total_items: u64,
    cmd_get: u64,
    cmd_set: u64,
    cmd_flush: u64,
    cmd_touch: u64,
    get_hits: u64,
    get_misses: u64,
    delete_hits: u64,
    delete_misses: u64,
    incr_hits: u64,
    incr_misses: u64,
    decr_hits: u64,
    decr_misses: u64,
    cas_hits: u64,
    cas_misses: u64,
    cas_badval: u64,
    touch_hits: u64,
    touch_misses: u64,
    evictions: u64,
    reclaimed: u64,
}

/// The items, the cas counter and the statistics, shared by all connections.
pub struct Store {
    items: Lru<Item>,
    index: Index,
    /// What the items cost ([`charge`]), without the slab and the index.
    item_bytes: u64,
    /// Bytes of data blocks announced and not yet stored, on every connection.
    in_flight: Arc<AtomicU64>,
    limit: u64,
    /// The last cas unique handed out.
    cas: u64,
    started: u64,
    /// A delayed `flush_all`: everything goes at this time.
    flush_at: Option<u64>,
    verbosity: u32,
    stats: Counters,
}

impl Store {
    /// An empty store that holds at most `limit` bytes (items, slab, index, data
    /// blocks in flight), started at `started` (Unix seconds, for `uptime`).
    pub fn with_limit(limit: u64, started: u64) -> Store {
        Store {
            items: Lru::new(),
            index: Index::new(),
            item_bytes: 0,
            in_flight: Arc::new(AtomicU64::new(0)),
            limit,
            cas: 0,
            started,
            flush_at: None,
            verbosity: 0,
            stats: Counters::default(),
        }
    }

    /// A client connected (for `curr_connections` and `total_connections`).
    pub fn connected(&mut self) {
        self.stats.curr_connections += 1;
        self.stats.total_connections += 1;
    }

    /// A client's connection closed.
    pub fn disconnected(&mut self) {
        self.stats.curr_connections = self.stats.curr_connections.saturating_sub(1);
    }

    /// Items held (including expired ones not yet removed, as memcached counts).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The bytes counted against the limit.
    pub fn used(&self) -> u64 {
        self.item_bytes + self.table_bytes() + self.in_flight.load(Ordering::Relaxed)
    }

    fn table_bytes(&self) -> u64 {
        (self.items.bytes() + self.index.bytes()) as u64
    }

    pub fn set_verbosity(&mut self, level: u32) {
        self.verbosity = level;
    }

    #[cfg(test)]
    pub fn verbosity(&self) -> u32 {
        self.verbosity
    }

    /// The counters of `stats` that are numbers, for a final report.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("curr_connections", s.curr_connections),
            ("total_connections", s.total_connections),
            ("curr_items", self.items.len() as u64),
            ("total_items", s.total_items),
            ("bytes", self.item_bytes),
            ("hash_bytes", self.table_bytes()),
            ("limit_maxbytes", self.limit),
            ("cmd_get", s.cmd_get),
            ("cmd_set", s.cmd_set),
            ("cmd_flush", s.cmd_flush),
            ("cmd_touch", s.cmd_touch),
            ("get_hits", s.get_hits),
            ("get_misses", s.get_misses),
            ("delete_hits", s.delete_hits),
            ("delete_misses", s.delete_misses),
            ("incr_hits", s.incr_hits),
            ("incr_misses", s.incr_misses),
            ("decr_hits", s.decr_hits),
            ("decr_misses", s.decr_misses),
            ("cas_hits", s.cas_hits),
            ("cas_misses", s.cas_misses),
            ("cas_badval", s.cas_badval),
            ("touch_hits", s.touch_hits),
            ("touch_misses", s.touch_misses),
            ("evictions", s.evictions),
            ("reclaimed", s.reclaimed),
        ]
    }

    /// `stats`: every counter, `STAT name value` lines, then `END`.
    pub fn write_stats(&self, now: u64, out: &mut Vec<u8>) {
        let mut stat = |name: &str, value: &dyn std::fmt::Display| {
            use std::io::Write as _;
            let _ = write!(out, "STAT {name} {value}\r\n");
        };
        stat("pid", &std::process::id());
        stat("uptime", &now.saturating_sub(self.started));
        stat("time", &now);
        stat("version", &VERSION);
        stat("pointer_size", &(8 * std::mem::size_of::<usize>()));
        stat("threads", &1);
        for (name, value) in self.counters() {
            stat(name, &value);
        }
        out.extend_from_slice(b"END\r\n");
    }

    /// Carries out a delayed `flush_all` whose time has come.
    pub fn tick(&mut self, now: u64) {
        if self.flush_at.is_some_and(|t| now >= t) {
            self.flush_at = None;
            self.clear();
        }
    }

    /// `flush_all`: everything goes now, or at a time to come.
    pub fn flush(&mut self, when: Expiry) {
        self.stats.cmd_flush += 1;
        match when {
            Expiry::At(t) => self.flush_at = Some(t),
            Expiry::Never | Expiry::Past => {
                self.flush_at = None;
                self.clear();
            }
        }
    }

    fn clear(&mut self) {
        self.items.clear();
        self.index.clear();
        self.item_bytes = 0;
    }

    /// Holds `bytes` for a data block on its way, evicting items if need be
    /// (memcached allocates the item when the command line arrives); `None` if
    /// they do not fit even in an empty store.
    pub fn reserve(&mut self, bytes: u64, now: u64) -> Option<Reservation> {
        if !self.make_room(bytes, false, None, now) {
            return None;
        }
        // Taken under the store's lock, so two workers cannot both take the last
        // room; given back anywhere (a smaller count only helps).
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
        Some(Reservation {
            in_flight: Arc::clone(&self.in_flight),
            bytes,
        })
    }

    /// Removes `key`'s item, live or expired.
    pub fn remove(&mut self, key: &[u8]) {
        if let Some(pos) = self.find(key) {
            self.remove_at(pos);
        }
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.index.hash(key);
        let items = &self.items;
        self.index.find(key, hash, |pos| &items.get(pos).key)
    }

    fn remove_at(&mut self, pos: u32) -> Item {
        let item = self.items.remove(pos);
        self.index.remove(item.hash, pos);
        self.item_bytes -= item.charge();
        item
    }

    /// The position of `key`'s item unless it has expired (an expired one is
    /// removed).
    fn live(&mut self, key: &[u8], now: u64) -> Option<u32> {
        let pos = self.find(key)?;
        if self.items.get(pos).expired(now) {
            self.remove_at(pos);
            return None;
        }
        Some(pos)
    }

    /// Evicts the least recently used items until `need` more bytes fit (and, for
    /// a new item, the growth of the slab and the index); never `keep`. Whether
    /// they fit.
    fn make_room(&mut self, need: u64, new_item: bool, keep: Option<u32>, now: u64) -> bool {
        // What no eviction frees: if even that leaves no room, evict nothing.
        let kept = keep.map_or(0, |pos| self.items.get(pos).charge());
        let floor = self.table_bytes() + self.in_flight.load(Ordering::Relaxed) + kept;
        if floor + need > self.limit {
            return false;
        }
        loop {
            let growth = if new_item {
                (self.items.growth() + self.index.growth()) as u64
            } else {
                0
            };
            if self.used() + need + growth <= self.limit {
                return true;
            }
            match self.items.back() {
                Some(pos) if Some(pos) != keep => {
                    if self.remove_at(pos).expired(now) {
                        self.stats.reclaimed += 1;
                    } else {
                        self.stats.evictions += 1;
                    }
                }
                _ => return false,
            }
        }
    }

    fn next_cas(&mut self) -> u64 {
        self.cas += 1;
        self.cas
    }

    /// Gives the item at `pos` a new value (and a new cas).
    fn replace_value(&mut self, pos: u32, value: Value) {
        let cas = self.next_cas();
        let item = self.items.get_mut(pos);
        let old = item.charge();
        item.value = value;
        item.cas = cas;
        let new = item.charge();
        self.item_bytes = self.item_bytes - old + new;
    }

    /// A storage command whose data block arrived: `block` is the data and its
    /// `"\r\n"`, as a value is kept (one copy, the one the item keeps).
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        kind: Kind,
        key: &[u8],
        block: &[u8],
        flags: u32,
        exp: Expiry,
        cas_unique: u64,
        now: u64,
    ) -> Outcome {
        self.stats.cmd_set += 1;
        debug_assert!(block.ends_with(b"\r\n"));
        let data = &block[..block.len() - 2];
        let old = self.live(key, now);
        match (kind, old) {
            (Kind::Add, Some(pos)) => {
                self.items.touch(pos); // memcached bumps it, as a use
                return Outcome::NotStored;
            }
            (Kind::Replace | Kind::Append | Kind::Prepend, None) => return Outcome::NotStored,
            (Kind::Cas, None) => {
                self.stats.cas_misses += 1;
                return Outcome::NotFound;
            }
            (Kind::Cas, Some(pos)) if self.items.get(pos).cas != cas_unique => {
                self.stats.cas_badval += 1;
                return Outcome::Exists;
            }
            (Kind::Cas, Some(_)) => self.stats.cas_hits += 1,
            _ => {}
        }
        if let (Kind::Append | Kind::Prepend, Some(pos)) = (kind, old) {
            let item = self.items.get(pos);
            // memcached answers NOT_STORED when the result would be too large.
            if item.data_len() + data.len() > MAX_VALUE {
                return Outcome::NotStored;
            }
            let mut parts = item.value.data_parts();
            if kind == Kind::Append {
                parts.push(block);
            } else {
                parts.insert(0, data);
                parts.push(b"\r\n");
            }
            let value = Value::from_parts(&parts);
            let more = charge(key.len(), value.len() - 2).saturating_sub(item.charge());
            self.items.touch(pos);
            if !self.make_room(more, false, Some(pos), now) {
                return Outcome::OutOfMemory;
            }
            self.replace_value(pos, value);
            self.stats.total_items += 1;
            return Outcome::Stored;
        }
        if exp == Expiry::Past {
            // Stored and at once expired: nothing to keep.
            if let Some(pos) = old {
                self.remove_at(pos);
            }
            self.stats.total_items += 1;
            return Outcome::Stored;
        }
        let need = charge(key.len(), data.len());
        let fits = match old {
            Some(pos) => {
                self.items.touch(pos);
                let more = need.saturating_sub(self.items.get(pos).charge());
                self.make_room(more, false, Some(pos), now)
            }
            None => self.make_room(need, true, None, now),
        };
        if !fits {
            if let Some(pos) = old.filter(|_| kind == Kind::Set) {
                self.remove_at(pos); // memcached drops the old value of a failed set
            }
            return Outcome::OutOfMemory;
        }
        let value = Value::from_parts(&[block]);
        match old {
            Some(pos) => {
                self.replace_value(pos, value);
                let item = self.items.get_mut(pos);
                item.flags = flags;
                item.exp = exp.stamp();
            }
            None => {
                let cas = self.next_cas();
                let hash = self.index.hash(key);
                let pos = self.items.push_front(Item {
                    key: key.into(),
                    value,
                    flags,
                    hash,
                    exp: exp.stamp(),
                    cas,
                });
                self.index.insert(hash, pos);
                self.item_bytes += need;
            }
        }
        self.stats.total_items += 1;
        Outcome::Stored
    }

    /// One key of `get`/`gets` (`touch`: `None`) or `gat`/`gats`.
    pub fn get(&mut self, key: &[u8], touch: Option<Expiry>, now: u64) -> Option<Hit> {
        self.stats.cmd_get += 1;
        if touch.is_some() {
            self.stats.cmd_touch += 1;
        }
        let Some(pos) = self.live(key, now) else {
            self.stats.get_misses += 1;
            if touch.is_some() {
                self.stats.touch_misses += 1;
            }
            return None;
        };
        self.items.touch(pos);
        let item = self.items.get_mut(pos);
        if let Some(exp) = touch {
            item.exp = exp.stamp();
        }
        let hit = Hit {
            flags: item.flags,
            cas: item.cas,
            value: item.value.clone(),
        };
        let expired_now = item.expired(now);
        self.stats.get_hits += 1;
        if touch.is_some() {
            self.stats.touch_hits += 1;
            if expired_now {
                self.remove_at(pos); // gat with a negative exptime
            }
        }
        Some(hit)
    }

    /// `delete`: whether there was a live item.
    pub fn delete(&mut self, key: &[u8], now: u64) -> bool {
        match self.live(key, now) {
            Some(pos) => {
                self.remove_at(pos);
                self.stats.delete_hits += 1;
                true
            }
            None => {
                self.stats.delete_misses += 1;
                false
            }
        }
    }

    /// `touch`: a new expiry; whether there was a live item.
    pub fn touch(&mut self, key: &[u8], exp: Expiry, now: u64) -> bool {
        self.stats.cmd_touch += 1;
        match self.live(key, now) {
            Some(pos) => {
                self.items.touch(pos);
                self.items.get_mut(pos).exp = exp.stamp();
                if exp == Expiry::Past {
                    self.remove_at(pos);
                }
                self.stats.touch_hits += 1;
                true
            }
            None => {
                self.stats.touch_misses += 1;
                false
            }
        }
    }

    /// `incr`/`decr` by `delta`: the new value, data and `"\r\n"`. incr wraps at
    /// 2^64; decr stops at 0 (protocol.txt). The number is written back without
    /// memcached's space padding.
    pub fn incr_decr(
        &mut self,
        key: &[u8],
        incr: bool,
        delta: u64,
        now: u64,
    ) -> Result<Arc<[u8]>, IncrError> {
        let Some(pos) = self.live(key, now) else {
            if incr {
                self.stats.incr_misses += 1;
            } else {
                self.stats.decr_misses += 1;
            }
            return Err(IncrError::NotFound);
        };
        let item = self.items.get(pos);
        // Over the value's pieces: a long value is not joined to be read.
        let bytes = item.value.data_parts().into_iter().flatten().copied();
        let old = crate::parser::parse_number(bytes).ok_or(IncrError::NonNumeric)?;
        let new = if incr {
            old.wrapping_add(delta)
        } else {
            old.saturating_sub(delta)
        };
        let mut digits = Vec::with_capacity(22);
        push_u64(&mut digits, new);
        digits.extend_from_slice(b"\r\n");
        let value: Arc<[u8]> = digits.into();
        let more = charge(key.len(), value.len() - 2).saturating_sub(item.charge());
        self.items.touch(pos);
        // A few bytes more at most: made room for, but stored even if not (a
        // number is never refused).
        self.make_room(more, false, Some(pos), now);
        self.replace_value(pos, Value::One(Arc::clone(&value)));
        if incr {
            self.stats.incr_hits += 1;
        } else {
            self.stats.decr_hits += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn set(store: &mut Store, key: &str, len: usize) -> Outcome {
        store.store(
            Kind::Set,
            key.as_bytes(),
            &block(len),
            0,
            Expiry::Never,
            0,
            NOW,
        )
    }

    /// A data block: `len` bytes and "\r\n".
    fn block(len: usize) -> Vec<u8> {
        let mut b = vec![b'v'; len];
        b.extend_from_slice(b"\r\n");
        b
    }

    fn has(store: &mut Store, key: &str) -> bool {
        store.find(key.as_bytes()).is_some()
    }

    fn counter(store: &Store, name: &str) -> u64 {
        store
            .counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    #[test]
    fn charges_follow_the_allocator() {
        assert_eq!(allocated(0), 32);
        assert_eq!(allocated(24), 32);
        assert_eq!(allocated(25), 48);
        assert_eq!(allocated(1000), 1008);
        assert_eq!(allocated(1 << 20), (1 << 20) + 4096);
        // An empty value with a one-byte key: 32 + 32.
        assert_eq!(charge(1, 0), 64);
    }

    #[test]
    fn a_full_store_evicts_the_least_recently_used() {
        let mut store = Store::with_limit(64 * 1024, NOW);
        for i in 0..1000 {
            assert_eq!(set(&mut store, &format!("k{i}"), 100), Outcome::Stored);
        }
        let full = store.len();
        assert!(full > 100 && full < 1000, "{full} items in 64 KiB");
        assert!(store.used() <= 64 * 1024);
        let first = 1000 - full;
        assert!(!has(&mut store, &format!("k{}", first - 1)));
        // A use makes k{first} the most recent: k{first+1} goes next.
        assert!(store
            .get(format!("k{first}").as_bytes(), None, NOW)
            .is_some());
        assert_eq!(set(&mut store, "new", 100), Outcome::Stored);
        assert!(has(&mut store, &format!("k{first}")));
        assert!(!has(&mut store, &format!("k{}", first + 1)));
        assert_eq!(counter(&store, "evictions"), first as u64 + 1);
        // A large value evicts as many as it takes, and no more.
        assert_eq!(set(&mut store, "big", 10_000), Outcome::Stored);
        assert!(store.used() <= 64 * 1024);
        assert!(store.used() + charge(3, 200) > 64 * 1024 - 200);
        // Too large for the whole store: refused, nothing kept of it, and nothing
        // evicted for it.
        let (held, evictions) = (store.len(), counter(&store, "evictions"));
        assert_eq!(set(&mut store, "huge", 100_000), Outcome::OutOfMemory);
        assert!(!has(&mut store, "huge"));
        assert!(store.reserve(100_000, NOW).is_none());
        assert_eq!(
            (store.len(), counter(&store, "evictions")),
            (held, evictions)
        );
    }

    #[test]
    fn replacing_counts_the_difference_and_keeps_the_old_on_failure() {
        let mut store = Store::with_limit(16 * 1024, NOW);
        assert_eq!(set(&mut store, "a", 5000), Outcome::Stored);
        let used = store.used();
        assert_eq!(set(&mut store, "a", 6000), Outcome::Stored);
        assert_eq!(store.used(), used - charge(1, 5000) + charge(1, 6000));
        // Append past the limit: out of memory, the old value stays.
        let r = store.store(Kind::Append, b"a", &block(20_000), 0, Expiry::Never, 0, NOW);
        assert_eq!(r, Outcome::OutOfMemory);
        assert_eq!(store.get(b"a", None, NOW).unwrap().value.len(), 6002);
        // A failed set drops the old value (memcached's rule).
        assert_eq!(set(&mut store, "a", 20_000), Outcome::OutOfMemory);
        assert!(!has(&mut store, "a"));
        assert_eq!(store.item_bytes, 0);
    }

    #[test]
    fn expired_items_are_reclaimed_not_evicted() {
        let mut store = Store::with_limit(8 * 1024, NOW);
        let r = store.store(
            Kind::Set,
            b"old",
            &block(3000),
            0,
            Expiry::At(NOW + 1),
            0,
            NOW,
        );
        assert_eq!(r, Outcome::Stored);
        let r = store.store(
            Kind::Set,
            b"new",
            &block(6000),
            0,
            Expiry::Never,
            0,
            NOW + 1,
        );
        assert_eq!(r, Outcome::Stored);
        assert_eq!(counter(&store, "reclaimed"), 1);
        assert_eq!(counter(&store, "evictions"), 0);
    }

    #[test]
    fn reservations_count_until_dropped() {
        let mut store = Store::with_limit(100_000, NOW);
        assert_eq!(set(&mut store, "a", 30_000), Outcome::Stored);
        let r1 = store.reserve(60_000, NOW).expect("room");
        // No room for another 60,000 while r1 holds, whatever is evicted: refused,
        // and a stays.
        assert!(store.reserve(60_000, NOW).is_none());
        assert!(has(&mut store, "a"));
        // 30,000 more fit once a goes.
        let r3 = store.reserve(30_000, NOW).expect("room after evicting a");
        assert!(!has(&mut store, "a"));
        assert_eq!(counter(&store, "evictions"), 1);
        drop(r3);
        drop(r1);
        let r2 = store.reserve(60_000, NOW).expect("room again");
        assert_eq!(store.in_flight.load(Ordering::Relaxed), 60_000);
        // Dropped on another thread (a connection of another worker): the same.
        std::thread::spawn(move || drop(r2)).join().unwrap();
        assert_eq!(store.used(), store.table_bytes());
    }

    #[test]
    fn every_byte_is_accounted_under_churn() {
        let mut store = Store::with_limit(256 * 1024, NOW);
        let mut x: u64 = 1;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = format!("key{}", x >> 52);
            let len = ((x >> 20) % 3000) as usize;
            match (x >> 40) % 4 {
                0 => {
                    store.delete(key.as_bytes(), NOW);
                }
                1 => {
                    store.get(key.as_bytes(), None, NOW);
                }
                _ => {
                    assert_eq!(set(&mut store, &key, len), Outcome::Stored);
                }
            }
            assert!(store.used() <= 256 * 1024);
            let sum: u64 = store
                .items
                .positions()
                .map(|p| store.items.get(p).charge())
                .sum();
            assert_eq!(sum, store.item_bytes);
            assert_eq!(store.items.len(), store.index_len());
        }
        store.flush(Expiry::Never);
        assert_eq!((store.used(), store.len()), (0, 0));
    }

    impl Store {
        fn index_len(&self) -> usize {
            self.items
                .positions()
                .filter(|&p| self.find(&self.items.get(p).key) == Some(p))
                .count()
        }
    }

    #[test]
    fn expiry_from_exptime() {
        assert_eq!(Expiry::from_exptime(0, NOW), Expiry::Never);
        assert_eq!(Expiry::from_exptime(-5, NOW), Expiry::Past);
        assert_eq!(Expiry::from_exptime(10, NOW), Expiry::At(NOW + 10));
        assert_eq!(Expiry::from_exptime(NOW as i64, NOW), Expiry::Past);
        assert_eq!(
            Expiry::from_exptime(NOW as i64 + 1, NOW),
            Expiry::At(NOW + 1)
        );
    }
}
