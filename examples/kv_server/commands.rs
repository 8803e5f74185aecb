//! One connection's side of memcached's text protocol (doc/protocol.txt of
//! memcached): a [`Session`] reads command lines and data blocks and answers them
//! from the [`Store`]. No I/O: the loop hands it lines and blocks, and sends what
//! it puts in a [`Reply`].
//!
//! The loop's side of the contract:
//!
//! * Start with [`Next::Line`]. Deliver each line with its `"\n"` (a `"\r\n"` or a bare
//!   `"\n"` both end a line) to [`Session::on_line`]. A line longer than
//!   [`MAX_LINE`] bytes comes as pieces of at most `MAX_LINE` bytes without the
//!   `"\n"`, the last piece with it; only the retrievals (`get`, `gets`, `gat`,
//!   `gats`) continue over pieces (a long multi-get), any other long line gets
//!   [`Next::Close`], as memcached closes such a connection.
//! * On [`Next::Exact(n)`](Next::Exact), deliver exactly `n` bytes to
//!   [`Session::on_data`]; `n` never exceeds a value's 1 MiB and its `"\r\n"`.
//! * On [`Next::Drain`], send what is queued; once it has drained, call
//!   [`Session::resume`] (a multi-get answered piece by piece, as
//!   [`Reply::full`] asks), before any more input.
//! * On [`Next::Close`], send what is queued, then close.
//! * Pipelined requests are successive calls; the answers come in order.
//!
//! A storage command holds its data block's bytes in the store
//! ([`Store::reserve`]) from its line until the block is stored or the session
//! is dropped. Time is whole seconds since the Unix epoch
//! ([`unix_now`](crate::store::unix_now)), passed in by the loop.

use crate::parser::{
    parse_i64, parse_u64, push_u64, split_word, trim_start, valid_key, words, MAX_KEY,
};
use crate::store::{
    Expiry, IncrError, Kind, Reservation, Store, MAX_VALUE, OUT_OF_MEMORY, VERSION,
};
use crate::value::Value;

/// Longest line the loop delivers whole, `"\r\n"` included; longer ones come in
/// pieces. memcached answers any line that arrives with its newline in one read
/// of its 16 KiB buffer, and closes a connection with more than 2048 bytes
/// buffered and no newline unless it is a `get`/`gets`; so a line up to 16 KiB
/// is answered here, and a longer one that is not a retrieval closes.
pub const MAX_LINE: usize = 16 * 1024;
/// The largest `n` of a [`Next::Exact`]: a value and its `"\r\n"`.
#[cfg(test)]
const MAX_EXACT: usize = MAX_VALUE + 2;
/// The largest length memcached reads as one (its `vlen + 2` must fit an int);
/// a larger one is a bad command line.
const MAX_LENGTH: u64 = i32::MAX as u64 - 2;
/// A refused data block is swallowed in pieces of at most this size, so that
/// the loop never buffers a refused block whole.
const SKIP_CHUNK: usize = 16 * 1024;

/// What the loop should do for this connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Deliver the next line (or piece of a long line) to [`Session::on_line`].
    Line,
    /// Deliver exactly this many bytes to [`Session::on_data`].
    Exact(usize),
    /// Send the queued output and call [`Session::resume`] once it has drained.
    Drain,
    /// Send the queued output, then close the connection.
    Close,
}

/// Where a session's answers go.
pub trait Reply {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
    /// Appends a stored value (its data and `"\r\n"`, in pieces), without a copy
    /// where the reply can.
    fn put_value(&mut self, value: &Value);
    /// Whether enough is queued for now: a multi-get stops before its next value
    /// and answers [`Next::Drain`].
    fn full(&self) -> bool;
}

/// All of it in one buffer, never full.
impl Reply for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_value(&mut self, value: &Value) {
        for piece in value.pieces() {
            self.extend_from_slice(piece);
        }
    }

    fn full(&self) -> bool {
        false
    }
}

const ERROR: &[u8] = b"ERROR\r\n";
const END: &[u8] = b"END\r\n";
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

/// A storage command waiting for its data block.
struct Pending {
    kind: Kind,
    flags: u32,
    exp: Expiry,
    len: usize,
    cas: u64,
    noreply: bool,
    /// The block's bytes, held in the store until it is stored.
    _held: Reservation,
}

/// A retrieval being answered: its keys still to come in pieces of its line, or
/// waiting in [`Session::keys`] for the output to drain.
struct Retrieval {
    cas: bool,
    /// `gat`/`gats`: the new expiry.
    touch: Option<Expiry>,
    /// An error to answer at the end of the line; the keys after it are ignored.
    error: Option<&'static [u8]>,
    keys: u64,
    /// The line's last piece has come.
    ended: bool,
}

enum State {
    Ready,
    Data(Pending),
    /// Bytes of a refused data block still to be swallowed.
    Skip(u64),
    Retrieve(Retrieval),
}

/// One connection's parser state.
pub struct Session {
    state: State,
    /// The key of a storage command, between its line and its data block.
    key: Vec<u8>,
    /// The keys of a retrieval not answered yet (`keys[at..]`, separated by
    /// spaces): at most a line or a piece of one.
    keys: Vec<u8>,
    at: usize,
    /// The unfinished last key of a piece of a long retrieval line.
    partial: Vec<u8>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            state: State::Ready,
            key: Vec::new(),
            keys: Vec::new(),
            at: 0,
            partial: Vec::new(),
        }
    }

    /// A line, with its `"\n"` (and maybe `"\r"` before it), or a piece of a line
    /// longer than [`MAX_LINE`] without one. Call when the last answer was
    /// [`Next::Line`].
    pub fn on_line(
        &mut self,
        store: &mut Store,
        line: &[u8],
        now: u64,
        out: &mut impl Reply,
    ) -> Next {
        store.tick(now);
        let (body, complete) = match line.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (line, false),
        };
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Ready => {}
            State::Retrieve(r) if !r.ended => {
                return self.piece(store, r, body, complete, now, out)
            }
            _ => {
                // The loop gave a line where it was asked for something else.
                debug_assert!(false, "on_line while a line is not expected");
                return Next::Close;
            }
        }
        if complete {
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            return self.command(store, body, now, out);
        }
        // A line longer than MAX_LINE: only a retrieval may be that long.
        let (cmd, rest) = split_word(trim_start(body));
        let Some(cas) = retrieval(cmd) else {
            return Next::Close;
        };
        let mut r = Retrieval {
            cas,
            touch: None,
            error: None,
            keys: 0,
            ended: false,
        };
        let mut rest = rest;
        if cmd.starts_with(b"gat") {
            let (t, after) = split_word(trim_start(rest));
            match parse_i64(t) {
                Some(t) if !after.is_empty() => r.touch = Some(Expiry::from_exptime(t, now)),
                _ => r.error = Some(BAD_EXPTIME),
            }
            rest = after;
        }
        self.piece(store, r, rest, false, now, out)
    }

    /// The `n` bytes asked for by [`Next::Exact(n)`](Next::Exact).
    pub fn on_data(
        &mut self,
        store: &mut Store,
        data: &[u8],
        now: u64,
        out: &mut impl Reply,
    ) -> Next {
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
                let Pending {
                    kind,
                    flags,
                    exp,
                    len,
                    cas,
                    noreply,
                    _held,
                } = p;
                let reply = if data.len() != len + 2 || !data.ends_with(b"\r\n") {
                    BAD_CHUNK
                } else {
                    // The block is held until the item is made of it: both are in
                    // memory at once.
                    let outcome = store.store(kind, &self.key, data, flags, exp, cas, now);
                    drop(_held);
                    outcome.reply()
                };
                say(out, noreply, reply);
                Next::Line
            }
            _ => {
                debug_assert!(false, "on_data while a data block is not expected");
                Next::Close
            }
        }
    }

    /// Goes on with the multi-get that answered [`Next::Drain`].
    pub fn resume(&mut self, store: &mut Store, now: u64, out: &mut impl Reply) -> Next {
        store.tick(now);
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Retrieve(r) => self.answer(store, r, now, out),
            _ => {
                debug_assert!(false, "resume without a retrieval");
                Next::Line
            }
        }
    }

    /// A complete command line, without its line end.
    fn command(&mut self, store: &mut Store, line: &[u8], now: u64, out: &mut impl Reply) -> Next {
        let (cmd, rest) = split_word(trim_start(line));
        if cmd.is_empty() {
            out.put(ERROR);
            return Next::Line;
        }
        if let Some(cas) = retrieval(cmd) {
            return self.retrieval_line(store, cmd, cas, rest, now, out);
        }
        match cmd {
            b"quit" => return Next::Close,
            b"version" => {
                out.put(b"VERSION ");
                out.put(VERSION.as_bytes());
                out.put(b"\r\n");
                return Next::Line;
            }
            _ => {}
        }
        let mut args: [&[u8]; MAX_ARGS] = [&[]; MAX_ARGS];
        let mut n = 0;
        for w in words(rest) {
            if n == MAX_ARGS {
                out.put(ERROR);
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
                let mut text = Vec::new();
                store.write_stats(now, &mut text);
                out.put(&text);
                return Next::Line;
            }
            _ => Some(ERROR),
        }
        .unwrap_or(b"");
        out.put(reply);
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
        out: &mut impl Reply,
    ) -> Next {
        let base = if kind == Kind::Cas { 5 } else { 4 };
        if args.len() != base && args.len() != base + 1 {
            out.put(ERROR);
            return Next::Line;
        }
        // "noreply" as the last word, even in an argument's place (which then fails
        // as a number, silently), as memcached reads it; another last word is
        // ignored.
        let noreply = args.last() == Some(&&b"noreply"[..]);
        let key = args[0];
        let flags = parse_u64(args[1]).and_then(|f| u32::try_from(f).ok());
        let exptime = parse_i64(args[2]);
        let len = parse_u64(args[3]).filter(|&n| n <= MAX_LENGTH);
        let cas = if kind == Kind::Cas {
            parse_u64(args[4])
        } else {
            Some(0)
        };
        let (Some(flags), Some(exptime), Some(len), Some(cas), true) =
            (flags, exptime, len, cas, valid_key(key))
        else {
            // The data block is not skipped: memcached reads it as a command line.
            say(out, noreply, BAD_FORMAT);
            return Next::Line;
        };
        let held = if len > MAX_VALUE as u64 {
            None
        } else {
            store.reserve(len + 2, now)
        };
        let Some(held) = held else {
            let why = if len > MAX_VALUE as u64 {
                TOO_LARGE
            } else {
                OUT_OF_MEMORY
            };
            say(out, noreply, why);
            if kind == Kind::Set {
                // memcached drops the old value of a set that failed.
                store.remove(key);
            }
            let skip = len + 2;
            self.state = State::Skip(skip);
            return Next::Exact(skip_chunk(skip));
        };
        self.key.clear();
        self.key.extend_from_slice(key);
        self.state = State::Data(Pending {
            kind,
            flags,
            exp: Expiry::from_exptime(exptime, now),
            len: len as usize,
            cas,
            noreply,
            _held: held,
        });
        Next::Exact(len as usize + 2)
    }

    /// A whole `get`/`gets`/`gat`/`gats` line; `rest` follows the command word.
    fn retrieval_line(
        &mut self,
        store: &mut Store,
        cmd: &[u8],
        cas: bool,
        mut rest: &[u8],
        now: u64,
        out: &mut impl Reply,
    ) -> Next {
        let mut touch = None;
        if cmd.starts_with(b"gat") {
            let (t, after) = split_word(trim_start(rest));
            if t.is_empty() {
                out.put(ERROR);
                return Next::Line;
            }
            let Some(t) = parse_i64(t) else {
                out.put(BAD_EXPTIME);
                return Next::Line;
            };
            touch = Some(Expiry::from_exptime(t, now));
            rest = after;
        }
        // One bad key: the error alone, none of the values, as memcached answers.
        if !words(rest).all(valid_key) {
            out.put(BAD_FORMAT);
            return Next::Line;
        }
        self.keys.clear();
        self.keys.extend_from_slice(rest);
        self.at = 0;
        let r = Retrieval {
            cas,
            touch,
            error: None,
            keys: 0,
            ended: true,
        };
        self.answer(store, r, now, out)
    }

    /// A piece of a long retrieval line (`last`: the line ends with it), after the
    /// previous piece was all answered.
    fn piece(
        &mut self,
        store: &mut Store,
        mut r: Retrieval,
        mut chunk: &[u8],
        last: bool,
        now: u64,
        out: &mut impl Reply,
    ) -> Next {
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
        self.keys.clear();
        self.at = 0;
        if !self.partial.is_empty() {
            // The key cut at the end of the previous piece goes on here.
            let (rest_of_key, after) = split_word(chunk);
            self.partial.extend_from_slice(rest_of_key);
            chunk = after;
            if self.partial.len() > MAX_KEY {
                r.error.get_or_insert(BAD_FORMAT);
                self.partial.clear();
            } else if chunk.is_empty() && !last {
                self.state = State::Retrieve(r); // the key goes on in the next piece
                return Next::Line;
            } else {
                self.keys.append(&mut self.partial);
                self.keys.push(b' ');
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
        self.keys.extend_from_slice(whole);
        if tail.len() > MAX_KEY {
            r.error.get_or_insert(BAD_FORMAT);
        } else {
            self.partial.extend_from_slice(tail);
        }
        r.ended = last;
        self.answer(store, r, now, out)
    }

    /// Answers the keys waiting in `self.keys` until the reply is full, then ends
    /// the line if its last piece came.
    fn answer(
        &mut self,
        store: &mut Store,
        mut r: Retrieval,
        now: u64,
        out: &mut impl Reply,
    ) -> Next {
        loop {
            let rest = trim_start(&self.keys[self.at..]);
            self.at = self.keys.len() - rest.len();
            if rest.is_empty() {
                break;
            }
            if out.full() {
                self.state = State::Retrieve(r);
                return Next::Drain;
            }
            let (key, _) = split_word(rest);
            self.at += key.len();
            if r.error.is_some() {
                continue;
            }
            if !valid_key(key) {
                r.error = Some(BAD_FORMAT);
                continue;
            }
            r.keys += 1;
            if let Some(hit) = store.get(key, r.touch, now) {
                let mut head = Vec::with_capacity(key.len() + 48);
                head.extend_from_slice(b"VALUE ");
                head.extend_from_slice(key);
                head.push(b' ');
                push_u64(&mut head, u64::from(hit.flags));
                head.push(b' ');
                push_u64(&mut head, (hit.value.len() - 2) as u64);
                if r.cas {
                    head.push(b' ');
                    push_u64(&mut head, hit.cas);
                }
                head.extend_from_slice(b"\r\n");
                out.put(&head);
                out.put_value(&hit.value);
            }
        }
        self.keys.clear();
        self.at = 0;
        if !r.ended {
            self.state = State::Retrieve(r);
            return Next::Line;
        }
        self.partial.clear();
        // Values sent for earlier pieces may already be out: an error follows them.
        out.put(match r.error {
            Some(e) => e,
            None if r.keys == 0 && r.touch.is_none() => ERROR,
            None => END,
        });
        Next::Line
    }
}

/// `get`, `gets`, `gat`, `gats`: whether it answers with the cas unique.
fn retrieval(cmd: &[u8]) -> Option<bool> {
    match cmd {
        b"get" | b"gat" => Some(false),
        b"gets" | b"gats" => Some(true),
        _ => None,
    }
}

/// Whether the last of `args` is `noreply` (and there are at least `min` args).
fn noreply(args: &[&[u8]], min: usize) -> bool {
    args.len() >= min && args.last() == Some(&&b"noreply"[..])
}

/// Puts `reply` unless `noreply`.
fn say(out: &mut impl Reply, noreply: bool, reply: &[u8]) {
    if !noreply {
        out.put(reply);
    }
}

/// `None` for noreply, else the answer.
fn answer(noreply: bool, reply: &'static [u8]) -> Option<&'static [u8]> {
    (!noreply).then_some(reply)
}

/// `incr|decr <key> <value> [noreply]`.
fn incr_decr(
    store: &mut Store,
    incr: bool,
    args: &[&[u8]],
    now: u64,
    out: &mut impl Reply,
) -> Next {
    if args.len() != 2 && args.len() != 3 {
        out.put(ERROR);
        return Next::Line;
    }
    // `incr k noreply` too: silent, as memcached (the delta is then bad).
    let noreply = noreply(args, 2);
    let mut reply = |r: &[u8]| say(out, noreply, r);
    if !valid_key(args[0]) {
        reply(BAD_FORMAT);
        return Next::Line;
    }
    let Some(delta) = parse_u64(args[1]) else {
        reply(BAD_DELTA);
        return Next::Line;
    };
    match store.incr_decr(args[0], incr, delta, now) {
        Ok(value) => reply(&value),
        Err(IncrError::NotFound) => reply(b"NOT_FOUND\r\n"),
        Err(IncrError::NonNumeric) => reply(NON_NUMERIC),
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
    if store.delete(args[0], now) {
        answer(noreply, b"DELETED\r\n")
    } else {
        answer(noreply, b"NOT_FOUND\r\n")
    }
}

/// `touch <key> <exptime> [noreply]`.
fn touch(store: &mut Store, args: &[&[u8]], now: u64) -> Option<&'static [u8]> {
    if args.len() != 2 && args.len() != 3 {
        return Some(ERROR);
    }
    // `touch k noreply` too: silent, as memcached (the exptime is then bad).
    let noreply = noreply(args, 2);
    if !valid_key(args[0]) {
        return answer(noreply, BAD_FORMAT);
    }
    let Some(exptime) = parse_i64(args[1]) else {
        return answer(noreply, BAD_EXPTIME);
    };
    if store.touch(args[0], Expiry::from_exptime(exptime, now), now) {
        answer(noreply, b"TOUCHED\r\n")
    } else {
        answer(noreply, b"NOT_FOUND\r\n")
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
    store.flush(Expiry::from_exptime(delay, now));
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
            store.set_verbosity(level);
            answer(noreply, b"OK\r\n")
        }
        None => answer(noreply, BAD_FORMAT),
    }
}

fn skip_chunk(left: u64) -> usize {
    left.min(SKIP_CHUNK as u64) as usize
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{charge, DEFAULT_LIMIT};

    /// A fixed clock: 2026-01-01, far past 30 days, so relative and absolute
    /// exptimes differ.
    const NOW: u64 = 1_767_225_600;

    /// A reply that is full from `cap` bytes on, as a connection whose output has
    /// not drained; what it holds is "sent" at each [`Next::Drain`].
    struct Capped {
        buf: Vec<u8>,
        cap: usize,
        /// The most it held at once.
        peak: usize,
    }

    impl Reply for Capped {
        fn put(&mut self, bytes: &[u8]) {
            self.buf.extend_from_slice(bytes);
            self.peak = self.peak.max(self.buf.len());
        }

        fn put_value(&mut self, value: &Value) {
            for piece in value.pieces() {
                self.put(piece);
            }
        }

        fn full(&self) -> bool {
            self.buf.len() >= self.cap
        }
    }

    /// One connection to a store, driven the way the loop drives a session.
    struct Conn {
        store: Store,
        session: Session,
        closed: bool,
        out: Capped,
        drains: usize,
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
                out: Capped {
                    buf: Vec::new(),
                    cap: usize::MAX,
                    peak: 0,
                },
                drains: 0,
            }
        }

        /// Feeds `input` at time `now` as the loop would: lines of at most MAX_LINE
        /// bytes (longer ones in pieces), data blocks of the asked size, a resume
        /// after each Drain. Returns the output; a Close stops the feeding.
        fn feed_at(&mut self, input: &[u8], now: u64) -> Vec<u8> {
            assert!(!self.closed, "fed after Close");
            let mut sent = Vec::new();
            let mut next = Next::Line;
            let mut rest = input;
            loop {
                match next {
                    Next::Close => {
                        self.closed = true;
                        break;
                    }
                    Next::Drain => {
                        self.drains += 1;
                        sent.append(&mut self.out.buf);
                        next = self.session.resume(&mut self.store, now, &mut self.out);
                    }
                    Next::Line => {
                        let window = &rest[..rest.len().min(MAX_LINE)];
                        let n = match window.iter().position(|&b| b == b'\n') {
                            Some(i) => i + 1,
                            None if window.len() == MAX_LINE => MAX_LINE,
                            None => {
                                assert!(rest.is_empty(), "unfinished line left: {rest:?}");
                                break;
                            }
                        };
                        next =
                            self.session
                                .on_line(&mut self.store, &rest[..n], now, &mut self.out);
                        rest = &rest[n..];
                    }
                    Next::Exact(n) => {
                        assert!(n <= MAX_EXACT, "Exact({n}) is more than MAX_EXACT");
                        assert!(rest.len() >= n, "input ends inside a data block");
                        next =
                            self.session
                                .on_data(&mut self.store, &rest[..n], now, &mut self.out);
                        rest = &rest[n..];
                    }
                }
            }
            sent.append(&mut self.out.buf);
            sent
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
        assert_eq!(c.store.verbosity(), 1);
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
            ("bytes", (charge(1, 2) + charge(1, 1)).to_string()), // "a" "de", "b" "x"
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
        // The largest length memcached takes is skipped in bounded pieces (Conn
        // checks each Exact); one more is a bad command line, and no block follows.
        let mut s = Session::new();
        let mut out = Vec::new();
        let next = s.on_line(&mut c.store, b"set h 0 0 2147483645\r\n", NOW, &mut out);
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
        let keys: Vec<String> = (0..1500)
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
        assert!(line.len() > 2 * MAX_LINE);
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
    fn long_line_that_is_not_a_retrieval_closes() {
        let mut c = Conn::new();
        let line = format!("set {} 0 0 1\r\nx\r\n", "k".repeat(MAX_LINE));
        c.exchange(&line, "");
        assert!(c.closed);
        let mut c = Conn::new();
        let line = format!("{}\r\n", "x".repeat(MAX_LINE));
        c.exchange(&line, "");
        assert!(c.closed);
        // A line of MAX_LINE bytes in all is still a line.
        let mut c = Conn::new();
        let line = format!("get {}\r\n", "k".repeat(MAX_LINE - 6));
        c.exchange(&line, "CLIENT_ERROR bad command line format\r\n");
        assert!(!c.closed);
    }

    #[test]
    fn a_full_store_evicts_the_least_recently_used() {
        let limit = 200 * 1024;
        let mut c = Conn::with_store(Store::with_limit(limit, NOW));
        let value = "v".repeat(1000);
        for i in 0..1000 {
            c.exchange(&format!("set k{i} 0 0 1000\r\n{value}\r\n"), "STORED\r\n");
            if i == 50 {
                // k0 used now: it outlives the keys set after it but not used.
                c.exchange(
                    "get k0\r\n",
                    &format!("VALUE k0 0 1000\r\n{value}\r\nEND\r\n"),
                );
            }
        }
        assert!(c.store.used() <= limit);
        let held: usize = stat(&mut c, "curr_items").parse().unwrap();
        assert!(
            (150..200).contains(&held),
            "{held} items of 1 KB in 200 KiB"
        );
        let evictions: usize = stat(&mut c, "evictions").parse().unwrap();
        assert_eq!(evictions, 1000 - held);
        // The newest are there, the oldest gone, whatever was used last outlived.
        c.exchange(
            "get k999 k1 k10\r\n",
            &format!("VALUE k999 0 1000\r\n{value}\r\nEND\r\n"),
        );
        assert_eq!(stat(&mut c, "limit_maxbytes"), limit.to_string());
        // An item larger than the whole store: out of memory, the block swallowed.
        let big = "b".repeat(300 * 1024);
        c.exchange(
            &format!("set big 0 0 {}\r\n{big}\r\nget big\r\n", big.len()),
            "SERVER_ERROR out of memory storing object\r\nEND\r\n",
        );
    }

    /// A data block on its way holds its bytes in the store; past the limit the
    /// command line gets memcached's out-of-memory error, and its block is
    /// swallowed in small pieces.
    #[test]
    fn data_blocks_in_flight_count_against_the_limit() {
        let mut store = Store::with_limit(100 * 1024, NOW);
        let mut out = Vec::new();
        let mut a = Session::new();
        let mut b = Session::new();
        let line = format!("set a 0 0 {}\r\n", 60 * 1024);
        assert_eq!(
            a.on_line(&mut store, line.as_bytes(), NOW, &mut out),
            Next::Exact(60 * 1024 + 2)
        );
        assert!(out.is_empty());
        // b's block does not fit while a's is on its way.
        let line = format!("set b 0 0 {}\r\n", 60 * 1024);
        let mut next = b.on_line(&mut store, line.as_bytes(), NOW, &mut out);
        assert_eq!(out, OUT_OF_MEMORY);
        let mut left = 60 * 1024 + 2;
        while let Next::Exact(n) = next {
            assert!(n <= SKIP_CHUNK, "Exact({n}) while swallowing");
            left -= n;
            next = b.on_data(&mut store, &vec![b'x'; n], NOW, &mut out);
        }
        assert_eq!((next, left), (Next::Line, 0));
        // a's connection goes: its bytes come back, and b's next set fits (its
        // block and its item are in memory at once for a moment: both count).
        drop(a);
        out.clear();
        let line = format!("set b 0 0 {}\r\n", 40 * 1024);
        let next = b.on_line(&mut store, line.as_bytes(), NOW, &mut out);
        assert_eq!(next, Next::Exact(40 * 1024 + 2));
        let mut block = vec![b'y'; 40 * 1024];
        block.extend_from_slice(b"\r\n");
        assert_eq!(b.on_data(&mut store, &block, NOW, &mut out), Next::Line);
        assert_eq!(out, b"STORED\r\n");
        // noreply: the error is not sent either; the block is still swallowed.
        out.clear();
        let line = format!("set c 0 0 {} noreply\r\n", 60 * 1024);
        let next = a_session_line(&mut store, &line, &mut out);
        assert!(matches!(next, Next::Exact(n) if n > 0));
        assert!(out.is_empty());
    }

    fn a_session_line(store: &mut Store, line: &str, out: &mut Vec<u8>) -> Next {
        let mut s = Session::new();
        let mut busy = Session::new();
        let big = format!("set busy 0 0 {}\r\n", 90 * 1024);
        assert!(matches!(
            busy.on_line(store, big.as_bytes(), NOW, out),
            Next::Exact(_)
        ));
        let next = s.on_line(store, line.as_bytes(), NOW, out);
        drop(busy);
        next
    }

    /// memcached 1.6 (checked against memcached 1.6.18): a length over INT_MAX - 2
    /// is a bad command line, and the next line is a command.
    #[test]
    fn a_length_past_int_max_is_a_bad_command_line() {
        let mut c = Conn::new();
        for len in [
            "2147483646",
            "2147483648",
            "4294967296",
            "18446744073709551616",
        ] {
            c.exchange(
                &format!("set k 0 0 {len}\r\nversion\r\n"),
                "CLIENT_ERROR bad command line format\r\nVERSION 1.6.0-unp-select\r\n",
            );
        }
        assert!(!c.closed);
    }

    /// Lines up to 16 KiB are answered, whatever the command (memcached answers a
    /// line that comes whole in its 16 KiB read buffer).
    #[test]
    fn long_lines_are_answered() {
        let mut c = Conn::new();
        c.exchange("set key0007 3 0 1\r\nx\r\n", "STORED\r\n");
        let keys: Vec<String> = (0..600).map(|i| format!("key{i:04}")).collect();
        let line = format!("gat 100 {}\r\n", keys.join(" "));
        assert!(line.len() > 2048 && line.len() < MAX_LINE);
        c.exchange(&line, "VALUE key0007 3 1\r\nx\r\nEND\r\n");
        c.exchange(
            &format!("gats 0 {}\r\n", keys.join(" ")),
            "VALUE key0007 3 1 1\r\nx\r\nEND\r\n",
        );
        c.exchange(&format!("delete {}\r\n", keys.join(" ")), "ERROR\r\n");
        c.exchange(
            &format!("set {} 0 0 1\r\nx\r\n", "k".repeat(3000)),
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
        c.exchange(&format!("{}\r\n", "x".repeat(3000)), "ERROR\r\n");
        // Longer than MAX_LINE: a gat comes in pieces and is answered too.
        let keys: Vec<String> = (0..3000).map(|i| format!("key{i:04}")).collect();
        let line = format!("gat 100 {}\r\n", keys.join(" "));
        assert!(line.len() > MAX_LINE);
        c.exchange(&line, "VALUE key0007 3 1\r\nx\r\nEND\r\n");
        let line = format!("gat abc {}\r\nversion\r\n", keys.join(" "));
        c.exchange(
            &line,
            "CLIENT_ERROR invalid exptime argument\r\nVERSION 1.6.0-unp-select\r\n",
        );
        assert!(!c.closed);
    }

    /// `noreply` in an argument's place: memcached takes it as noreply (the
    /// argument then fails, silently).
    #[test]
    fn noreply_in_an_arguments_place_is_silent() {
        let mut c = Conn::new();
        c.exchange(
            "set n 0 0 1\r\n5\r\nincr n noreply\r\ndecr n noreply\r\ntouch n noreply\r\n\
             set k 0 0 noreply\r\nadd k 0 0 noreply\r\ncas k 0 0 1 noreply\r\nx\r\nget n k\r\n",
            "STORED\r\nERROR\r\nVALUE n 0 1\r\n5\r\nEND\r\n",
        );
        // Not the last word: the usual errors.
        c.exchange(
            "set k 0 noreply 1\r\nx\r\ngat noreply k\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\nCLIENT_ERROR invalid exptime argument\r\n",
        );
        // A key named noreply is a key.
        c.exchange(
            "set noreply 0 0 1\r\n1\r\nincr noreply 1\r\ndelete noreply\r\n",
            "STORED\r\n2\r\nDELETED\r\n",
        );
    }

    /// With a reply that fills (the loop's output not drained), a multi-get stops
    /// before a value and goes on in `resume`: the same answer, never more than
    /// the cap and one value held.
    #[test]
    fn a_multiget_is_streamed_as_the_output_drains() {
        let value = "v".repeat(3000);
        let mut keys = Vec::new();
        let mut c = Conn::new();
        for i in 0..20 {
            c.exchange(&format!("set k{i} {i} 0 3000\r\n{value}\r\n"), "STORED\r\n");
            keys.push(format!("k{i}"));
        }
        keys.push("missing".into());
        let many: Vec<String> = keys.iter().cycle().take(10 * keys.len()).cloned().collect();
        let whole = c.feed(format!("get {}\r\n", many.join(" ")).as_bytes());
        let long: Vec<String> = (0..4000)
            .map(|i| match i % 50 {
                0 => keys[i / 50 % 20].clone(),
                _ => format!("miss{i:06}"),
            })
            .collect();
        let long_line = format!("gets {}\r\n", long.join(" "));
        assert!(long_line.len() > 2 * MAX_LINE);
        let long_whole = c.feed(long_line.as_bytes());
        assert_eq!(c.drains, 0);
        c.out.cap = 8 * 1024;
        c.out.peak = 0;
        let streamed = c.feed(format!("get {}\r\n", many.join(" ")).as_bytes());
        assert!(streamed == whole, "streamed answer differs");
        assert!(
            c.drains >= whole.len() / (8 * 1024 + 3100),
            "{} drains",
            c.drains
        );
        let one = 3000 + 2 + "VALUE k19 19 3000\r\n".len();
        assert!(c.out.peak < 8 * 1024 + one, "peak {}", c.out.peak);
        // Pieces of a long line, streamed too.
        let streamed = c.feed(long_line.as_bytes());
        assert!(streamed == long_whole, "streamed long answer differs");
        assert!(c.out.peak < 8 * 1024 + one + 8, "peak {}", c.out.peak);
        // Then the next command as usual.
        c.exchange("version\r\n", "VERSION 1.6.0-unp-select\r\n");
    }
}
