//! The buffer of a [`LineReader`](super::LineReader): bytes read from the inner reader
//! and not yet returned, and how far they are known to hold no `\n`.
//!
//! Like std's `BufReader` buffer (`library/std/src/io/buffered/bufreader/buffer.rs`),
//! this type owns one invariant and offers small methods that keep it, so the reader
//! built on it never touches an index.

use std::io::{self, ErrorKind, Read};

use super::find_newline;

/// A byte buffer filled by one `read` at a time at its end and emptied from its front.
///
/// # Invariant
///
/// `start + scanned <= end <= buf.len()`, and
/// - `buf[start..end]` are the bytes read and not yet returned ([`buffered`]);
/// - `buf[start..start + scanned]` holds no `\n`, so a search after a short read or a
///   `WouldBlock` starts after it instead of at `start`;
/// - when nothing is buffered, `start == end == scanned == 0`: the next read goes to the
///   front, and nothing ever has to be moved for an empty buffer;
/// - `buf` is fully initialized, so `buf.len()` is the allocated size: 0 until the
///   first read (an idle connection holds no allocation), then at least `initial`.
///
/// [`buffered`]: Buffer::buffered
pub(super) struct Buffer {
    buf: Vec<u8>,
    /// The size `buf` gets at its first read; at least 1.
    initial: usize,
    start: usize,
    end: usize,
    scanned: usize,
}

impl Buffer {
    /// An empty buffer that will allocate `initial` bytes (at least 1) at its first
    /// read. Allocates nothing now.
    pub(super) fn new(initial: usize) -> Buffer {
        Buffer {
            buf: Vec::new(),
            initial: initial.max(1),
            start: 0,
            end: 0,
            scanned: 0,
        }
    }

    /// The bytes read and not yet returned.
    #[inline]
    pub(super) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether no byte is buffered.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The size of the storage: the initial size before the first read.
    pub(super) fn capacity(&self) -> usize {
        self.buf.len().max(self.initial)
    }

    /// How far the buffered bytes are known to hold no `\n`.
    #[cfg(test)]
    pub(super) fn scanned(&self) -> usize {
        self.scanned
    }

    /// Drops the first `amt` buffered bytes (all of them if `amt` is larger).
    #[inline]
    pub(super) fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.start);
        self.start += amt;
        self.scanned = self.scanned.saturating_sub(amt);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
        }
    }

    /// Moves the first `n` buffered bytes (at most all of them) to the end of `out`;
    /// returns how many it moved.
    #[inline]
    pub(super) fn take_into(&mut self, n: usize, out: &mut Vec<u8>) -> usize {
        let n = n.min(self.end - self.start);
        out.extend_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// The length of the next piece of at most `max` bytes that the buffer alone can
    /// give: through the first `\n` among the first `max` buffered bytes, else `max`
    /// if at least that many are buffered, else `None`. Remembers how far it searched.
    pub(super) fn next_piece(&mut self, max: usize) -> Option<usize> {
        let avail = self.end - self.start;
        let limit = avail.min(max);
        if self.scanned < limit {
            let from = self.start + self.scanned;
            if let Some(i) = find_newline(&self.buf[from..self.start + limit]) {
                return Some(self.scanned + i + 1);
            }
            self.scanned = limit;
        }
        (avail >= max).then_some(max)
    }

    /// Whether [`next_piece`](Self::next_piece) would return `Some` (without
    /// remembering the search).
    pub(super) fn has_piece(&self, max: usize) -> bool {
        let avail = self.end - self.start;
        if avail >= max {
            return true;
        }
        let from = self.start + self.scanned;
        find_newline(&self.buf[from..self.end]).is_some()
    }

    /// Reads once from `inner` after the buffered bytes, moving them to the front and
    /// growing the storage towards `max` first if there is no room; returns the count
    /// read (0 at end of file). Retries `EINTR`. Call it only while fewer than `max`
    /// bytes are buffered: then there is always room after growing.
    pub(super) fn read_more<R: Read + ?Sized>(
        &mut self,
        inner: &mut R,
        max: usize,
    ) -> io::Result<usize> {
        self.allocate()?;
        if self.start > 0 {
            // Only a partial line is buffered (fewer than `max` bytes): move it to the
            // front. Each byte is moved at most once, as `start` then stays 0 until
            // the line is returned.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.grow(max)?;
        }
        self.read_at_end(inner)
    }

    /// The buffered bytes; when there are none, one read from `inner` first (of at
    /// most [`capacity`](Self::capacity) bytes; the storage does not grow). Retries
    /// `EINTR`.
    pub(super) fn fill_if_empty<R: Read + ?Sized>(&mut self, inner: &mut R) -> io::Result<&[u8]> {
        if self.is_empty() {
            self.allocate()?;
            self.read_at_end(inner)?;
        }
        Ok(self.buffered())
    }

    /// The buffered bytes, moved to the front of the storage, which is reused.
    pub(super) fn into_vec(self) -> Vec<u8> {
        let Buffer {
            mut buf,
            start,
            end,
            ..
        } = self;
        buf.copy_within(start..end, 0);
        buf.truncate(end - start);
        buf
    }

    /// Allocates the storage at its initial size if this is the first read.
    fn allocate(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf
                .try_reserve_exact(self.initial)
                .map_err(|_| io::Error::from(ErrorKind::OutOfMemory))?;
            self.buf.resize(self.initial, 0);
        }
        Ok(())
    }

    /// Grows the full storage towards `max` (doubling, so a long line costs few
    /// reallocations), by at least one byte.
    fn grow(&mut self, max: usize) -> io::Result<()> {
        let len = self.buf.len();
        let new_len = len.saturating_mul(2).min(max).max(len + 1);
        self.buf
            .try_reserve_exact(new_len - len)
            .map_err(|_| io::Error::from(ErrorKind::OutOfMemory))?;
        self.buf.resize(new_len, 0);
        Ok(())
    }

    /// One `read` of `inner` into `buf[end..]`, retrying `EINTR`.
    fn read_at_end<R: Read + ?Sized>(&mut self, inner: &mut R) -> io::Result<usize> {
        let room = self.buf.len() - self.end;
        loop {
            match inner.read(&mut self.buf[self.end..]) {
                Ok(n) if n > room => return Err(too_many_bytes()),
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The error for an inner reader that claims more bytes than it was given room for.
pub(super) fn too_many_bytes() -> io::Error {
    io::Error::new(
        ErrorKind::InvalidData,
        "inner reader returned more bytes than the buffer it was given",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_buffer_starts_over_at_the_front() {
        let mut b = Buffer::new(8);
        assert_eq!(b.capacity(), 8);
        assert_eq!(b.read_more(&mut &b"abc"[..], 100).unwrap(), 3);
        assert_eq!(b.next_piece(100), None);
        assert_eq!(b.scanned(), 3);
        b.consume(1);
        assert_eq!((b.buffered(), b.scanned()), (&b"bc"[..], 2));
        b.consume(5);
        assert!(b.is_empty());
        assert_eq!((b.start, b.end, b.scanned), (0, 0, 0));
    }

    #[test]
    fn read_more_compacts_then_grows_towards_max() {
        let mut b = Buffer::new(4);
        b.read_more(&mut &b"ab\ncd"[..], 6).unwrap();
        assert_eq!(b.buffered(), b"ab\nc");
        let mut line = Vec::new();
        let n = b.next_piece(6).unwrap();
        assert_eq!(b.take_into(n, &mut line), 3);
        assert_eq!(line, b"ab\n");
        // "c" moves to the front; the read fills the rest of the 4 bytes.
        b.read_more(&mut &b"defg"[..], 6).unwrap();
        assert_eq!((b.buffered(), b.capacity()), (&b"cdef"[..], 4));
        // Full: it grows, to 6 at most.
        b.read_more(&mut &b"ghijk"[..], 6).unwrap();
        assert_eq!((b.buffered(), b.capacity()), (&b"cdefgh"[..], 6));
        assert_eq!(b.next_piece(6), Some(6));
        assert_eq!(b.into_vec(), b"cdefgh");
    }
}
