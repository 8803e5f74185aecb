//! UNP's `readn`: read exactly `n` bytes unless end of file comes first.
//!
//! # Platform-specific behavior
//! A nonblocking descriptor without data gives `EAGAIN` (Linux; the same value as
//! `EWOULDBLOCK` on Apple and FreeBSD), which Rust maps to [`ErrorKind::WouldBlock`].
//! Nothing else differs: [`readn()`](fn@readn) only calls the [`Read`] implementation
//! it is given.
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed., section 3.9 (`readn`, Figure 3.15).
//! - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9699919799/functions/read.html),
//!   [Linux `read(2)`](https://man7.org/linux/man-pages/man2/read.2.html),
//!   [FreeBSD `read(2)`](https://man.freebsd.org/cgi/man.cgi?query=read&sektion=2),
//!   [Apple `read(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/read.2.html).

use std::error::Error;
use std::fmt;
use std::io::{self, ErrorKind, Read};

/// Fills `buf` from `r`, calling `read` as often as needed, unless end of file comes
/// first; returns the number of bytes read: UNP's `readn` (section 3.9, called as
/// `Readn`).
///
/// * `Ok(buf.len())`: `buf` is full.
/// * `Ok(n)` with `n < buf.len()`: **only at end of file** (a `read` returned 0);
///   `buf[..n]` holds the bytes that came before it. `Ok(0)` means end of file before
///   any byte.
/// * `EINTR` ([`ErrorKind::Interrupted`]) is retried, as in UNP.
///
/// Unlike [`Read::read_exact`], a short count at end of file is not an error and the
/// bytes read before it are reported.
///
/// # Errors
///
/// * [`ErrorKind::InvalidInput`] if `buf` is empty: no `read` is made, since its 0
///   could not be told apart from end of file.
/// * An error of `r` before any byte was read (for a nonblocking descriptor with no
///   data, [`ErrorKind::WouldBlock`]) is returned as is, errno kept.
/// * An error of `r` **after** some bytes were read (typically `WouldBlock` from a
///   nonblocking descriptor that had only part of the data, or `ECONNRESET`) is
///   returned with the same [`ErrorKind`], wrapping a [`PartialRead`] that tells how
///   many bytes are in `buf[..count]` and holds the original error (errno kept). No
///   byte is lost, and `Ok` keeps meaning "full, or end of file". For nonblocking
///   descriptors a buffering reader such as [`LineReader`](crate::LineReader) (which
///   implements [`Read`]) is simpler: it keeps partial data itself.
/// * [`ErrorKind::InvalidData`] if `r` claims to have read more bytes than it was
///   given room for (a broken [`Read`] implementation).
///
/// # Examples
///
/// ```
/// use unp_select::readn;
///
/// // The first read returns only 2 bytes: readn reads again to fill the buffer.
/// let mut chunks = std::io::Read::chain(&b"he"[..], &b"llo world"[..]);
/// let mut buf = [0u8; 5];
/// assert_eq!(readn(&mut chunks, &mut buf)?, 5);
/// assert_eq!(&buf, b"hello");
///
/// // Short only at end of file.
/// let mut buf = [0u8; 10];
/// assert_eq!(readn(&mut chunks, &mut buf)?, 6);
/// assert_eq!(&buf[..6], b" world");
/// assert_eq!(readn(&mut chunks, &mut buf)?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A nonblocking socket with only part of the data:
///
/// ```
/// use std::io::{ErrorKind, Write};
/// use std::os::unix::net::UnixStream;
/// use unp_select::readn::{readn, PartialRead};
///
/// let (mut writer, mut reader) = UnixStream::pair()?;
/// reader.set_nonblocking(true)?;
/// writer.write_all(b"abc")?;
///
/// let mut buf = [0u8; 8];
/// let err = readn(&mut reader, &mut buf).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::WouldBlock);
/// let partial = PartialRead::of(&err).expect("3 bytes were read");
/// assert_eq!(partial.count(), 3);
/// assert_eq!(&buf[..partial.count()], b"abc");
/// assert_eq!(partial.error().raw_os_error(), Some(libc::EAGAIN));
///
/// // Nothing read at all: the plain error.
/// let err = readn(&mut reader, &mut buf).unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
/// assert!(PartialRead::of(&err).is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn readn<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "readn: zero-length buffer (a 0 result would look like end of file)",
        ));
    }
    let mut count = 0;
    while count < buf.len() {
        let room = buf.len() - count;
        match r.read(&mut buf[count..]) {
            Ok(0) => break,
            Ok(n) if n > room => {
                let err = io::Error::new(
                    ErrorKind::InvalidData,
                    "readn: reader returned more bytes than the buffer it was given",
                );
                return Err(PartialRead::wrap(count, err));
            }
            Ok(n) => count += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(PartialRead::wrap(count, e)),
        }
    }
    Ok(count)
}

/// The error [`readn`] returns when its reader fails after some bytes were read: how
/// many are in the caller's buffer, and the reader's error.
///
/// It is found inside the returned [`io::Error`] (whose [`ErrorKind`] is the reader
/// error's) with [`PartialRead::of`].
///
/// # Examples
///
/// ```
/// use std::io::{self, ErrorKind, Read};
/// use unp_select::readn::{readn, PartialRead};
///
/// // Two bytes, then a connection reset.
/// let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
/// struct Failing(Option<io::Error>);
/// impl Read for Failing {
///     fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
///         Err(self.0.take().unwrap())
///     }
/// }
/// let mut r = (&b"ok"[..]).chain(Failing(Some(reset)));
/// let mut buf = [0u8; 4];
/// let err = readn(&mut r, &mut buf).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::ConnectionReset);
/// let p = PartialRead::of(&err).unwrap();
/// assert_eq!((p.count(), &buf[..p.count()]), (2, &b"ok"[..]));
/// assert_eq!(p.error().raw_os_error(), Some(libc::ECONNRESET));
/// ```
#[derive(Debug)]
pub struct PartialRead {
    count: usize,
    error: io::Error,
}

impl PartialRead {
    /// Wraps `error` if `count > 0`; returns it unchanged otherwise.
    fn wrap(count: usize, error: io::Error) -> io::Error {
        if count == 0 {
            return error;
        }
        let kind = error.kind();
        io::Error::new(kind, PartialRead { count, error })
    }

    /// The `PartialRead` inside `err`, if `err` came from [`readn`] after some bytes
    /// were read.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use unp_select::readn::PartialRead;
    ///
    /// assert!(PartialRead::of(&io::Error::from(io::ErrorKind::WouldBlock)).is_none());
    /// ```
    pub fn of(err: &io::Error) -> Option<&PartialRead> {
        err.get_ref()?.downcast_ref::<PartialRead>()
    }

    /// How many bytes were read into the start of the caller's buffer before the error.
    /// Always at least 1.
    ///
    /// # Examples
    ///
    /// See [`PartialRead`]'s example (2 bytes, then a reset) and [`readn()`](fn@readn)'s
    /// second (3 bytes of a nonblocking socket, then `EAGAIN`).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The reader's error, errno kept ([`io::Error::raw_os_error`]).
    ///
    /// # Examples
    ///
    /// See [`PartialRead`]'s example (`ECONNRESET`) and [`readn()`](fn@readn)'s second
    /// (`EAGAIN`).
    pub fn error(&self) -> &io::Error {
        &self.error
    }
}

impl fmt::Display for PartialRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "readn: {} bytes read, then: {}", self.count, self.error)
    }
}

impl Error for PartialRead {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read, after `eintr` interruptions each.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        eintr: usize,
        pending: usize,
        reads: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.pending > 0 {
                self.pending -= 1;
                return Err(io::Error::from_raw_os_error(libc::EINTR));
            }
            self.pending = self.eintr;
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn fills_across_short_reads_and_eintr() {
        let mut r = Trickle {
            data: b"0123456789",
            step: 3,
            eintr: 2,
            pending: 2,
            reads: 0,
        };
        let mut buf = [0u8; 7];
        assert_eq!(readn(&mut r, &mut buf).unwrap(), 7);
        assert_eq!(&buf, b"0123456");
        // 3 data reads (3+3+1), each after 2 EINTRs.
        assert_eq!(r.reads, 9);
        let mut buf = [0u8; 7];
        assert_eq!(readn(&mut r, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"789");
        assert_eq!(readn(&mut r, &mut buf).unwrap(), 0);
    }

    #[test]
    fn empty_buffer_is_invalid_input_without_reading() {
        let mut r = Trickle {
            data: b"x",
            step: 1,
            eintr: 0,
            pending: 0,
            reads: 0,
        };
        let err = readn(&mut r, &mut []).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(r.reads, 0);
    }

    struct Liar;
    impl Read for Liar {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(buf.len() + 1)
        }
    }

    #[test]
    fn broken_reader_is_invalid_data_not_a_panic() {
        let mut buf = [0u8; 4];
        let err = readn(&mut Liar, &mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(PartialRead::of(&err).is_none());
    }

    #[test]
    fn wrap_keeps_kind_and_errno() {
        let e = PartialRead::wrap(0, io::Error::from_raw_os_error(libc::EAGAIN));
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
        let e = PartialRead::wrap(5, io::Error::from_raw_os_error(libc::EAGAIN));
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        let p = PartialRead::of(&e).unwrap();
        assert_eq!(p.count(), 5);
        assert_eq!(p.error().raw_os_error(), Some(libc::EAGAIN));
        assert!(e.to_string().contains("5 bytes read"));
        assert!(Error::source(p).is_some());
    }
}
