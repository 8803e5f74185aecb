//! The protocol engine of `kv_server`: an in-memory store that speaks memcached's
//! text protocol (doc/protocol.txt of memcached). Pure Rust, std only, no I/O: the
//! server loop hands it lines and data blocks and sends what it appends to `out`.
//!
//! The loop's side of the contract, one [`Session`] per connection:
//!
//! * Start with [`Next::Line`]. Deliver each line with its `"\n"` (a `"\r\n"` or a bare
//!   `"\n"` both end a line) to [`Session::on_line`]. A line longer than
//!   [`MAX_LINE`] bytes comes as pieces of at most `MAX_LINE` bytes without the
//!   `"\n"`, the last piece with it; only `get`/`gets` continue over pieces (a long
//!   multi-get), any other long line gets [`Next::Close`], as memcached closes such
//!   a connection.
//! * On [`Next::Exact(n)`](Next::Exact), deliver exactly `n` bytes to
//!   [`Session::on_data`]; `n` never exceeds [`MAX_EXACT`].
//! * On [`Next::Close`], send what is queued in `out`, then close.
//! * Pipelined requests are successive calls; the answers come in order.
//!
//! [`Store::connected`] and [`Store::disconnected`] keep `curr_connections` right.
//! Time is whole seconds since the Unix epoch ([`unix_now`]), passed in by the loop.
#![allow(dead_code)] // the adapter uses some items, the tests others

use std::collections::HashMap;

/// Longest line the loop delivers whole, `"\r\n"` included; longer ones come in
/// pieces. memcached closes a connection whose first 2048 bytes hold no newline
/// unless it is a `get`/`gets`, so 2048 is its limit too.
pub const MAX_LINE: usize = 2048;
/// Longest key (memcached's KEY_MAX_LENGTH).
pub const MAX_KEY: usize = 250;
/// Largest value: 1 MiB (memcached's default item size, `-I 1m`).
pub const MAX_VALUE: usize = 1 << 20;
/// The largest `n` of a [`Next::Exact`]: a value and its `"\r\n"`.
pub const MAX_EXACT: usize = MAX_VALUE + 2;
/// Default memory limit (key and value bytes), memcached's `-m 64`.
pub const DEFAULT_LIMIT: u64 = 64 << 20;
/// What `version` and `stats` report.
pub const VERSION: &str = "1.6.0-unp-select";

/// The data block of a storage command that is refused (too large) is skipped in
/// pieces of at most this size, so the loop never holds more than [`MAX_EXACT`].
const SKIP_CHUNK: usize = 64 * 1024;
/// Expiry times up to 30 days are relative, larger ones are Unix times.
const RELATIVE_MAX: i64 = 60 * 60 * 24 * 30;

/// What the loop should do for this connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Deliver the next line (or piece of a long line) to [`Session::on_line`].
    Line,
    /// Deliver exactly this many bytes to [`Session::on_data`].
    Exact(usize),
    /// Send the queued output, then close the connection.
    Close,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When an item expires, from a client's exptime (protocol.txt, "Expiration times").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Never,
    At(u64),
    /// Negative, or a Unix time already past: expired at once.
    Past,
}

impl Expiry {
    fn from_exptime(t: i64, now: u64) -> Expiry {
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

struct Item {
    value: Vec<u8>,
    flags: u32,
    /// Unix time at which the item expires; 0: never.
    exp: u64,
    cas: u64,
}

impl Item {
    fn expired(&self, now: u64) -> bool {
        self.exp != 0 && now >= self.exp
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
}

/// The items, the cas counter and the statistics, shared by all connections.
pub struct Store {
    items: HashMap<Box<[u8]>, Item>,
    /// The last cas unique handed out.
    cas: u64,
    /// Key and value bytes of the items held (expired ones until they are removed).
    bytes: u64,
    limit: u64,
    started: u64,
    /// A delayed `flush_all`: everything stored before this time goes at this time.
    flush_at: Option<u64>,
    verbosity: u32,
    stats: Counters,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// The storage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// The answer to a storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    OutOfMemory,
}

impl Outcome {
    fn reply(self) -> &'static [u8] {
        match self {
            Outcome::Stored => b"STORED\r\n",
            Outcome::NotStored => b"NOT_STORED\r\n",
            Outcome::Exists => b"EXISTS\r\n",
            Outcome::NotFound => b"NOT_FOUND\r\n",
            Outcome::OutOfMemory => b"SERVER_ERROR out of memory storing object\r\n",
        }
    }
}

fn size(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl Store {
    /// An empty store with the default memory limit, started now.
    pub fn new() -> Store {
        Store::with_limit(DEFAULT_LIMIT, unix_now())
    }

    /// An empty store holding at most `limit` key and value bytes (a store beyond
    /// that answers `SERVER_ERROR out of memory storing object`; there is no
    /// eviction), started at `started` (Unix seconds, for `uptime`).
    pub fn with_limit(limit: u64, started: u64) -> Store {
        Store {
            items: HashMap::new(),
            cas: 0,
            bytes: 0,
            limit,
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
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The counters of `stats` that are numbers, for a final report.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("curr_connections", s.curr_connections),
            ("total_connections", s.total_connections),
            ("curr_items", self.items.len() as u64),
            ("total_items", s.total_items),
            ("bytes", self.bytes),
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
        ]
    }

    /// Carries out a delayed `flush_all` whose time has come.
    fn tick(&mut self, now: u64) {
        if self.flush_at.is_some_and(|t| now >= t) {
            self.flush_at = None;
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let (k, item) = self.items.remove_entry(key)?;
        self.bytes -= size(&k, &item.value);
        Some(item)
    }

    /// The item under `key` unless it has expired (an expired one is removed).
    fn live(&mut self, key: &[u8], now: u64) -> Option<&mut Item> {
        if self.items.get(key)?.expired(now) {
            self.remove(key);
            return None;
        }
        self.items.get_mut(key)
    }

    fn next_cas(&mut self) -> u64 {
        self.cas += 1;
        self.cas
    }

    /// Whether `extra` more bytes fit, after dropping expired items if need be.
    fn room_for(&mut self, extra: u64, now: u64) -> bool {
        if self.bytes + extra <= self.limit {
            return true;
        }
        let mut freed = 0;
        self.items.retain(|k, it| {
            let keep = !it.expired(now);
            if !keep {
                freed += size(k, &it.value);
            }
            keep
        });
        self.bytes -= freed;
        self.bytes + extra <= self.limit
    }

    /// A storage command whose data block arrived.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        kind: Kind,
        key: &[u8],
        value: &[u8],
        flags: u32,
        exp: Expiry,
        cas_unique: u64,
        now: u64,
    ) -> Outcome {
        self.stats.cmd_set += 1;
        let old_len = self.live(key, now).map(|it| (it.value.len(), it.cas));
        match (kind, old_len) {
            (Kind::Add, Some(_)) => return Outcome::NotStored,
            (Kind::Replace | Kind::Append | Kind::Prepend, None) => return Outcome::NotStored,
            (Kind::Cas, None) => {
                self.stats.cas_misses += 1;
                return Outcome::NotFound;
            }
            (Kind::Cas, Some((_, cas))) if cas != cas_unique => {
                self.stats.cas_badval += 1;
                return Outcome::Exists;
            }
            (Kind::Cas, Some(_)) => self.stats.cas_hits += 1,
            _ => {}
        }
        if let (Kind::Append | Kind::Prepend, Some((len, _))) = (kind, old_len) {
            // memcached answers NOT_STORED when the result would be too large.
            if len + value.len() > MAX_VALUE || !self.room_for(value.len() as u64, now) {
                return Outcome::NotStored;
            }
            let cas = self.next_cas();
            let item = self.items.get_mut(key).expect("live item");
            if kind == Kind::Append {
                item.value.extend_from_slice(value);
            } else {
                item.value.splice(0..0, value.iter().copied());
            }
            item.cas = cas;
            self.bytes += value.len() as u64;
            self.stats.total_items += 1;
            return Outcome::Stored;
        }
        if exp == Expiry::Past {
            // Stored and at once expired: nothing to keep.
            self.remove(key);
            self.stats.total_items += 1;
            return Outcome::Stored;
        }
        let old = old_len.map_or(0, |(len, _)| (key.len() + len) as u64);
        if !self.room_for(size(key, value).saturating_sub(old), now) {
            return Outcome::OutOfMemory;
        }
        let cas = self.next_cas();
        let exp = exp.stamp();
        match self.items.get_mut(key) {
            Some(item) => {
                self.bytes -= item.value.len() as u64;
                if item.value.capacity() > 2 * value.len() + 64 {
                    item.value = value.to_vec(); // do not hoard a large old buffer
                } else {
                    item.value.clear();
                    item.value.extend_from_slice(value);
                }
                item.flags = flags;
                item.exp = exp;
                item.cas = cas;
                self.bytes += value.len() as u64;
            }
            None => {
                self.bytes += size(key, value);
                let item = Item {
                    value: value.to_vec(),
                    flags,
                    exp,
                    cas,
                };
                self.items.insert(key.into(), item);
            }
        }
        self.stats.total_items += 1;
        Outcome::Stored
    }

    /// One key of `get`/`gets`/`gat`/`gats`: its `VALUE` line and data, if held.
    fn retrieve(
        &mut self,
        key: &[u8],
        cas: bool,
        touch: Option<Expiry>,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        self.stats.cmd_get += 1;
        if touch.is_some() {
            self.stats.cmd_touch += 1;
        }
        let Some(item) = self.live(key, now) else {
            self.stats.get_misses += 1;
            if touch.is_some() {
                self.stats.touch_misses += 1;
            }
            return;
        };
        if let Some(exp) = touch {
            item.exp = exp.stamp();
        }
        out.extend_from_slice(b"VALUE ");
        out.extend_from_slice(key);
        out.push(b' ');
        push_u64(out, u64::from(item.flags));
        out.push(b' ');
        push_u64(out, item.value.len() as u64);
        if cas {
            out.push(b' ');
            push_u64(out, item.cas);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&item.value);
        out.extend_from_slice(b"\r\n");
        let expired_now = item.expired(now);
        self.stats.get_hits += 1;
        if touch.is_some() {
            self.stats.touch_hits += 1;
            if expired_now {
                self.remove(key); // gat with a negative exptime
            }
        }
    }

    fn write_stats(&self, now: u64, out: &mut Vec<u8>) {
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
        stat("limit_maxbytes", &self.limit);
        for (name, value) in self.counters() {
            stat(name, &value);
        }
        stat("evictions", &0);
        out.extend_from_slice(b"END\r\n");
    }
}

/// A storage command waiting for its data block.
struct Pending {
    kind: Kind,
    flags: u32,
    exp: Expiry,
    len: usize,
    cas: u64,
    noreply: bool,
}

/// A `get`/`gets` whose keys are still coming (a line longer than [`MAX_LINE`]).
struct Multiget {
    cas: bool,
    /// A key too long or with a control character was seen: answer
    /// `CLIENT_ERROR bad command line format` when the line ends.
    failed: bool,
    keys: u64,
}

enum State {
    Ready,
    Data(Pending),
    /// Bytes of a refused data block still to be skipped.
    Skip(u64),
    Multiget(Multiget),
}

/// One connection's parser state.
pub struct Session {
    state: State,
    /// The key of a storage command, between its line and its data block.
    key: Vec<u8>,
    /// The unfinished last key of a piece of a long multi-get.
    partial: Vec<u8>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

const ERROR: &[u8] = b"ERROR\r\n";
const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
const BAD_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const DELETE_USAGE: &[u8] =
    b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";

/// The most arguments any command other than the retrievals takes (cas: 6).
const MAX_ARGS: usize = 6;

impl Session {
    pub fn new() -> Session {
        Session {
            state: State::Ready,
            key: Vec::new(),
            partial: Vec::new(),
        }
    }

    /// A line, with its `"\n"` (and maybe `"\r"` before it), or a piece of a line
    /// longer than [`MAX_LINE`] without one. Call when the last answer was
    /// [`Next::Line`].
    pub fn on_line(&mut self, store: &mut Store, line: &[u8], now: u64, out: &mut Vec<u8>) -> Next {
        store.tick(now);
        let (body, complete) = match line.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (line, false),
        };
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Ready => {}
            State::Multiget(mut get) => {
                self.multiget_chunk(store, &mut get, body, complete, now, out);
                return self.multiget_next(get, complete, out);
            }
            State::Data(_) | State::Skip(_) => {
                // The loop gave a line where it was asked for a data block.
                debug_assert!(false, "on_line while a data block is expected");
                return Next::Close;
            }
        }
        if !complete {
            // A line longer than MAX_LINE: only a multi-get may be that long.
            let body = trim_start(body);
            let cas = if body.starts_with(b"get ") {
                false
            } else if body.starts_with(b"gets ") {
                true
            } else {
                return Next::Close;
            };
            let mut get = Multiget {
                cas,
                failed: false,
                keys: 0,
            };
            let rest = &body[if cas { 5 } else { 4 }..];
            self.multiget_chunk(store, &mut get, rest, false, now, out);
            return self.multiget_next(get, false, out);
        }
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        self.command(store, body, now, out)
    }

    /// The `n` bytes asked for by [`Next::Exact(n)`](Next::Exact).
    pub fn on_data(&mut self, store: &mut Store, data: &[u8], now: u64, out: &mut Vec<u8>) -> Next {
        store.tick(now);
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Skip(left) => {
                let left = left.saturating_sub(data.len() as u64);
                if left == 0 {
                    Next::Line
                } else {
                    self.state = State::Skip(left);
                    Next::Exact(skip_chunk(left))
                }
            }
            State::Data(p) => {
                let reply = if data.len() != p.len + 2 || !data.ends_with(b"\r\n") {
                    BAD_CHUNK
                } else {
                    let value = &data[..p.len];
                    store
                        .store(p.kind, &self.key, value, p.flags, p.exp, p.cas, now)
                        .reply()
                };
                if !p.noreply {
                    out.extend_from_slice(reply);
                }
                Next::Line
            }
            State::Ready | State::Multiget(_) => {
                debug_assert!(false, "on_data while a line is expected");
                Next::Close
            }
        }
    }

    /// A complete command line, without its line end.
    fn command(&mut self, store: &mut Store, line: &[u8], now: u64, out: &mut Vec<u8>) -> Next {
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let Some(cmd) = words.next() else {
            out.extend_from_slice(ERROR);
            return Next::Line;
        };
        match cmd {
            b"get" | b"gets" | b"gat" | b"gats" => {
                let touch = if cmd.starts_with(b"gat") {
                    let Some(t) = words.next() else {
                        out.extend_from_slice(ERROR);
                        return Next::Line;
                    };
                    match parse_i64(t) {
                        Some(t) => Some(Expiry::from_exptime(t, now)),
                        None => {
                            out.extend_from_slice(BAD_EXPTIME);
                            return Next::Line;
                        }
                    }
                } else {
                    None
                };
                let cas = cmd.ends_with(b"s");
                let start = out.len();
                let mut keys = 0;
                for key in words {
                    if !valid_key(key) {
                        // memcached answers the error alone, none of the values.
                        out.truncate(start);
                        out.extend_from_slice(BAD_FORMAT);
                        return Next::Line;
                    }
                    keys += 1;
                    store.retrieve(key, cas, touch, now, out);
                }
                if keys == 0 && touch.is_none() {
                    out.extend_from_slice(ERROR);
                } else {
                    out.extend_from_slice(b"END\r\n");
                }
                return Next::Line;
            }
            b"quit" => return Next::Close,
            b"version" => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(VERSION.as_bytes());
                out.extend_from_slice(b"\r\n");
                return Next::Line;
            }
            _ => {}
        }
        let mut args: [&[u8]; MAX_ARGS] = [&[]; MAX_ARGS];
        let mut n = 0;
        for w in words {
            if n == MAX_ARGS {
                out.extend_from_slice(ERROR);
                return Next::Line;
            }
            args[n] = w;
            n += 1;
        }
        let args = &args[..n];
        let reply: &[u8] = match cmd {
            b"set" => return self.storage(store, Kind::Set, args, now, out),
            b"add" => return self.storage(store, Kind::Add, args, now, out),
            b"replace" => return self.storage(store, Kind::Replace, args, now, out),
            b"append" => return self.storage(store, Kind::Append, args, now, out),
            b"prepend" => return self.storage(store, Kind::Prepend, args, now, out),
            b"cas" => return self.storage(store, Kind::Cas, args, now, out),
            b"incr" | b"decr" => return incr_decr(store, cmd == b"incr", args, now, out),
            b"delete" => delete(store, args, now),
            b"touch" => touch(store, args, now),
            b"flush_all" => flush_all(store, args, now),
            b"verbosity" => verbosity(store, args),
            b"stats" if args.is_empty() => {
                store.write_stats(now, out);
                return Next::Line;
            }
            _ => Some(ERROR),
        }
        .unwrap_or(b"");
        out.extend_from_slice(reply);
        Next::Line
    }

    /// `set`, `add`, `replace`, `append`, `prepend`: `<key> <flags> <exptime> <bytes>
    /// [noreply]`; `cas`: the same with `<cas unique>` before `[noreply]`.
    fn storage(
        &mut self,
        store: &mut Store,
        kind: Kind,
        args: &[&[u8]],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Next {
        let base = if kind == Kind::Cas { 5 } else { 4 };
        if args.len() != base && args.len() != base + 1 {
            out.extend_from_slice(ERROR);
            return Next::Line;
        }
        // A last word other than "noreply" is ignored, as memcached does.
        let noreply = args.len() == base + 1 && args[base] == b"noreply";
        let reply = |out: &mut Vec<u8>, r: &[u8]| {
            if !noreply {
                out.extend_from_slice(r);
            }
        };
        let key = args[0];
        let flags = parse_u64(args[1]).and_then(|f| u32::try_from(f).ok());
        let exptime = parse_i64(args[2]);
        let len = parse_u64(args[3]);
        let cas = if kind == Kind::Cas {
            parse_u64(args[4])
        } else {
            Some(0)
        };
        let (Some(flags), Some(exptime), Some(len), Some(cas), true) =
            (flags, exptime, len, cas, valid_key(key))
        else {
            // The data block is not skipped: memcached reads it as a command line.
            reply(out, BAD_FORMAT);
            return Next::Line;
        };
        if len > MAX_VALUE as u64 {
            reply(out, TOO_LARGE);
            if kind == Kind::Set {
                // memcached drops the old value of a set that failed.
                store.remove(key);
            }
            let skip = len.saturating_add(2);
            self.state = State::Skip(skip);
            return Next::Exact(skip_chunk(skip));
        }
        let len = len as usize;
        self.key.clear();
        self.key.extend_from_slice(key);
        self.state = State::Data(Pending {
            kind,
            flags,
            exp: Expiry::from_exptime(exptime, now),
            len,
            cas,
            noreply,
        });
        Next::Exact(len + 2)
    }

    /// The keys in `chunk`, the continuation of a long `get`/`gets` line; `last`: the
    /// line ends with this chunk.
    fn multiget_chunk(
        &mut self,
        store: &mut Store,
        get: &mut Multiget,
        mut chunk: &[u8],
        last: bool,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        if last {
            // The "\r" of "\r\n" may have ended the previous piece.
            match chunk.strip_suffix(b"\r") {
                Some(c) => chunk = c,
                None if chunk.is_empty() && self.partial.last() == Some(&b'\r') => {
                    self.partial.pop();
                }
                None => {}
            }
        }
        if !self.partial.is_empty() {
            // The key cut at the end of the previous piece goes on here.
            let end = chunk.iter().position(|&b| b == b' ').unwrap_or(chunk.len());
            self.partial.extend_from_slice(&chunk[..end]);
            chunk = &chunk[end..];
            if self.partial.len() > MAX_KEY {
                get.failed = true;
                self.partial.clear();
            } else if !chunk.is_empty() || last {
                let key = std::mem::take(&mut self.partial);
                multiget_key(store, get, &key, now, out);
                self.partial = key;
                self.partial.clear();
            } else {
                return; // the key goes on in the next piece
            }
        }
        let (whole, tail) = if last {
            (chunk, &[][..])
        } else {
            match chunk.iter().rposition(|&b| b == b' ') {
                Some(i) => (&chunk[..i], &chunk[i + 1..]),
                None => (&[][..], chunk),
            }
        };
        for key in whole.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            multiget_key(store, get, key, now, out);
        }
        if tail.len() > MAX_KEY {
            get.failed = true;
        } else {
            self.partial.extend_from_slice(tail);
        }
    }

    fn multiget_next(&mut self, get: Multiget, complete: bool, out: &mut Vec<u8>) -> Next {
        if !complete {
            self.state = State::Multiget(get);
            return Next::Line;
        }
        self.partial.clear();
        out.extend_from_slice(if get.failed {
            // Values sent for earlier pieces may already be out: the error follows them.
            BAD_FORMAT
        } else if get.keys == 0 {
            ERROR
        } else {
            b"END\r\n"
        });
        Next::Line
    }
}

fn multiget_key(store: &mut Store, get: &mut Multiget, key: &[u8], now: u64, out: &mut Vec<u8>) {
    if get.failed {
        return;
    }
    if !valid_key(key) {
        get.failed = true;
        return;
    }
    get.keys += 1;
    store.retrieve(key, get.cas, None, now, out);
}

/// Whether the last of `args` is `noreply` (and there are at least `min` args).
fn noreply(args: &[&[u8]], min: usize) -> bool {
    args.len() >= min && args.last() == Some(&&b"noreply"[..])
}

/// `None` for noreply, else the answer.
fn answer(noreply: bool, reply: &'static [u8]) -> Option<&'static [u8]> {
    (!noreply).then_some(reply)
}

/// `incr|decr <key> <value> [noreply]`.
fn incr_decr(store: &mut Store, incr: bool, args: &[&[u8]], now: u64, out: &mut Vec<u8>) -> Next {
    if args.len() != 2 && args.len() != 3 {
        out.extend_from_slice(ERROR);
        return Next::Line;
    }
    let noreply = args.len() == 3 && args[2] == b"noreply";
    let reply = |out: &mut Vec<u8>, r: &[u8]| {
        if !noreply {
            out.extend_from_slice(r);
        }
    };
    if !valid_key(args[0]) {
        reply(out, BAD_FORMAT);
        return Next::Line;
    }
    let Some(delta) = parse_u64(args[1]) else {
        reply(out, BAD_DELTA);
        return Next::Line;
    };
    let key = args[0];
    let Some(item) = store.live(key, now) else {
        if incr {
            store.stats.incr_misses += 1;
        } else {
            store.stats.decr_misses += 1;
        }
        reply(out, b"NOT_FOUND\r\n");
        return Next::Line;
    };
    let Some(old) = parse_number(&item.value) else {
        reply(out, NON_NUMERIC);
        return Next::Line;
    };
    // incr wraps at 2^64; decr stops at 0 (protocol.txt).
    let new = if incr {
        old.wrapping_add(delta)
    } else {
        old.saturating_sub(delta)
    };
    let old_len = item.value.len() as u64;
    item.value.clear();
    push_u64(&mut item.value, new);
    let new_len = item.value.len() as u64;
    // The number's bytes are written back without memcached's space padding.
    if !noreply {
        out.extend_from_slice(&item.value);
        out.extend_from_slice(b"\r\n");
    }
    store.bytes = store.bytes - old_len + new_len;
    let cas = store.next_cas();
    if let Some(item) = store.items.get_mut(key) {
        item.cas = cas;
    }
    if incr {
        store.stats.incr_hits += 1;
    } else {
        store.stats.decr_hits += 1;
    }
    Next::Line
}

/// `delete <key> [0] [noreply]` (the old hold time may only be 0).
fn delete(store: &mut Store, args: &[&[u8]], now: u64) -> Option<&'static [u8]> {
    if args.is_empty() || args.len() > 3 {
        return Some(ERROR);
    }
    let noreply = noreply(args, 2);
    let ok = match args {
        [_] => true,
        [_, a] => *a == b"0" || *a == b"noreply",
        [_, a, b] => *a == b"0" && *b == b"noreply",
        _ => false,
    };
    if !ok {
        return answer(noreply, DELETE_USAGE);
    }
    if !valid_key(args[0]) {
        return answer(noreply, BAD_FORMAT);
    }
    if store.live(args[0], now).is_some() {
        store.remove(args[0]);
        store.stats.delete_hits += 1;
        answer(noreply, b"DELETED\r\n")
    } else {
        store.stats.delete_misses += 1;
        answer(noreply, b"NOT_FOUND\r\n")
    }
}

/// `touch <key> <exptime> [noreply]`.
fn touch(store: &mut Store, args: &[&[u8]], now: u64) -> Option<&'static [u8]> {
    if args.len() != 2 && args.len() != 3 {
        return Some(ERROR);
    }
    let noreply = args.len() == 3 && args[2] == b"noreply";
    if !valid_key(args[0]) {
        return answer(noreply, BAD_FORMAT);
    }
    let Some(exptime) = parse_i64(args[1]) else {
        return answer(noreply, BAD_EXPTIME);
    };
    store.stats.cmd_touch += 1;
    let exp = Expiry::from_exptime(exptime, now);
    match store.live(args[0], now) {
        Some(item) => {
            item.exp = exp.stamp();
            if exp == Expiry::Past {
                store.remove(args[0]);
            }
            store.stats.touch_hits += 1;
            answer(noreply, b"TOUCHED\r\n")
        }
        None => {
            store.stats.touch_misses += 1;
            answer(noreply, b"NOT_FOUND\r\n")
        }
    }
}

/// `flush_all [delay] [noreply]`.
fn flush_all(store: &mut Store, args: &[&[u8]], now: u64) -> Option<&'static [u8]> {
    if args.len() > 2 {
        return Some(ERROR);
    }
    let noreply = noreply(args, 1);
    let delay = match args.first() {
        Some(&d) if d != b"noreply" => match parse_i64(d) {
            Some(d) => d,
            None => return answer(noreply, BAD_EXPTIME),
        },
        _ => 0,
    };
    store.stats.cmd_flush += 1;
    match Expiry::from_exptime(delay, now) {
        Expiry::At(t) => store.flush_at = Some(t),
        Expiry::Never | Expiry::Past => {
            store.flush_at = None;
            store.clear();
        }
    }
    answer(noreply, b"OK\r\n")
}

/// `verbosity <level> [noreply]`: kept, and otherwise without effect.
fn verbosity(store: &mut Store, args: &[&[u8]]) -> Option<&'static [u8]> {
    if args.is_empty() || args.len() > 2 {
        return Some(ERROR);
    }
    let noreply = noreply(args, 1);
    if args[0] == b"noreply" {
        return None;
    }
    match parse_u64(args[0]).and_then(|v| u32::try_from(v).ok()) {
        Some(level) => {
            store.verbosity = level;
            answer(noreply, b"OK\r\n")
        }
        None => answer(noreply, BAD_FORMAT),
    }
}

/// At most [`MAX_KEY`] bytes, no control character (space cannot occur: it
/// separates words).
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && !key.iter().any(|&b| b < 0x20 || b == 0x7f)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

fn skip_chunk(left: u64) -> usize {
    left.min(SKIP_CHUNK as u64) as usize
}

/// A decimal unsigned number, as strtoull takes it in a whole word: an optional
/// `+`, then digits only; `None` on overflow.
fn parse_u64(word: &[u8]) -> Option<u64> {
    let digits = word.strip_prefix(b"+").unwrap_or(word);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A decimal signed number with an optional sign.
fn parse_i64(word: &[u8]) -> Option<i64> {
    match word.strip_prefix(b"-") {
        Some(digits) if !digits.starts_with(b"+") => {
            let n = parse_u64(digits)?;
            0i64.checked_sub_unsigned(n)
        }
        Some(_) => None,
        None => i64::try_from(parse_u64(word)?).ok(),
    }
}

/// An item's value read as a number for incr/decr, as memcached reads it: leading
/// white space, an optional `+`, digits, then the end, white space or a NUL.
fn parse_number(value: &[u8]) -> Option<u64> {
    let start = value.iter().take_while(|b| is_c_space(**b)).count();
    let rest = &value[start..];
    let end = rest
        .iter()
        .enumerate()
        .position(|(i, &b)| !(b.is_ascii_digit() || (i == 0 && b == b'+')))
        .unwrap_or(rest.len());
    match rest.get(end) {
        None => {}
        Some(&b) if is_c_space(b) || b == 0 => {}
        Some(_) => return None,
    }
    parse_u64(&rest[..end])
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Appends `n` in decimal.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed clock: 2026-01-01, far past 30 days, so relative and absolute
    /// exptimes differ.
    const NOW: u64 = 1_767_225_600;

    /// One connection to a store, driven the way the loop drives a session.
    struct Conn {
        store: Store,
        session: Session,
        closed: bool,
    }

    impl Conn {
        fn new() -> Conn {
            Conn::with_store(Store::with_limit(DEFAULT_LIMIT, NOW - 100))
        }

        fn with_store(store: Store) -> Conn {
            Conn {
                store,
                session: Session::new(),
                closed: false,
            }
        }

        /// Feeds `input` at time `now` as the loop would: lines of at most MAX_LINE
        /// bytes (longer ones in pieces), data blocks of the asked size. Returns the
        /// output; a Close stops the feeding.
        fn feed_at(&mut self, input: &[u8], now: u64) -> Vec<u8> {
            assert!(!self.closed, "fed after Close");
            let mut out = Vec::new();
            let mut next = Next::Line;
            let mut rest = input;
            loop {
                match next {
                    Next::Close => {
                        self.closed = true;
                        return out;
                    }
                    Next::Line => {
                        let window = &rest[..rest.len().min(MAX_LINE)];
                        let n = match window.iter().position(|&b| b == b'\n') {
                            Some(i) => i + 1,
                            None if window.len() == MAX_LINE => MAX_LINE,
                            None => {
                                assert!(rest.is_empty(), "unfinished line left: {rest:?}");
                                return out;
                            }
                        };
                        next = self
                            .session
                            .on_line(&mut self.store, &rest[..n], now, &mut out);
                        rest = &rest[n..];
                    }
                    Next::Exact(n) => {
                        assert!(n <= MAX_EXACT, "Exact({n}) is more than MAX_EXACT");
                        assert!(rest.len() >= n, "input ends inside a data block");
                        next = self
                            .session
                            .on_data(&mut self.store, &rest[..n], now, &mut out);
                        rest = &rest[n..];
                    }
                }
            }
        }

        fn feed(&mut self, input: &[u8]) -> Vec<u8> {
            self.feed_at(input, NOW)
        }

        /// Feeds `input` and checks the whole answer.
        #[track_caller]
        fn exchange(&mut self, input: &str, expected: &str) {
            self.exchange_at(input, NOW, expected);
        }

        #[track_caller]
        fn exchange_at(&mut self, input: &str, now: u64, expected: &str) {
            let got = self.feed_at(input.as_bytes(), now);
            assert_eq!(String::from_utf8_lossy(&got), expected, "input {input:?}");
        }
    }

    fn stat(c: &mut Conn, name: &str) -> String {
        let out = String::from_utf8(c.feed(b"stats\r\n")).unwrap();
        assert!(out.ends_with("END\r\n"), "{out}");
        let prefix = format!("STAT {name} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    }

    #[test]
    fn set_get_gets_keep_flags_and_cas() {
        let mut c = Conn::new();
        c.exchange("set a 5 0 5\r\nhello\r\n", "STORED\r\n");
        c.exchange("get a\r\n", "VALUE a 5 5\r\nhello\r\nEND\r\n");
        c.exchange("gets a\r\n", "VALUE a 5 5 1\r\nhello\r\nEND\r\n");
        c.exchange("set a 4294967295 0 1\r\nx\r\n", "STORED\r\n");
        c.exchange("gets a\r\n", "VALUE a 4294967295 1 2\r\nx\r\nEND\r\n");
        c.exchange("get b\r\n", "END\r\n");
        // A bare "\n" ends lines too, and "+" and leading zeros are numbers.
        c.exchange(
            "set c +1 +0 01\nz\r\nget c\n",
            "STORED\r\nVALUE c 1 1\r\nz\r\nEND\r\n",
        );
    }

    #[test]
    fn get_several_keys() {
        let mut c = Conn::new();
        c.feed(b"set a 1 0 1\r\nA\r\nset b 2 0 2\r\nBB\r\n");
        c.exchange(
            "get a nokey b a\r\n",
            "VALUE a 1 1\r\nA\r\nVALUE b 2 2\r\nBB\r\nVALUE a 1 1\r\nA\r\nEND\r\n",
        );
        c.exchange(
            "gets  a   b \r\n",
            "VALUE a 1 1 1\r\nA\r\nVALUE b 2 2 2\r\nBB\r\nEND\r\n",
        );
        // One bad key: the error alone, as memcached answers.
        let long = "k".repeat(251);
        c.exchange(
            &format!("get a {long} b\r\n"),
            "CLIENT_ERROR bad command line format\r\n",
        );
        c.exchange("get\r\n", "ERROR\r\n");
        c.exchange("gets \r\n", "ERROR\r\n");
    }

    #[test]
    fn add_and_replace() {
        let mut c = Conn::new();
        c.exchange(
            "add k 0 0 1\r\nx\r\nadd k 0 0 1\r\ny\r\nreplace k 3 0 1\r\nz\r\nreplace nokey 0 0 1\r\nz\r\nget k nokey\r\n",
            "STORED\r\nNOT_STORED\r\nSTORED\r\nNOT_STORED\r\nVALUE k 3 1\r\nz\r\nEND\r\n",
        );
    }

    #[test]
    fn append_and_prepend_keep_flags_and_expiry() {
        let mut c = Conn::new();
        c.exchange(
            "append k 0 0 1\r\nx\r\nprepend k 0 0 1\r\nx\r\n",
            "NOT_STORED\r\nNOT_STORED\r\n",
        );
        c.exchange(
            "set k 7 100 1\r\nm\r\nappend k 9 0 2\r\nab\r\nprepend k 3 0 2\r\nyz\r\ngets k\r\n",
            "STORED\r\nSTORED\r\nSTORED\r\nVALUE k 7 5 3\r\nyzmab\r\nEND\r\n",
        );
        // The expiry of the set (100 s) still holds.
        c.exchange_at("get k\r\n", NOW + 99, "VALUE k 7 5\r\nyzmab\r\nEND\r\n");
        c.exchange_at("get k\r\n", NOW + 100, "END\r\n");
    }

    #[test]
    fn cas_semantics() {
        let mut c = Conn::new();
        c.exchange("cas k 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
        c.exchange(
            "set k 0 0 1\r\nx\r\ngets k\r\n",
            "STORED\r\nVALUE k 0 1 1\r\nx\r\nEND\r\n",
        );
        c.exchange("cas k 0 0 1 999\r\ny\r\n", "EXISTS\r\n");
        c.exchange("cas k 4 0 1 1\r\ny\r\n", "STORED\r\n");
        // The item changed: the old unique no longer matches.
        c.exchange("cas k 0 0 1 1\r\nz\r\n", "EXISTS\r\n");
        c.exchange("gets k\r\n", "VALUE k 4 1 2\r\ny\r\nEND\r\n");
        // Every change gives a new unique, touch does not.
        c.exchange(
            "touch k 100\r\ngets k\r\n",
            "TOUCHED\r\nVALUE k 4 1 2\r\ny\r\nEND\r\n",
        );
        c.exchange(
            "append k 0 0 1\r\n!\r\ngets k\r\n",
            "STORED\r\nVALUE k 4 2 3\r\ny!\r\nEND\r\n",
        );
        c.exchange(
            "cas k 0 0 1 3 noreply\r\nw\r\nget k\r\n",
            "VALUE k 0 1\r\nw\r\nEND\r\n",
        );
        // A bad unique: the error, then the data line is read as a command.
        c.exchange(
            "cas k 0 0 1 abc\r\ny\r\ncas k 0 0 1\r\ny\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\nERROR\r\nERROR\r\n",
        );
        assert_eq!(stat(&mut c, "cas_hits"), "2");
        assert_eq!(stat(&mut c, "cas_badval"), "2");
        assert_eq!(stat(&mut c, "cas_misses"), "1");
    }

    #[test]
    fn delete_forms() {
        let mut c = Conn::new();
        c.exchange(
            "delete k\r\nset k 0 0 1\r\nx\r\ndelete k\r\nget k\r\n",
            "NOT_FOUND\r\nSTORED\r\nDELETED\r\nEND\r\n",
        );
        c.feed(b"set k 0 0 1\r\nx\r\n");
        c.exchange("delete k noreply\r\nget k\r\n", "END\r\n");
        c.exchange("delete k 0\r\n", "NOT_FOUND\r\n");
        c.exchange("delete k 0 noreply\r\n", "");
        let usage = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
        c.exchange(
            "delete k 10\r\ndelete k 0 x\r\n",
            &format!("{usage}{usage}"),
        );
        c.exchange("delete\r\ndelete k 0 noreply x\r\n", "ERROR\r\nERROR\r\n");
    }

    #[test]
    fn incr_and_decr() {
        let mut c = Conn::new();
        c.exchange("incr k 1\r\ndecr k 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n");
        c.exchange(
            "set k 5 0 2\r\n10\r\nincr k 5\r\ndecr k 100\r\nincr k 01\r\nincr k +1\r\n",
            "STORED\r\n15\r\n0\r\n1\r\n2\r\n",
        );
        // Flags stay; the new number is the value.
        c.exchange("get k\r\n", "VALUE k 5 1\r\n2\r\nEND\r\n");
        c.exchange("decr k 1\r\ndecr k 1\r\n", "1\r\n0\r\n");
        // incr wraps at 2^64.
        c.exchange(
            "incr k 18446744073709551615\r\nincr k 1\r\n",
            "18446744073709551615\r\n0\r\n",
        );
        c.exchange(
            "set k 0 0 20\r\n18446744073709551615\r\nincr k 2\r\nget k\r\n",
            "STORED\r\n1\r\nVALUE k 0 1\r\n1\r\nEND\r\n",
        );
        let bad_delta = "CLIENT_ERROR invalid numeric delta argument\r\n";
        c.exchange(
            "incr k abc\r\nincr k -1\r\nincr k 1x\r\nincr k 18446744073709551616\r\n",
            &bad_delta.repeat(4),
        );
        c.exchange("incr k\r\nincr k 1 noreply x\r\n", "ERROR\r\nERROR\r\n");
        // The value must be a number, as strtoull reads it.
        let non_numeric = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        for v in ["abc", "-1", "", " ", "12x", "18446744073709551616"] {
            c.exchange(
                &format!("set n 0 0 {}\r\n{v}\r\nincr n 1\r\n", v.len()),
                &format!("STORED\r\n{non_numeric}"),
            );
        }
        for v in [" 12", "12 ", "+12", "12\0", "000000000000000000012", "12 x"] {
            c.exchange(
                &format!("set n 0 0 {}\r\n{v}\r\nincr n 1\r\n", v.len()),
                "STORED\r\n13\r\n",
            );
        }
        // noreply: nothing, also for errors; the change is made.
        c.exchange(
            "set n 0 0 1\r\n5\r\nincr n 3 noreply\r\nincr n x noreply\r\nincr nokey 1 noreply\r\ndecr n 1 noreply\r\nget n\r\n",
            "STORED\r\nVALUE n 0 1\r\n7\r\nEND\r\n",
        );
        assert_eq!(stat(&mut c, "incr_misses"), "2");
        assert_eq!(stat(&mut c, "decr_misses"), "1");
    }

    #[test]
    fn touch_and_gat() {
        let mut c = Conn::new();
        c.exchange("touch k 10\r\n", "NOT_FOUND\r\n");
        c.exchange(
            "set k 0 10 1\r\nx\r\ntouch k 100\r\n",
            "STORED\r\nTOUCHED\r\n",
        );
        c.exchange_at("get k\r\n", NOW + 50, "VALUE k 0 1\r\nx\r\nEND\r\n");
        c.exchange_at("get k\r\n", NOW + 100, "END\r\n");
        c.exchange(
            "set k 0 0 1\r\nx\r\ntouch k abc\r\ntouch k\r\ntouch k 1 noreply\r\ntouch k 10 extra\r\n",
            "STORED\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\nTOUCHED\r\n",
        );
        c.exchange("touch k -1\r\nget k\r\n", "TOUCHED\r\nEND\r\n");
        // gat/gats: get and touch.
        c.exchange(
            "set g 2 0 1\r\ny\r\ngat 100 g nokey\r\ngats 100 g\r\n",
            "STORED\r\nVALUE g 2 1\r\ny\r\nEND\r\nVALUE g 2 1 3\r\ny\r\nEND\r\n",
        );
        c.exchange_at("get g\r\n", NOW + 100, "END\r\n");
        c.exchange(
            "gat abc g\r\ngat 100\r\ngat\r\n",
            "CLIENT_ERROR invalid exptime argument\r\nEND\r\nERROR\r\n",
        );
    }

    #[test]
    fn expiry_rules() {
        let mut c = Conn::new();
        // Relative up to 30 days.
        c.feed(b"set rel 0 2592000 1\r\nx\r\n");
        c.exchange_at(
            "get rel\r\n",
            NOW + 2_591_999,
            "VALUE rel 0 1\r\nx\r\nEND\r\n",
        );
        c.exchange_at("get rel\r\n", NOW + 2_592_000, "END\r\n");
        // Above 30 days: a Unix time, here long past.
        c.exchange(
            "set old 0 2592001 1\r\nx\r\nget old\r\n",
            "STORED\r\nEND\r\n",
        );
        // A Unix time to come.
        let at = NOW + 500;
        c.exchange(
            &format!("set abs 0 {at} 1\r\nx\r\nget abs\r\n"),
            "STORED\r\nVALUE abs 0 1\r\nx\r\nEND\r\n",
        );
        c.exchange_at("get abs\r\n", at - 1, "VALUE abs 0 1\r\nx\r\nEND\r\n");
        c.exchange_at("get abs\r\n", at, "END\r\n");
        // Negative: expired at once, and it replaces what was there.
        c.exchange(
            "set neg 0 0 1\r\nx\r\nset neg 0 -1 1\r\ny\r\nget neg\r\n",
            "STORED\r\nSTORED\r\nEND\r\n",
        );
        // 0: never.
        c.exchange_at("set z 0 0 1\r\nx\r\n", NOW, "STORED\r\n");
        c.exchange_at(
            "get z\r\n",
            NOW + 100_000_000,
            "VALUE z 0 1\r\nx\r\nEND\r\n",
        );
        // An expired item is gone for add, replace, incr, cas too.
        c.exchange("set e 0 1 1\r\n1\r\n", "STORED\r\n");
        c.exchange_at(
            "replace e 0 0 1\r\n2\r\nincr e 1\r\nadd e 0 0 1\r\n3\r\nget e\r\n",
            NOW + 1,
            "NOT_STORED\r\nNOT_FOUND\r\nSTORED\r\nVALUE e 0 1\r\n3\r\nEND\r\n",
        );
        c.exchange(
            "set x 0 abc 1\r\nx\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
    }

    #[test]
    fn flush_all_now_and_later() {
        let mut c = Conn::new();
        c.feed(b"set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\n");
        c.exchange("flush_all\r\nget a b\r\n", "OK\r\nEND\r\n");
        assert_eq!(stat(&mut c, "curr_items"), "0");
        assert_eq!(stat(&mut c, "bytes"), "0");
        // Set in the same second after a flush: kept.
        c.exchange(
            "set a 0 0 1\r\nx\r\nget a\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        );
        // Delayed: everything stored before the time goes then, later stores stay.
        c.exchange("flush_all 10\r\n", "OK\r\n");
        c.exchange_at(
            "set b 0 0 1\r\ny\r\nget a\r\n",
            NOW + 9,
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        );
        c.exchange_at(
            "get a b\r\nset c 0 0 1\r\nz\r\n",
            NOW + 10,
            "END\r\nSTORED\r\n",
        );
        c.exchange_at("get c\r\n", NOW + 20, "VALUE c 0 1\r\nz\r\nEND\r\n");
        c.exchange(
            "flush_all noreply\r\nflush_all 0 noreply\r\nflush_all -1\r\nflush_all 0 x\r\n",
            "OK\r\nOK\r\n",
        );
        c.exchange(
            "flush_all abc\r\nflush_all 99999999999999999999\r\nflush_all 0 2 3\r\nflush_all abc noreply\r\n",
            "CLIENT_ERROR invalid exptime argument\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\n",
        );
        // An immediate flush cancels a delayed one.
        c.exchange(
            "flush_all 10\r\nflush_all\r\nset d 0 0 1\r\nd\r\n",
            "OK\r\nOK\r\nSTORED\r\n",
        );
        c.exchange_at("get d\r\n", NOW + 20, "VALUE d 0 1\r\nd\r\nEND\r\n");
        assert_eq!(stat(&mut c, "cmd_flush"), "8");
    }

    #[test]
    fn version_verbosity_quit() {
        let mut c = Conn::new();
        c.exchange(
            "version\r\nversion x\r\n",
            "VERSION 1.6.0-unp-select\r\nVERSION 1.6.0-unp-select\r\n",
        );
        c.exchange(
            "verbosity\r\nverbosity 1\r\nverbosity 1 noreply\r\nverbosity noreply\r\nverbosity 1 2\r\n",
            "ERROR\r\nOK\r\nOK\r\n",
        );
        c.exchange(
            "verbosity abc\r\nverbosity -1\r\nverbosity 1 2 3\r\n",
            "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
        assert_eq!(c.store.verbosity, 1);
        c.exchange("get a\r\nquit\r\nversion\r\n", "END\r\n");
        assert!(c.closed);
        let mut c = Conn::new();
        c.exchange("quit now\r\n", "");
        assert!(c.closed);
    }

    #[test]
    fn stats_report() {
        let mut store = Store::with_limit(DEFAULT_LIMIT, NOW - 100);
        store.connected();
        store.connected();
        store.disconnected();
        let mut c = Conn::with_store(store);
        c.feed(b"set a 0 0 3\r\nabc\r\nset b 0 0 1\r\nx\r\nset a 0 0 2\r\nde\r\nget a b c\r\ngets a\r\n");
        let out = String::from_utf8(c.feed(b"stats\r\n")).unwrap();
        let mut names = Vec::new();
        for line in out.lines() {
            if line == "END" {
                break;
            }
            let mut w = line.split(' ');
            assert_eq!(w.next(), Some("STAT"), "{line}");
            names.push(w.next().unwrap().to_string());
            assert!(w.next().is_some(), "{line}");
            assert!(w.next().is_none(), "{line}");
        }
        assert!(out.ends_with("END\r\n"));
        for name in [
            "pid",
            "uptime",
            "time",
            "version",
            "curr_items",
            "total_items",
            "bytes",
            "curr_connections",
            "total_connections",
            "cmd_get",
            "cmd_set",
            "get_hits",
            "get_misses",
        ] {
            assert!(names.iter().any(|n| n == name), "no {name} in {out}");
        }
        for (name, value) in [
            ("pid", std::process::id().to_string()),
            ("uptime", "100".into()),
            ("time", NOW.to_string()),
            ("version", VERSION.into()),
            ("curr_items", "2".into()),
            ("total_items", "3".into()),
            ("bytes", "5".into()), // "a" + "de", "b" + "x"
            ("curr_connections", "1".into()),
            ("total_connections", "2".into()),
            ("cmd_get", "4".into()),
            ("cmd_set", "3".into()),
            ("get_hits", "3".into()),
            ("get_misses", "1".into()),
        ] {
            assert_eq!(stat(&mut c, name), value, "{name}");
        }
        c.exchange("stats foo\r\n", "ERROR\r\n");
    }

    #[test]
    fn binary_values() {
        let mut c = Conn::new();
        let mut value: Vec<u8> = (0..=255u8).collect();
        value.extend_from_slice(b"\r\nEND\r\nVALUE x 0 1\r\n\n\r\0");
        let mut input = format!("set bin 9 0 {}\r\n", value.len()).into_bytes();
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\nget bin\r\n");
        let mut expected = format!("STORED\r\nVALUE bin 9 {}\r\n", value.len()).into_bytes();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(c.feed(&input), expected);
        c.exchange(
            "set crlf 0 0 4\r\na\r\nb\r\nget crlf\r\n",
            "STORED\r\nVALUE crlf 0 4\r\na\r\nb\r\nEND\r\n",
        );
        c.exchange(
            "set only 0 0 2\r\n\r\n\r\nget only\r\n",
            "STORED\r\nVALUE only 0 2\r\n\r\n\r\nEND\r\n",
        );
        c.exchange(
            "set empty 0 0 0\r\n\r\nget empty\r\n",
            "STORED\r\nVALUE empty 0 0\r\n\r\nEND\r\n",
        );
    }

    #[test]
    fn one_mib_limit() {
        let mut c = Conn::new();
        let mut input = format!("set big 0 0 {MAX_VALUE}\r\n").into_bytes();
        input.extend(std::iter::repeat(b'v').take(MAX_VALUE));
        input.extend_from_slice(b"\r\n");
        assert_eq!(c.feed(&input), b"STORED\r\n");
        let got = c.feed(b"get big\r\n");
        assert_eq!(
            got.len(),
            format!("VALUE big 0 {MAX_VALUE}\r\n").len() + MAX_VALUE + 7
        );

        // One byte more: refused, the data block skipped, the old value dropped.
        let too_big = |cmd: &str, noreply: &str| {
            let n = MAX_VALUE + 1;
            let mut input = format!("{cmd} big 0 0 {n}{noreply}\r\n").into_bytes();
            input.extend(std::iter::repeat(b'w').take(n));
            input.extend_from_slice(b"\r\nget big\r\n");
            input
        };
        let got = c.feed(&too_big("set", ""));
        assert_eq!(
            String::from_utf8_lossy(&got),
            "SERVER_ERROR object too large for cache\r\nEND\r\n"
        );
        let got = c.feed(&too_big("set", " noreply"));
        assert_eq!(String::from_utf8_lossy(&got), "END\r\n");
        // append too large: refused, the old value stays.
        c.exchange("set big 0 0 1\r\nx\r\n", "STORED\r\n");
        let got = c.feed(&too_big("append", ""));
        assert_eq!(
            String::from_utf8_lossy(&got),
            "SERVER_ERROR object too large for cache\r\nVALUE big 0 1\r\nx\r\nEND\r\n"
        );
        // append that would make it too large: NOT_STORED.
        let mut input = format!("append big 0 0 {MAX_VALUE}\r\n").into_bytes();
        input.extend(std::iter::repeat(b'y').take(MAX_VALUE));
        input.extend_from_slice(b"\r\nget big\r\n");
        assert_eq!(
            String::from_utf8_lossy(&c.feed(&input)),
            "NOT_STORED\r\nVALUE big 0 1\r\nx\r\nEND\r\n"
        );
        // A huge length is skipped in bounded pieces (Conn checks each Exact).
        let mut s = Session::new();
        let mut out = Vec::new();
        let next = s.on_line(&mut c.store, b"set h 0 0 4294967296\r\n", NOW, &mut out);
        assert_eq!(next, Next::Exact(SKIP_CHUNK));
        assert_eq!(out, TOO_LARGE);
    }

    #[test]
    fn bad_data_chunk() {
        let mut c = Conn::new();
        // 3 bytes announced, 5 sent: the 5 bytes are taken as the block, then "\r\n"
        // is an empty command line.
        c.exchange(
            "set k 0 0 3\r\nhello\r\nget k\r\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n",
        );
        c.exchange(
            "set k 0 0 3 noreply\r\nhello\r\nget k\r\n",
            "ERROR\r\nEND\r\n",
        );
        c.exchange(
            "set k 0 0 1\r\nx\r\r\nversion\r\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\nVERSION 1.6.0-unp-select\r\n",
        );
        // The old value stays ("yz\r" is the block, "\n" an empty line).
        c.exchange(
            "set k 0 0 1\r\nx\r\nset k 0 0 1\r\nyz\r\nget k\r\n",
            "STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
        );
    }

    #[test]
    fn command_line_errors() {
        let mut c = Conn::new();
        c.exchange(
            "\r\nfoo\r\nGET a\r\nset k 0 0\r\n",
            "ERROR\r\nERROR\r\nERROR\r\nERROR\r\n",
        );
        // A bad number or key: CLIENT_ERROR; the data block is then read as a line.
        let bad = "CLIENT_ERROR bad command line format\r\n";
        for line in [
            "set k -1 0 1",
            "set k 4294967296 0 1",
            "set k 0 0 abc",
            "set k 0 x 1",
            "set k\x01 0 0 1",
            &format!("set {} 0 0 1", "k".repeat(251)),
        ] {
            c.exchange(&format!("{line}\r\nx\r\n"), &format!("{bad}ERROR\r\n"));
        }
        c.exchange(
            "set k 0 0 -1\r\nversion\r\n",
            &format!("{bad}VERSION 1.6.0-unp-select\r\n"),
        );
        // Too many words; a 6th word that is not noreply is ignored.
        c.exchange("set k 0 0 1 noreply x\r\nx\r\n", "ERROR\r\nERROR\r\n");
        c.exchange("set k 0 0 1 extra\r\nx\r\n", "STORED\r\n");
        // 250 bytes is a key.
        let k250 = "k".repeat(250);
        c.exchange(
            &format!("set {k250} 0 0 1\r\nx\r\nget {k250}\r\n"),
            &format!("STORED\r\nVALUE {k250} 0 1\r\nx\r\nEND\r\n"),
        );
        let k251 = "k".repeat(251);
        c.exchange(
            &format!("incr {k251} 1\r\ntouch {k251} 1\r\ndelete {k251}\r\nget {k251}\r\n"),
            &bad.repeat(4),
        );
        c.exchange("get a\tb\r\n", bad);
        // Errors of noreply commands are not sent either.
        c.exchange(
            &format!("set {k251} 0 0 1 noreply\r\nx\r\nversion\r\n"),
            "ERROR\r\nVERSION 1.6.0-unp-select\r\n",
        );
    }

    #[test]
    fn noreply_everywhere() {
        let mut c = Conn::new();
        c.exchange(
            "set a 0 0 1 noreply\r\n1\r\nadd a 0 0 1 noreply\r\n2\r\nadd b 0 0 1 noreply\r\n2\r\n\
             replace b 0 0 1 noreply\r\n3\r\nappend a 0 0 1 noreply\r\n4\r\nprepend a 0 0 1 noreply\r\n5\r\n\
             cas a 0 0 1 1 noreply\r\n6\r\nincr b 2 noreply\r\ndecr a 1 noreply\r\ntouch a 0 noreply\r\n\
             delete nokey noreply\r\nverbosity 0 noreply\r\nget a b\r\n",
            "VALUE a 0 3\r\n513\r\nEND\r\nVALUE b 0 1\r\n5\r\nEND\r\n"
                .replace("END\r\nVALUE b", "VALUE b")
                .as_str(),
        );
        c.exchange("flush_all noreply\r\nget a\r\n", "END\r\n");
    }

    #[test]
    fn pipelined_commands_answer_in_order() {
        let mut c = Conn::new();
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200 {
            input.extend(format!("set k{i} {i} 0 {}\r\nv{i}\r\n", format!("v{i}").len()).bytes());
            expected.extend(b"STORED\r\n");
            input.extend(format!("get k{i}\r\nincr n 1\r\n").bytes());
            expected.extend(
                format!(
                    "VALUE k{i} {i} {}\r\nv{i}\r\nEND\r\nNOT_FOUND\r\n",
                    format!("v{i}").len()
                )
                .bytes(),
            );
        }
        input.extend(b"delete k7\r\nget k7 k8\r\n");
        expected.extend(b"DELETED\r\nVALUE k8 8 2\r\nv8\r\nEND\r\n");
        assert_eq!(
            String::from_utf8(c.feed(&input)).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn long_multiget_in_pieces() {
        let mut c = Conn::new();
        let keys: Vec<String> = (0..400)
            .map(|i| format!("key-{i:04}-{}", "x".repeat(i % 37)))
            .collect();
        let mut expected = String::new();
        for (i, k) in keys.iter().enumerate() {
            if i % 3 == 0 {
                c.exchange(
                    &format!("set {k} {i} 0 {}\r\n{k}\r\n", k.len()),
                    "STORED\r\n",
                );
                expected += &format!("VALUE {k} {i} {}\r\n{k}\r\n", k.len());
            }
        }
        expected += "END\r\n";
        let line = format!("get {}\r\n", keys.join(" "));
        assert!(line.len() > 4 * MAX_LINE);
        c.exchange(&line, &expected);
        // Every cut of the line: keys split between pieces, "\r" and "\n" apart.
        let line = format!("get  {}  \r\n", keys[..4].join(" "));
        let few: String = keys[..4]
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
            .map(|(i, k)| format!("VALUE {k} {i} {}\r\n{k}\r\n", k.len()))
            .collect();
        for cut in 5..line.len() - 1 {
            let mut s = Session::new();
            let mut out = Vec::new();
            let b = line.as_bytes();
            assert_eq!(
                s.on_line(&mut c.store, &b[..cut], NOW, &mut out),
                Next::Line
            );
            assert_eq!(
                s.on_line(&mut c.store, &b[cut..], NOW, &mut out),
                Next::Line
            );
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{few}END\r\n"),
                "cut at {cut}"
            );
        }
        // gets works too; a too long key gives the error at the end of the line.
        let line = format!("gets {} {}\r\n", keys[0], "z".repeat(MAX_LINE * 2));
        let got = String::from_utf8(c.feed(line.as_bytes())).unwrap();
        assert!(
            got.ends_with("CLIENT_ERROR bad command line format\r\n"),
            "{got}"
        );
        c.exchange("version\r\n", "VERSION 1.6.0-unp-select\r\n");
    }

    #[test]
    fn long_line_that_is_not_a_get_closes() {
        let mut c = Conn::new();
        let line = format!("set {} 0 0 1\r\nx\r\n", "k".repeat(MAX_LINE));
        c.exchange(&line, "");
        assert!(c.closed);
        let mut c = Conn::new();
        let line = format!("{}\r\n", "x".repeat(3000));
        c.exchange(&line, "");
        assert!(c.closed);
        // A line of MAX_LINE bytes in all is still a line.
        let mut c = Conn::new();
        let line = format!("get {}\r\n", "k".repeat(MAX_LINE - 6));
        c.exchange(&line, "CLIENT_ERROR bad command line format\r\n");
        assert!(!c.closed);
    }

    #[test]
    fn memory_limit() {
        let mut c = Conn::with_store(Store::with_limit(100, NOW));
        c.exchange(
            &format!("set a 0 0 50\r\n{}\r\n", "a".repeat(50)),
            "STORED\r\n",
        );
        c.exchange(
            &format!("set b 0 0 50\r\n{}\r\n", "b".repeat(50)),
            "SERVER_ERROR out of memory storing object\r\n",
        );
        // Overwriting counts only the difference.
        c.exchange(
            &format!("set a 0 0 98\r\n{}\r\n", "a".repeat(98)),
            "STORED\r\n",
        );
        c.exchange("append a 0 0 2\r\nxx\r\n", "NOT_STORED\r\n");
        // Expired items make room.
        c.exchange(
            &format!("set a 0 5 50\r\n{}\r\n", "a".repeat(50)),
            "STORED\r\n",
        );
        c.exchange_at(
            &format!("set b 0 0 60\r\n{}\r\n", "b".repeat(60)),
            NOW + 5,
            "STORED\r\n",
        );
        assert_eq!(c.store.bytes, 61);
        c.exchange_at("delete b\r\n", NOW + 5, "DELETED\r\n");
        assert_eq!(c.store.bytes, 0);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-+1"), None);
        assert_eq!(parse_i64(b"--1"), None);
        for n in [0, 9, 10, 99, 12345, u64::MAX] {
            let mut v = Vec::new();
            push_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
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
