//! Line reading with one buffer **per connection**: UNP's `readline` made safe for
//! select loops.
//!
//! UNP's `readline` (section 3.9, Figure 3.18) reads up to `MAXLINE` bytes at a time
//! into **one static buffer shared by every descriptor of the process**. In a select
//! server with many clients, bytes read from one client stay in that buffer and are
//! returned as the next line of *another* client. [`LineReader`] owns its buffer, so
//! each connection keeps its own unread bytes, and [`LineReader::buffered`] is UNP's
//! `readlinebuf`: what was read from the kernel and not yet returned.
//!
//! A select (or poll) loop must serve those buffered bytes before it sleeps again:
//! the kernel no longer has them, so the descriptor will not be reported readable for
//! them. [`LineReader::has_line`] says whether [`LineReader::readline`] can return
//! without a system call.
//!
//! # Platform-specific behavior
//! A nonblocking socket reports "no data" as `EAGAIN` on Linux; on Apple and FreeBSD
//! `EWOULDBLOCK` has the same value as `EAGAIN`. Rust maps both to
//! [`ErrorKind::WouldBlock`]. Nothing else differs: a [`LineReader`] only calls the
//! [`Read`] implementation of the reader it wraps.
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed., section 3.9 (`readn`, `writen`, `readline`), Figure 3.18
//!   (`readline`, `readlinebuf`).
//! - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9699919799/functions/read.html),
//!   [Linux `read(2)`](https://man7.org/linux/man-pages/man2/read.2.html),
//!   [FreeBSD `read(2)`](https://man.freebsd.org/cgi/man.cgi?query=read&sektion=2),
//!   [Apple `read(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/read.2.html).

use std::fmt;
use std::io::{self, BufRead, ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

mod buffer;

use buffer::{too_many_bytes, Buffer};

/// The default longest line: [`LineReader::readline`] returns a longer line in pieces
/// of this many bytes.
///
/// # Examples
///
/// ```
/// use unp_select::readline::{LineReader, DEFAULT_MAX_LINE};
///
/// assert_eq!(LineReader::new(std::io::empty()).max_line(), DEFAULT_MAX_LINE);
/// ```
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// The default initial size of a [`LineReader`]'s buffer (the same as
/// [`std::io::BufReader`]'s).
///
/// # Examples
///
/// ```
/// use unp_select::readline::{LineReader, DEFAULT_CAPACITY};
///
/// assert_eq!(LineReader::new(std::io::empty()).capacity(), DEFAULT_CAPACITY);
/// ```
pub const DEFAULT_CAPACITY: usize = 8 * 1024;

/// A buffered reader that returns one line at a time, with its own buffer: UNP's
/// `readline` (section 3.9) without the process-wide static buffer.
///
/// * [`readline`](Self::readline) appends one line, `\n` included, to a caller's
///   `Vec<u8>`. Bytes are returned as they came (`\r\n` stays `\r\n`, NUL bytes are
///   data). A line longer than [`max_line`](Self::max_line) comes back in pieces of
///   exactly `max_line` bytes, so memory stays bounded and no byte is lost.
/// * `EINTR` ([`ErrorKind::Interrupted`]) from the inner reader is retried by every
///   method.
/// * `EAGAIN`/`EWOULDBLOCK` ([`ErrorKind::WouldBlock`]) from a nonblocking inner reader
///   is returned after keeping every byte already read in the buffer: call again when
///   the descriptor is readable and the whole line comes back.
/// * [`buffered`](Self::buffered) (UNP's `readlinebuf`) shows the bytes read from the
///   kernel and not yet returned; [`has_line`](Self::has_line) says whether a line can
///   be returned without a system call.
///
/// It also implements [`Read`] and [`BufRead`], both served from the same buffer, so
/// line-oriented and counted reads can be mixed on one connection. The `BufRead`
/// methods (`read_line`, `read_until`, `lines`, …) do **not** apply `max_line`: see
/// the notes on the `BufRead` implementation. When the inner reader has a descriptor,
/// so does the `LineReader`: [`AsFd`] and [`AsRawFd`] give the inner reader's, for
/// `select`, `poll` and [`writen`](crate::writen::writen).
///
/// The buffer starts at the capacity given (default [`DEFAULT_CAPACITY`]) and grows
/// only when one line does not fit, never beyond the larger of that capacity and
/// `max_line`. It never shrinks.
///
/// # Examples
///
/// ```
/// use unp_select::LineReader;
///
/// let mut r = LineReader::new(&b"hello\r\nworld\nno newline"[..]);
/// let mut line = Vec::new();
/// let mut lines = Vec::new();
/// while r.readline(&mut line)? != 0 {
///     lines.push(String::from_utf8_lossy(&line).into_owned());
///     line.clear();
/// }
/// assert_eq!(lines, ["hello\r\n", "world\n", "no newline"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LineReader<R> {
    inner: R,
    buf: Buffer,
    max_line: usize,
}

impl<R> LineReader<R> {
    /// Wraps `inner` with a buffer of [`DEFAULT_CAPACITY`] bytes and a longest line of
    /// [`DEFAULT_MAX_LINE`] bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::readline::{LineReader, DEFAULT_MAX_LINE};
    ///
    /// let r = LineReader::new(std::io::empty());
    /// assert_eq!(r.max_line(), DEFAULT_MAX_LINE);
    /// assert!(r.buffered().is_empty());
    /// ```
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// Wraps `inner` with a buffer of `cap` bytes (at least 1: a `cap` of 0 is treated
    /// as 1) and a longest line of [`DEFAULT_MAX_LINE`] bytes.
    ///
    /// The buffer is allocated at the first read, so a server holding many idle
    /// connections pays nothing for their readers until they send something.
    ///
    /// `cap` is also the most that one `read` of the inner reader asks for while the
    /// buffer does not need to grow. The buffer grows (up to [`max_line`](Self::max_line))
    /// only when a single line does not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// // A 4-byte buffer still returns a 12-byte line whole: it grows for it.
    /// let mut r = LineReader::with_capacity(4, &b"twelve bytes\n"[..]);
    /// assert_eq!(r.capacity(), 4);
    /// let mut line = Vec::new();
    /// assert_eq!(r.readline(&mut line)?, 13);
    /// assert_eq!(line, b"twelve bytes\n");
    /// assert!(r.capacity() >= 13);
    ///
    /// // A capacity of 0 does not panic: it is treated as 1.
    /// assert_eq!(LineReader::with_capacity(0, std::io::empty()).capacity(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_capacity(cap: usize, inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: Buffer::new(cap),
            max_line: DEFAULT_MAX_LINE,
        }
    }

    /// Sets the longest line [`readline`](Self::readline) returns whole; a longer line
    /// comes back in pieces of exactly `max` bytes (without `\n` except in the last
    /// piece), like the `maxlen` argument of UNP's `readline`.
    ///
    /// The buffer grows to at most `max` bytes (or its capacity, if larger) to hold a
    /// line, so `max` bounds the memory a peer can make this reader use. Bytes already
    /// buffered are kept; the new limit applies from the next call. The `BufRead`
    /// methods do not apply it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `max` is 0 (every piece would be empty, which
    /// [`readline`](Self::readline) reserves for end of file); the limit is then
    /// unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(&b"abcdefg\n"[..]);
    /// r.set_max_line(3)?;
    /// let mut pieces = Vec::new();
    /// let mut line = Vec::new();
    /// while r.readline(&mut line)? != 0 {
    ///     pieces.push(String::from_utf8(line.clone()).unwrap());
    ///     line.clear();
    /// }
    /// assert_eq!(pieces, ["abc", "def", "g\n"]);
    ///
    /// assert_eq!(r.set_max_line(0).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// assert_eq!(r.max_line(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_max_line(&mut self, max: usize) -> io::Result<()> {
        if max == 0 {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "LineReader::set_max_line: the longest line must be at least 1 byte",
            ));
        }
        self.max_line = max;
        Ok(())
    }

    /// The longest line [`readline`](Self::readline) returns whole (default
    /// [`DEFAULT_MAX_LINE`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(std::io::empty());
    /// r.set_max_line(80)?;
    /// assert_eq!(r.max_line(), 80);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The current size of the internal buffer: the initial capacity, or more if a line
    /// needed it (never more than the larger of the initial capacity and
    /// [`max_line`](Self::max_line) at the time it grew).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// let r = LineReader::with_capacity(100, std::io::empty());
    /// assert_eq!(r.capacity(), 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The bytes read from the inner reader and not yet returned: UNP's `readlinebuf`.
    ///
    /// A select loop must serve these before it waits again: the kernel no longer
    /// holds them, so `select`/`poll` will not report the descriptor readable because
    /// of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// // The inner reader hands over "ab\ncd" in one read; one line is returned and
    /// // "cd" stays buffered.
    /// let mut r = LineReader::new(&b"ab\ncd"[..]);
    /// let mut line = Vec::new();
    /// r.readline(&mut line)?;
    /// assert_eq!(line, b"ab\n");
    /// assert_eq!(r.buffered(), b"cd");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn buffered(&self) -> &[u8] {
        self.buf.buffered()
    }

    /// Whether [`readline`](Self::readline) would return without reading from the
    /// inner reader: the buffer holds a complete line or at least
    /// [`max_line`](Self::max_line) bytes.
    ///
    /// A select loop calls `readline` while this is true before waiting again. (At end
    /// of file `readline` also returns a buffered unterminated tail, but only after a
    /// read that returns 0; this method cannot know that.)
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(&b"one\ntwo\nthr"[..]);
    /// let mut line = Vec::new();
    /// assert!(!r.has_line()); // nothing read yet
    /// r.readline(&mut line)?; // one read(2) fetches everything
    /// assert!(r.has_line()); // "two\n" is buffered
    /// line.clear();
    /// r.readline(&mut line)?;
    /// assert_eq!(line, b"two\n");
    /// assert!(!r.has_line()); // only "thr" is left
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn has_line(&self) -> bool {
        self.buf.has_piece(self.max_line)
    }

    /// Gets a reference to the inner reader.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Cursor;
    /// use unp_select::LineReader;
    ///
    /// let r = LineReader::new(Cursor::new(b"x\n".to_vec()));
    /// assert_eq!(r.get_ref().position(), 0);
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gets a mutable reference to the inner reader.
    ///
    /// Reading from it directly skips the bytes already buffered here; use it for
    /// things like socket options or writes (`&UnixStream`/`&TcpStream` can be both
    /// read and written).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Cursor;
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(Cursor::new(b"x\n".to_vec()));
    /// r.get_mut().set_position(1);
    /// let mut line = Vec::new();
    /// r.readline(&mut line)?;
    /// assert_eq!(line, b"\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Unwraps the inner reader. **Buffered bytes are lost**: use
    /// [`into_parts`](Self::into_parts) to keep them.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(&b"a\nb\n"[..]);
    /// let mut line = Vec::new();
    /// r.readline(&mut line)?;
    /// let rest: &[u8] = r.into_inner();
    /// assert!(rest.is_empty()); // "b\n" was in the buffer and is gone
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Unwraps the inner reader and returns it with the bytes that were buffered
    /// (what [`buffered`](Self::buffered) showed), so nothing is lost. Reuses the
    /// buffer's allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(&b"a\nb\n"[..]);
    /// let mut line = Vec::new();
    /// r.readline(&mut line)?;
    /// let (_inner, rest) = r.into_parts();
    /// assert_eq!(rest, b"b\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_parts(self) -> (R, Vec<u8>) {
        (self.inner, self.buf.into_vec())
    }
}

impl<R: Read> LineReader<R> {
    /// Appends the next line, its `\n` included, to `line` and returns the number of
    /// bytes appended: UNP's `readline` (section 3.9, called as `Readline`), per
    /// connection.
    ///
    /// * A line of up to [`max_line`](Self::max_line) bytes (its `\n` counted) is
    ///   appended whole.
    /// * A longer line is returned in pieces of exactly `max_line` bytes without `\n`;
    ///   the last piece ends with the `\n`.
    /// * At end of file, unterminated bytes are returned as a last piece without `\n`;
    ///   after that, `Ok(0)`. **`Ok(0)` means end of file**: the inner reader's `read`
    ///   returned 0 and nothing was buffered.
    ///
    /// Bytes are not interpreted: `\r\n` is kept as is and NUL bytes are data. `line`
    /// is only appended to, never cleared; reuse one `Vec` and `clear` it between
    /// lines, and no call allocates once the buffers are large enough.
    ///
    /// The inner reader is read only when the buffer holds no complete line (see
    /// [`has_line`](Self::has_line)), at most once per call unless it returns
    /// `EINTR` or too little data.
    ///
    /// This is not [`BufRead::read_line`], which `LineReader` also has (for a
    /// `String`, without the `max_line` bound).
    ///
    /// # Errors
    ///
    /// * [`ErrorKind::Interrupted`] (`EINTR`) is never returned: the read is retried.
    /// * [`ErrorKind::WouldBlock`] (`EAGAIN`/`EWOULDBLOCK`, from a nonblocking
    ///   descriptor with no complete line yet): returned as is, with **every byte read
    ///   so far kept** in the buffer ([`buffered`](Self::buffered)) and nothing appended
    ///   to `line`. Call again when the descriptor is readable: the whole line comes
    ///   back then.
    /// * Any other error of the inner reader (for a socket e.g. `ECONNRESET`) is
    ///   returned as is; buffered bytes are kept and nothing is appended to `line`.
    /// * [`ErrorKind::InvalidData`] if the inner reader claims to have read more bytes
    ///   than it was given room for (a broken [`Read`] implementation).
    /// * [`ErrorKind::OutOfMemory`] if the buffer cannot grow to hold a line.
    ///
    /// # Examples
    ///
    /// A line longer than `max_line` comes back in pieces:
    ///
    /// ```
    /// use std::io::Cursor;
    /// use unp_select::LineReader;
    ///
    /// let mut r = LineReader::new(Cursor::new(b"0123456789\nok\n".to_vec()));
    /// r.set_max_line(4)?;
    /// let mut line = Vec::new();
    /// let mut pieces = Vec::new();
    /// while r.readline(&mut line)? != 0 {
    ///     pieces.push(String::from_utf8(std::mem::take(&mut line)).unwrap());
    /// }
    /// assert_eq!(pieces, ["0123", "4567", "89\n", "ok\n"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A nonblocking socket: a partial line gives `WouldBlock` and stays buffered.
    ///
    /// ```
    /// use std::io::{ErrorKind, Write};
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::LineReader;
    ///
    /// let (mut writer, reader) = UnixStream::pair()?;
    /// reader.set_nonblocking(true)?;
    /// let mut r = LineReader::new(reader);
    /// let mut line = Vec::new();
    ///
    /// writer.write_all(b"hel")?;
    /// let err = r.readline(&mut line).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::WouldBlock);
    /// assert_eq!(r.buffered(), b"hel"); // kept, not lost
    /// assert!(line.is_empty());
    ///
    /// writer.write_all(b"lo\nwor")?;
    /// assert_eq!(r.readline(&mut line)?, 6);
    /// assert_eq!(line, b"hello\n");
    /// assert_eq!(r.buffered(), b"wor"); // serve before sleeping in select again
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn readline(&mut self, line: &mut Vec<u8>) -> io::Result<usize> {
        loop {
            if let Some(n) = self.buf.next_piece(self.max_line) {
                return Ok(self.buf.take_into(n, line));
            }
            // No complete line and fewer than `max_line` bytes buffered: read more.
            if self.fill_more()? == 0 {
                // End of file: the unterminated tail (fewer than max_line bytes).
                return Ok(self.buf.take_into(usize::MAX, line));
            }
        }
    }

    /// Reads once more from the inner reader, after the buffered bytes, making room
    /// first (moving them to the front, growing the buffer up to `max_line`). Returns
    /// the count read (0 at end of file). Retries `EINTR`. Call it only while fewer
    /// than `max_line` bytes are buffered.
    fn fill_more(&mut self) -> io::Result<usize> {
        self.buf.read_more(&mut self.inner, self.max_line)
    }
}

/// Reads served from the buffer first; the inner reader is read only when the buffer
/// is empty (directly into the caller's buffer if that is at least as large as ours).
/// `EINTR` is retried.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use unp_select::LineReader;
///
/// let mut r = LineReader::new(&b"header\n\x00\x01\x02\x03"[..]);
/// let mut line = Vec::new();
/// r.readline(&mut line)?;
/// let mut body = [0u8; 4];
/// r.read_exact(&mut body)?; // served from the buffer
/// assert_eq!(body, [0, 1, 2, 3]);
/// # Ok::<(), std::io::Error>(())
/// ```
impl<R: Read> Read for LineReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.buf.is_empty() && out.len() >= self.buf.capacity() {
            loop {
                match self.inner.read(out) {
                    Ok(n) if n > out.len() => return Err(too_many_bytes()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    r => return r,
                }
            }
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.buf.consume(n);
        Ok(n)
    }
}

/// `fill_buf` returns the buffer that [`LineReader::buffered`] shows; the other
/// methods are std's, built on `fill_buf` and `consume`. **None of them applies
/// [`max_line`](LineReader::max_line)**, which bounds
/// [`readline`](LineReader::readline) only:
///
/// * `fill_buf` returns the buffered bytes; when there are none, it first makes one
///   `read` of at most [`capacity`](LineReader::capacity) bytes (the buffer never grows
///   for it). `EINTR` is retried. `consume` drops bytes from the front of the buffer.
/// * `read_until`, `read_line`, `lines`, `split` append a line of **any** length to the
///   caller's `Vec` or `String` (memory a peer controls: use `readline`, or
///   [`Read::take`], on untrusted input). `read_line` and `lines` also fail with
///   [`ErrorKind::InvalidData`] on bytes that are not UTF-8, and `lines` strips the
///   `\n` or `\r\n`.
/// * When such a method fails in the middle of a line (say with `WouldBlock` from a
///   nonblocking descriptor), the bytes of the line it took so far are no longer in
///   [`buffered`](LineReader::buffered): `read_until` leaves them in the caller's
///   `Vec`, and `read_line` in the `String` if they are valid UTF-8 (else they are
///   dropped). [`readline`](LineReader::readline) keeps them in the buffer instead.
///
/// With `BufRead` in scope, `r.read_line(&mut string)` is this trait's method; the
/// bounded byte method is named [`readline`](LineReader::readline), after UNP's.
///
/// # Examples
///
/// ```
/// use std::io::BufRead;
/// use unp_select::LineReader;
///
/// let mut r = LineReader::new(&b"a\nlonger than max_line\nb\n"[..]);
/// r.set_max_line(4)?;
/// let mut first = String::new();
/// r.read_line(&mut first)?; // BufRead::read_line
/// assert_eq!(first, "a\n");
/// let rest: Vec<String> = r.lines().collect::<Result<_, _>>()?;
/// assert_eq!(rest, ["longer than max_line", "b"]); // whole: max_line is not applied
/// # Ok::<(), std::io::Error>(())
/// ```
impl<R: Read> BufRead for LineReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.buf.fill_if_empty(&mut self.inner)
    }

    fn consume(&mut self, amt: usize) {
        self.buf.consume(amt);
    }
}

/// The inner reader's descriptor, so a `LineReader` goes into an
/// [`FdSet`](crate::select::FdSet), a [`PollFd`](crate::poll::PollFd) or
/// [`writen`](crate::writen::writen) as the socket it wraps would (a borrow: the
/// descriptor stays the inner reader's).
///
/// Readiness reported for the descriptor says nothing about the bytes already in this
/// reader's buffer: the kernel no longer has them. Serve [`has_line`](Self::has_line)
/// before waiting in `select`/`poll` again.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select, FdSet};
/// use unp_select::writen::writen;
/// use unp_select::LineReader;
///
/// let (mut peer, sock) = UnixStream::pair()?;
/// let mut reader = LineReader::new(sock);
/// peer.write_all(b"one\ntwo\n")?;
///
/// let mut rset = FdSet::new();
/// rset.insert_fd(&reader)?;
/// assert_eq!(select(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?, 1);
/// assert!(rset.contains_fd(&reader));
/// let mut line = Vec::new();
/// reader.readline(&mut line)?;
/// assert_eq!(line, b"one\n");
/// assert!(reader.has_line()); // "two\n" is buffered: not the kernel's any more
///
/// writen(&reader, b"ack\n")?; // written through the inner socket
/// let mut ack = [0; 4];
/// peer.read_exact(&mut ack)?;
/// assert_eq!(&ack, b"ack\n");
/// # Ok::<(), std::io::Error>(())
/// ```
impl<R: AsFd> AsFd for LineReader<R> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The inner reader's descriptor number, for APIs that take a [`RawFd`] (such as
/// [`FdSet::insert`](crate::select::FdSet::insert)). See the [`AsFd`] implementation.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use unp_select::LineReader;
///
/// let (_peer, sock) = UnixStream::pair()?;
/// let raw = sock.as_raw_fd();
/// assert_eq!(LineReader::new(sock).as_raw_fd(), raw);
/// # Ok::<(), std::io::Error>(())
/// ```
impl<R: AsRawFd> AsRawFd for LineReader<R> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl<R: fmt::Debug> fmt::Debug for LineReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("inner", &self.inner)
            .field("buffered", &self.buf.buffered().len())
            .field("capacity", &self.capacity())
            .field("max_line", &self.max_line)
            .finish()
    }
}

/// How many leading bytes [`find_newline`] checks inline, 8 at a time, before it
/// calls the C library's `memchr`. Measured: a call costs more than scanning a short
/// line, and glibc's vectorized `memchr` wins on long ones.
const INLINE_SCAN: usize = 32;

/// Index of the first `\n` in `hay`.
#[inline]
pub(crate) fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    const NL: u64 = u64::from_ne_bytes([b'\n'; 8]);
    // The very shortest lines: byte by byte, no setup at all.
    let first = hay.len().min(8);
    if let Some(i) = hay[..first].iter().position(|&b| b == b'\n') {
        return Some(i);
    }
    let head = hay.len().min(INLINE_SCAN);
    let mut i = first;
    while i + 8 <= head {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[i..i + 8]);
        // Bytes equal to '\n' become 0; the classic "has a zero byte" test flags them.
        // The lowest flagged byte is always a real zero (borrows only run upwards), so
        // a little-endian load gives its index from the trailing zero count.
        let x = u64::from_le_bytes(word) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if hay.len() < INLINE_SCAN {
        return hay[i..].iter().position(|&b| b == b'\n').map(|j| i + j);
    }
    let rest = &hay[i..];
    if rest.is_empty() {
        return None;
    }
    crate::sys::memchr(b'\n', rest).map(|j| i + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_newline_matches_a_plain_search() {
        // Every length up to past the inline part, every newline position, with a
        // second newline after it and "near miss" bytes (0x0b, 0x8a, 0x09) around.
        for len in 0..100 {
            let base: Vec<u8> = (0..len).map(|i| [0x0b, 0x8a, 0x09, 0][i % 4]).collect();
            assert_eq!(find_newline(&base), None, "len {len}");
            for pos in 0..len {
                let mut v = base.clone();
                v[pos] = b'\n';
                if pos + 3 < len {
                    v[pos + 3] = b'\n';
                }
                assert_eq!(find_newline(&v), Some(pos), "len {len} pos {pos}");
                // Unaligned starts too.
                if pos > 0 {
                    assert_eq!(find_newline(&v[1..]), Some(pos - 1));
                }
            }
        }
    }

    #[test]
    fn buffer_grows_only_to_max_line() {
        let data = vec![b'x'; 1000];
        let mut r = LineReader::with_capacity(3, &data[..]);
        r.set_max_line(100).unwrap();
        let mut line = Vec::new();
        let mut total = 0;
        loop {
            line.clear();
            let n = r.readline(&mut line).unwrap();
            if n == 0 {
                break;
            }
            assert_eq!(n, 100);
            assert!(r.capacity() <= 100);
            total += n;
        }
        assert_eq!(total, 1000);
        assert_eq!(r.capacity(), 100);
    }

    #[test]
    fn capacity_above_max_line_is_kept() {
        let mut r = LineReader::with_capacity(64, &b"abcdefghij\n"[..]);
        r.set_max_line(4).unwrap();
        let mut line = Vec::new();
        assert_eq!(r.readline(&mut line).unwrap(), 4);
        assert_eq!(r.capacity(), 64);
        // One read fetched everything; the rest is buffered.
        assert_eq!(r.buffered(), b"efghij\n");
    }

    #[test]
    fn lowering_max_line_with_scanned_bytes_buffered() {
        // "abcdef" is scanned (no newline) and WouldBlock is returned; then the
        // limit drops below what is buffered.
        struct Once(Option<&'static [u8]>);
        impl Read for Once {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.take() {
                    Some(d) => {
                        buf[..d.len()].copy_from_slice(d);
                        Ok(d.len())
                    }
                    None => Err(ErrorKind::WouldBlock.into()),
                }
            }
        }
        let mut r = LineReader::new(Once(Some(b"abcdef")));
        let mut line = Vec::new();
        assert_eq!(
            r.readline(&mut line).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert_eq!(r.buf.scanned(), 6);
        r.set_max_line(4).unwrap();
        assert!(r.has_line());
        assert_eq!(r.readline(&mut line).unwrap(), 4);
        assert_eq!(line, b"abcd");
        assert_eq!(r.buffered(), b"ef");
        assert!(!r.has_line());
    }

    #[test]
    fn compaction_keeps_partial_line() {
        // 8-byte buffer, input "ab\ncdefg\nh": the partial "cdefg" must move to the
        // front when more is read.
        let mut r = LineReader::with_capacity(8, &b"ab\ncdefg\nh"[..]);
        let mut line = Vec::new();
        r.readline(&mut line).unwrap();
        assert_eq!(line, b"ab\n");
        assert_eq!(r.buffered(), b"cdefg");
        line.clear();
        r.readline(&mut line).unwrap();
        assert_eq!(line, b"cdefg\n");
        assert_eq!(r.capacity(), 8);
        line.clear();
        assert_eq!(r.readline(&mut line).unwrap(), 1);
        assert_eq!(line, b"h");
        line.clear();
        assert_eq!(r.readline(&mut line).unwrap(), 0);
        assert!(line.is_empty());
    }

    struct Liar;
    impl Read for Liar {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(buf.len() + 1)
        }
    }

    #[test]
    fn broken_reader_is_invalid_data_not_a_panic() {
        let mut r = LineReader::new(Liar);
        let mut line = Vec::new();
        let e = r.readline(&mut line).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert_eq!(r.fill_buf().unwrap_err().kind(), ErrorKind::InvalidData);
        let mut big = vec![0u8; 100_000];
        assert_eq!(r.read(&mut big).unwrap_err().kind(), ErrorKind::InvalidData);
        assert!(r.buffered().is_empty());
    }

    #[test]
    fn read_bypasses_buffer_only_when_empty() {
        let mut r = LineReader::with_capacity(4, &b"a\nbcdefgh"[..]);
        let mut line = Vec::new();
        r.readline(&mut line).unwrap();
        // The 4-byte buffer got "a\nbc".
        assert_eq!(r.buffered(), b"bc");
        let mut out = [0u8; 16];
        // Buffered bytes first, even though `out` is large.
        assert_eq!(r.read(&mut out).unwrap(), 2);
        assert_eq!(&out[..2], b"bc");
        // Now empty and `out` is larger than the buffer: one direct read of all.
        assert_eq!(r.read(&mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"defgh");
        assert!(r.buffered().is_empty());
        assert_eq!(r.read(&mut []).unwrap(), 0);
        assert_eq!(r.read(&mut out).unwrap(), 0);
    }

    #[test]
    fn into_parts_returns_buffered_bytes() {
        let mut r = LineReader::new(&b"x\nyz"[..]);
        let mut line = Vec::new();
        r.readline(&mut line).unwrap();
        let (inner, rest) = r.into_parts();
        assert!(inner.is_empty());
        assert_eq!(rest, b"yz");
    }

    #[test]
    fn debug_shows_state_not_data() {
        let mut r = LineReader::with_capacity(16, &b"x\nyz"[..]);
        let mut line = Vec::new();
        r.readline(&mut line).unwrap();
        let s = format!("{r:?}");
        assert!(s.contains("buffered: 2"), "{s}");
        assert!(s.contains("capacity: 16"), "{s}");
    }
}
