//! What epoll(7) and kqueue(2) have in common: a kernel object that keeps the
//! interest list, so a wait costs in proportion to the ready descriptors. The
//! [`Queue`] trait is the part of each that `sources::Queue` drives; [`file_id`]
//! tells which file a descriptor number names, for epoll's registrations, which
//! belong to a file rather than to a number.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::time::Duration;

use super::cvt;
use crate::sources::{Interest, Readiness};

/// A kernel readiness queue: epoll or kqueue, or, where the platform has not got
/// it, a type with no value whose [`open`](Queue::open) fails with `Unsupported`.
///
/// Registrations carry a 64-bit token that the kernel hands back with each event.
/// Errors keep the kernel's `errno`; the caller gives meaning to three of them:
/// `EBADF` (the number is not open), `ENOENT` (not in the set, for this file) and
/// `EEXIST` (already in the set).
pub(crate) trait Queue: Sized {
    /// One entry of the array a wait fills.
    type Event: Copy + Send + Sync;
    /// Whether this platform has the queue.
    const SUPPORTED: bool;
    /// Whether a registration belongs to the open file description rather than to
    /// the descriptor number (epoll): it then outlives a `close` of the number
    /// while a `dup` of it lives, and its events must be checked against
    /// [`file_id`]. kqueue drops a number's registrations when it is closed.
    const FOLLOWS_FILE: bool;

    /// An entry before the kernel fills it.
    fn empty() -> Self::Event;
    /// A new, empty, close-on-exec queue.
    fn open() -> io::Result<Self>;
    /// Watches `fd` for `interest` (not [`Interest::NONE`]).
    fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()>;
    /// Changes what `fd`, watched for `from`, is watched for (neither is `NONE`).
    fn modify(&self, fd: RawFd, from: Interest, to: Interest, token: u64) -> io::Result<()>;
    /// Stops watching `fd`, watched for `from`.
    fn delete(&self, fd: RawFd, from: Interest) -> io::Result<()>;
    /// Waits for events (`None`: no limit) and fills the start of `events` (never
    /// empty) with them; returns how many.
    fn wait(&self, events: &mut [Self::Event], timeout: Option<Duration>) -> io::Result<usize>;
    /// The token and the readiness of one event.
    fn decode(event: &Self::Event) -> (u64, Readiness);
}

/// Which file a descriptor names: its device and inode numbers.
///
/// Two descriptors that share an open file description have the same identity;
/// so have two opens of one FIFO. Sockets and pipes get an inode each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

/// The identity of the file `fd` names, by `fstat(2)`. `EBADF` if it is not open.
///
/// Takes a bare number because the number may have been closed behind the
/// caller's back: finding that out is the point.
#[allow(clippy::unnecessary_cast)] // dev_t and ino_t differ between platforms
pub(crate) fn file_id(fd: RawFd) -> io::Result<FileId> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a live, writable buffer of one `struct stat`, which fstat
    // fills on success; a number that is not open is an error (EBADF), not UB,
    // since fstat only asks the kernel about it.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it wrote the whole struct.
    let st = unsafe { st.assume_init() };
    Ok(FileId {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    })
}

/// The error of a platform without the queue `what` (which `platforms` have).
pub(crate) fn unsupported(what: &str, platforms: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{what} is not available on this platform (only on {platforms}); use Backend::Poll"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn file_id_follows_the_file_not_the_number() {
        let (a, b) = UnixStream::pair().unwrap();
        let dup = a.try_clone().unwrap();
        let id = file_id(a.as_raw_fd()).unwrap();
        assert_eq!(file_id(dup.as_raw_fd()).unwrap(), id);
        assert_ne!(file_id(b.as_raw_fd()).unwrap(), id);
        let n = a.as_raw_fd();
        drop(a);
        // The number may be taken again by another test's thread; if not, EBADF.
        if let Err(e) = file_id(n) {
            assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        }
        assert_eq!(file_id(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
