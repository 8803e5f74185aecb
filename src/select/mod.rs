//! `select(2)` and `pselect(2)` over safe descriptor sets.
//!
//! [`FdSet`] is a C `fd_set` with bounds-checked operations: it replaces the
//! `FD_ZERO`/`FD_SET`/`FD_CLR`/`FD_ISSET` macros, which write out of bounds (or abort
//! under `_FORTIFY_SOURCE`) for a descriptor at or above [`FD_SETSIZE`]. [`select`]
//! computes `nfds` itself from the highest descriptor in the sets, like UNP's `Select`
//! wrapper (section 6.3) but without the `maxfd + 1` bookkeeping.
//!
//! `select` **overwrites** its sets with the ready descriptors, so a loop keeps a master
//! set and passes a copy each time (UNP's `rset = allset`):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use unp_select::select::{select, FdSet};
//!
//! let (mut peer, mut sock) = UnixStream::pair()?;
//! peer.write_all(b"hello")?;
//!
//! let mut allset = FdSet::new();
//! allset.insert(sock.as_raw_fd())?;
//! loop {
//!     let mut rset = allset.clone();
//!     let nready = select(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?;
//!     if nready == 0 {
//!         break; // timed out
//!     }
//!     for fd in &rset {
//!         assert_eq!(fd, sock.as_raw_fd());
//!         let mut buf = [0; 16];
//!         let n = sock.read(&mut buf)?;
//!         assert_eq!(&buf[..n], b"hello");
//!         allset.remove(fd); // done with it
//!     }
//!     if allset.is_empty() {
//!         break;
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Descriptors at or above `FD_SETSIZE` need [`LargeFdSet`] and [`select_large`], or
//! [`poll`](crate::poll::poll), which has no such limit. Code written once for both
//! set types bounds on the sealed trait [`FdSetLike`], which both implement.
//!
//! # Timeouts
//!
//! `None` blocks until a descriptor is ready; `Some(Duration::ZERO)` polls. Timeouts are
//! rounded **up** to the clock resolution of the call (microseconds for `select`,
//! nanoseconds for `pselect`) so that a tiny timeout never turns into a busy poll, and
//! timeouts above [`MAX_TIMEOUT`] (10⁸ seconds, about 3 years) are clamped to it.
//!
//! When a signal interrupts the wait, the call fails with
//! [`ErrorKind::Interrupted`](io::ErrorKind::Interrupted). [`select_restarting`] retries
//! with the *remaining* time, without relying on the kernel writing it back into the
//! `timeval` (Linux does, the BSDs and musl do not).
//!
//! # Closed descriptors
//!
//! POSIX has `select` fail with `EBADF` when a set holds a descriptor that is not open.
//! The kernel checks only the descriptors numbered below the size of the process's
//! descriptor table, which grows, never shrinking, to cover every descriptor opened
//! (on 64-bit Linux it starts at 64 slots). A number above the table is not open
//! either, but Linux clips `nfds` to the table size and leaves the bits above it as the
//! caller set them, so such a descriptor would come back "ready" without being counted.
//!
//! So every select function here compares the returned count with the descriptors left
//! in the sets (the kernel counts bits, so one descriptor ready for reading and writing
//! counts twice). If the sets hold more, the call fails with `EBADF` as well, and the
//! sets are cleared. The check costs one popcount per word below `nfds`.
//!
//! The check runs only after the kernel returns. If nothing else in the sets becomes
//! ready, the call waits out its timeout first, and with `None` it waits forever.
//!
//! # I/O safety
//!
//! The sets hold descriptor *numbers* ([`RawFd`]) and [`FdSet::insert`] takes any
//! integer, safely. Rust's I/O-safety rules (the [`std::os::fd`] docs) say a raw
//! descriptor should be treated as unsafe to *do I/O on*, since the number may have
//! been closed and given to another object, owned by other code. A readiness query
//! does no I/O: `select` does not read, write or close a descriptor, it reports whether
//! an operation on it would block. A wrong number makes the caller ask about the wrong
//! object, a bug in the caller that cannot cause undefined behaviour or touch data
//! that other code owns. Numbers are also what UNP's loops carry (`maxfd`,
//! `client[i] = -1`), and what an `fd_set` is made of.
//!
//! What a number that is not, or is no longer, the caller's open descriptor does:
//!
//! - not open, below the descriptor table: the kernel fails the call with `EBADF`;
//! - not open, above the table: the call fails with `EBADF` as well, once the kernel
//!   returns (see [Closed descriptors](#closed-descriptors));
//! - closed and then reused (another `open`, `socket` or `accept`, in any thread, took
//!   the number): the call reports the readiness of whatever has the number now, with
//!   no error, and nothing can tell. Take a descriptor out of the sets before closing
//!   it, as UNP's `FD_CLR(sockfd, &allset)` next to `Close(sockfd)` does.
//!
//! For the compiler's help with the first two, [`FdSet::insert_fd`],
//! [`remove_fd`](FdSet::remove_fd) and [`contains_fd`](FdSet::contains_fd) (and the
//! same on [`LargeFdSet`]) take the descriptor itself, borrowed: `&(impl AsFd +
//! ?Sized)` (`&stream`, `&owned_fd`, `&borrowed_fd`, a `&dyn AsFd`), the shape of
//! every function of this crate that uses a descriptor without closing it. Only an open
//! descriptor gets in, and an owned one passed by value (closed at the end of the call)
//! does not compile. The set keeps only the number, so the last point still applies.
//!
//! Other crates decided otherwise. rustix's `select` is `unsafe`: the caller promises
//! that every descriptor in the sets is open. nix's `FdSet<'fd>` takes `BorrowedFd<'fd>`
//! and so borrows every member for as long as the set lives (and panics for a
//! descriptor outside `0..FD_SETSIZE`, where [`FdSet::insert`] returns an error). This
//! crate keeps the number-based calls safe, for the reasons above, and keeps its sets
//! free of lifetimes: UNP's `allset` lives as long as the server while its clients come
//! and go, and a set that borrowed them could not let one be closed (removing it would
//! not end the borrow).
//!
//! # Platform-specific behavior
//!
//! - Linux clips `nfds` to the table size (`max_fds` in `fs/select.c`, a multiple of the
//!   word size). Measured: without the check, read set {1000} gave `Ok(0)` with 1000
//!   still in the set.
//! - FreeBSD clips `nfds` too, but its current source checks the bits above the table
//!   and fails with `EBADF` itself (`select_check_badfd` in `sys_generic.c`), leaving
//!   the sets unspecified as after any kernel error. Not run here.
//! - macOS: not verified here. xnu's source clips `nfds` like Linux, so the check should
//!   apply. One exception: a descriptor in the same 32-bit word as the end of the table
//!   would come back cleared (not ready) instead of set, and the check cannot see it.
//!
//! # References
//!
//! - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html),
//!   [`pselect`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pselect.html),
//!   [`FD_SET`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/sys_select.h.html)
//! - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html),
//!   [select_tut(2)](https://man7.org/linux/man-pages/man2/select_tut.2.html)
//! - FreeBSD [select(2)](https://man.freebsd.org/cgi/man.cgi?query=select&sektion=2)
//! - Apple [select(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/select.2.html)
//! - UNP sections 6.3 (`select`), 6.9 (`pselect`) and 6.8 (the select-based echo server).
//! - I/O safety: Rust's [`std::io`](https://doc.rust-lang.org/std/io/index.html#io-safety)
//!   and [`std::os::fd`](https://doc.rust-lang.org/std/os/fd/index.html) docs; rustix's
//!   [`select`](https://docs.rs/rustix/latest/rustix/event/fn.select.html) (`unsafe`)
//!   and nix's [`FdSet`](https://docs.rs/nix/0.32.0/nix/sys/select/struct.FdSet.html)
//!   (lifetimes).

mod fd_set;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use nix::sys::signal::SigSet;

use crate::sys::{self, FdWord};
use crate::time::{to_timespec, to_timeval, Deadline};
use fd_set::{words_len, WORD_BITS};

pub use crate::time::MAX_TIMEOUT;
pub use fd_set::{FdSet, FdSetLike, Iter, LargeFdSet, FD_SETSIZE};

// ---- the shared machinery ---------------------------------------------------------------

/// Calls `call` until it does not fail with `EINTR`, restoring the three sets to their
/// original contents and passing the remaining time before each retry.
fn restarting<S: Clone>(
    mut read: Option<&mut S>,
    mut write: Option<&mut S>,
    mut except: Option<&mut S>,
    timeout: Option<Duration>,
    mut call: impl FnMut(
        Option<&mut S>,
        Option<&mut S>,
        Option<&mut S>,
        Option<Duration>,
    ) -> io::Result<usize>,
) -> io::Result<usize> {
    let saved = [
        read.as_deref().cloned(),
        write.as_deref().cloned(),
        except.as_deref().cloned(),
    ];
    let deadline = Deadline::after(timeout);
    let mut remaining = timeout;
    loop {
        match call(
            read.as_deref_mut(),
            write.as_deref_mut(),
            except.as_deref_mut(),
            remaining,
        ) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                for (set, orig) in [
                    read.as_deref_mut(),
                    write.as_deref_mut(),
                    except.as_deref_mut(),
                ]
                .into_iter()
                .zip(&saved)
                {
                    if let (Some(set), Some(orig)) = (set, orig) {
                        set.clone_from(orig);
                    }
                }
                remaining = deadline.remaining();
            }
            result => return result,
        }
    }
}

fn nfds_of(sets: impl IntoIterator<Item = Option<RawFd>>) -> libc::c_int {
    sets.into_iter()
        .flatten()
        .max()
        .map_or(0, |fd| fd.saturating_add(1))
}

/// The three sets' bitmaps once more, for the next borrow of the bitmaps.
fn reborrow<'a>(sets: &'a mut [Option<&mut [FdWord]>; 3]) -> sys::Sets<'a> {
    let [r, w, e] = sets;
    [r.as_deref_mut(), w.as_deref_mut(), e.as_deref_mut()]
}

/// Number of bitmap words that hold descriptors `0..nfds`.
fn words_for(nfds: libc::c_int) -> usize {
    // nfds <= LargeFdSet::MAX_FD + 1: no overflow.
    usize::try_from(nfds).map_or(0, |n| n.div_ceil(WORD_BITS))
}

/// The outcome of a select call that succeeded with `ready` for `nfds` and left `sets`
/// (the read, write and except bitmaps, as passed): every entry point ends here.
///
/// On success the kernel returns the number of bits it set, over all three sets, and
/// clears every other bit it examined. A bit it did not examine stays set, so the sets
/// then hold more descriptors than `ready`: Linux (and, by its source, macOS) clips `nfds`
/// to the size of the descriptor table, and a descriptor above the table is not open.
/// That is `EBADF`, as POSIX specifies for a descriptor that is not open; the sets are
/// cleared.
///
/// Fewer members than `ready` would mean a bit counted twice, which POSIX's count rules
/// out (the sets are distinct `&mut` borrows, never the same memory); the kernel's
/// count is returned unchanged rather than turned into an error.
fn select_result(
    ready: usize,
    nfds: libc::c_int,
    sets: [Option<&mut [FdWord]>; 3],
) -> io::Result<usize> {
    let words = words_for(nfds);
    let members: usize = sets
        .iter()
        .flatten()
        .map(|set| words_len(&set[..words.min(set.len())]))
        .sum();
    if members > ready {
        for set in sets.into_iter().flatten() {
            set.fill(0);
        }
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(ready)
}

/// The one body of [`select`] and [`select_large`] (and so of [`FdSetLike::select`]):
/// `nfds` from the sets, the bitmaps at least as long as the kernel reads, the call
/// `S` needs, and the check of the result.
fn select_sets<S: FdSetLike>(
    read: Option<&mut S>,
    write: Option<&mut S>,
    except: Option<&mut S>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let nfds = nfds_of([&read, &write, &except].map(|set| set.as_deref().and_then(S::highest)));
    // At least one word, so that no set passed to the kernel is an empty slice.
    let words = words_for(nfds).max(1);
    let mut sets = [read, write, except].map(|set| set.map(|set| set.kernel_words(words)));
    let mut tv = timeout.map(to_timeval);
    let ready = if S::UNLIMITED {
        sys::select_unlimited(nfds, reborrow(&mut sets), tv.as_mut())?
    } else {
        sys::select(nfds, reborrow(&mut sets), tv.as_mut())?
    };
    select_result(ready, nfds, sets)
}

// ---- select / pselect -----------------------------------------------------------------

/// Waits until a descriptor in `read` is readable, one in `write` writable, one in
/// `except` has an exceptional condition (TCP out-of-band data), or `timeout` passes.
///
/// On success the sets are **overwritten** with the ready descriptors and the total
/// number of ready descriptors (counted once per set) is returned; `0` means the
/// timeout expired and all sets are empty. `nfds` is computed from the highest
/// descriptor in the sets. `None` as `timeout` waits forever; `Some(Duration::ZERO)`
/// polls. See [the module docs](self) for rounding and clamping of timeouts.
///
/// A descriptor is "ready" when an operation on it would not block, which includes
/// end-of-file and pending errors (UNP section 6.3 lists the conditions).
///
/// This is UNP's `Select` wrapper (section 6.3).
///
/// # Errors
///
/// - [`ErrorKind::Interrupted`](io::ErrorKind::Interrupted) (`EINTR`) when a signal
///   handler ran during the wait; see [`select_restarting`].
/// - `EBADF` when a set holds a descriptor that is not open. The kernel reports one
///   numbered below the size of the descriptor table. For one above the table, this
///   function reports it once the kernel returns, and clears all three sets. See
///   [Closed descriptors](self#closed-descriptors).
/// - `EINVAL`, `ENOMEM` from the kernel.
///
/// After any other error POSIX leaves the contents of the sets unspecified;
/// reinitialise them before reusing them.
///
/// # Platform-specific behavior
///
/// Linux, FreeBSD and macOS treat descriptors above the descriptor table differently;
/// see [the module docs](self#platform-specific-behavior). On failure (including
/// `EINTR`) Linux leaves the sets as they were (observed on Linux 6.18). glibc writes
/// the unslept time back into its `timeval` (this function does not expose it).
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select, FdSet};
///
/// let (mut a, b) = UnixStream::pair()?;
/// let mut rset = FdSet::new();
/// rset.insert(b.as_raw_fd())?;
/// // Nothing to read yet: polling returns 0 and empties the set.
/// assert_eq!(select(Some(&mut rset.clone()), None, None, Some(Duration::ZERO))?, 0);
///
/// a.write_all(b"x")?;
/// let mut wset = FdSet::new();
/// wset.insert(a.as_raw_fd())?;
/// let n = select(Some(&mut rset), Some(&mut wset), None, Some(Duration::from_secs(5)))?;
/// assert_eq!(n, 2);
/// assert!(rset.contains(b.as_raw_fd()) && wset.contains(a.as_raw_fd()));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html)
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)
/// - FreeBSD [select(2)](https://man.freebsd.org/cgi/man.cgi?query=select&sektion=2)
/// - Apple [select(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/select.2.html)
pub fn select(
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    except: Option<&mut FdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    select_sets(read, write, except, timeout)
}

/// [`select`] that restarts itself after `EINTR` with the remaining time.
///
/// Before each retry the sets are restored to what they were on entry, and the timeout
/// becomes what is left until `timeout` after the first call (measured with
/// [`Instant`](std::time::Instant), not taken from the kernel's `timeval`, which only Linux updates). Once
/// the deadline has passed, the last attempt polls, so the function returns `0` (or
/// descriptors that became ready) instead of waiting again. With `None` it waits
/// forever, ignoring interruptions.
///
/// Use it when signal handlers only record something for later; use [`select`] (and
/// handle `Interrupted`) or [`pselect`] when a signal must wake the loop.
///
/// # Errors
///
/// As [`select`], except that `EINTR` is never returned. A closed descriptor gives
/// `EBADF`: from the kernel at once if its number is below the descriptor table; if
/// above it, once the call returns, with the sets cleared. With `timeout` = `None` and
/// nothing else ready, that call never returns.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select_restarting, FdSet};
///
/// let (_a, b) = UnixStream::pair()?;
/// let mut rset = FdSet::new();
/// rset.insert(b.as_raw_fd())?;
/// let n = select_restarting(Some(&mut rset), None, None, Some(Duration::from_millis(20)))?;
/// assert_eq!(n, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html)
///   ("may modify the object pointed to by the timeout argument")
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), section
///   "The timeout"
pub fn select_restarting(
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    except: Option<&mut FdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    restarting(read, write, except, timeout, select)
}

/// [`select`] that also replaces the thread's signal mask during the wait, atomically.
///
/// With `sigmask` = `Some(mask)` the thread's signal mask is `mask` while waiting and is
/// restored on return. The race-free pattern (UNP section 6.9): keep a signal blocked,
/// and unblock it only inside `pselect`. A signal that arrived before the call stays
/// pending and interrupts `pselect` at once (`Interrupted`), instead of being handled
/// between a check of a flag and a blocking `select`, which would then sleep.
/// `None` keeps the current mask (plain `select` with a `timespec` timeout).
///
/// The timeout has nanosecond resolution and is not modified by the call.
///
/// # Errors
///
/// As [`select`]. `Interrupted` is the expected outcome when a signal unblocked by
/// `sigmask` is delivered. A closed descriptor gives `EBADF`: from the kernel if its
/// number is below the descriptor table; if above it, from this function once the call
/// returns, with the sets cleared. After other errors the sets' contents are
/// unspecified.
///
/// # Platform-specific behavior
///
/// Linux (glibc, musl) and FreeBSD implement `pselect` as one system call, so the mask
/// change and the wait are atomic (tested here on Linux). Older macOS releases emulated
/// `pselect` in user space with `sigprocmask` + `select`, which reopens the race; whether
/// a given macOS release does so is not verified here.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nix::sys::signal::SigSet;
/// use unp_select::select::{pselect, FdSet};
///
/// // Sleep 10 ms with every signal blocked.
/// let n = pselect(None, None, None, Some(Duration::from_millis(10)), Some(&SigSet::all()))?;
/// assert_eq!(n, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`pselect`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pselect.html)
/// - Linux [pselect(2)](https://man7.org/linux/man-pages/man2/pselect.2.html)
/// - FreeBSD [pselect(2)](https://man.freebsd.org/cgi/man.cgi?query=pselect&sektion=2)
/// - Apple [pselect(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/pselect.2.html)
pub fn pselect(
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    except: Option<&mut FdSet>,
    timeout: Option<Duration>,
    sigmask: Option<&SigSet>,
) -> io::Result<usize> {
    let nfds = nfds_of([&read, &write, &except].map(|set| set.as_deref().and_then(FdSet::highest)));
    let mut sets = [read, write, except].map(|set| set.map(|set| &mut set.words_mut()[..]));
    let ts = timeout.map(to_timespec);
    let ready = sys::pselect(nfds, reborrow(&mut sets), ts.as_ref(), sigmask)?;
    select_result(ready, nfds, sets)
}

/// [`select`] for [`LargeFdSet`]s, which may hold descriptors at or above
/// [`FD_SETSIZE`].
///
/// The bitmaps are passed to the same `select` system call with `nfds` = highest
/// descriptor + 1; shorter sets are first padded with zero words so that the kernel
/// reads `nfds` bits from each. On success the sets hold the ready descriptors.
///
/// For many descriptors [`poll`](crate::poll::poll) is usually the better tool: its cost
/// depends on the number of descriptors, not on the highest one.
///
/// # Errors
///
/// As [`select`]. A closed descriptor gives `EBADF`: from the kernel if its number is
/// below the descriptor table; if above it (say 5000 in a process that never had that
/// many descriptors), from this function once the call returns, with the sets cleared.
/// After other errors the sets' contents are unspecified.
///
/// # Platform-specific behavior
///
/// - Linux and FreeBSD: the kernel accepts any `nfds` and reads
///   `ceil(nfds / bits per word)` words from each set; Linux clips `nfds` to the size of
///   the descriptor table (see [the module docs](self#platform-specific-behavior)).
///   Verified on Linux with a descriptor above 1500, and `EBADF` for a closed one at
///   5000.
/// - macOS: the default (UNIX-conformant) `select` fails with `EINVAL` when
///   `nfds > FD_SETSIZE`; this function calls `select$DARWIN_EXTSN`, the variant C
///   programs get with `_DARWIN_UNLIMITED_SELECT`, which has no such limit. This is
///   checked to compile, not run on a Mac.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select_large, LargeFdSet};
///
/// let (mut a, b) = UnixStream::pair()?;
/// a.write_all(b"x")?;
/// let mut rset = LargeFdSet::new();
/// rset.insert(b.as_raw_fd())?;
/// assert_eq!(select_large(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?, 1);
/// assert!(rset.contains(b.as_raw_fd()));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), section
///   "BUGS" (on `fd_set`s larger than `FD_SETSIZE`)
/// - Apple [select(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/select.2.html)
///   (`_DARWIN_UNLIMITED_SELECT`)
pub fn select_large(
    read: Option<&mut LargeFdSet>,
    write: Option<&mut LargeFdSet>,
    except: Option<&mut LargeFdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    select_sets(read, write, except, timeout)
}

/// [`select_large`] that restarts after `EINTR` with the remaining time, restoring the
/// sets first; see [`select_restarting`].
///
/// # Errors
///
/// As [`select_large`], except that `EINTR` is never returned. A closed descriptor
/// gives `EBADF`: from the kernel at once if its number is below the descriptor table;
/// if above it, once the call returns, with the sets cleared. With `timeout` = `None`
/// and nothing else ready, that call never returns.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unp_select::select::{select_large_restarting, LargeFdSet};
///
/// let mut rset = LargeFdSet::new();
/// assert_eq!(select_large_restarting(Some(&mut rset), None, None, Some(Duration::ZERO))?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)
pub fn select_large_restarting(
    read: Option<&mut LargeFdSet>,
    write: Option<&mut LargeFdSet>,
    except: Option<&mut LargeFdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    restarting(read, write, except, timeout, select_large)
}

#[cfg(test)]
mod tests {
    use super::fd_set::word_bit;
    use super::*;

    #[test]
    fn restarting_restores_sets_and_shrinks_timeout() {
        let mut read = FdSet::new();
        read.insert(3).unwrap();
        let mut except = FdSet::new();
        except.insert(9).unwrap();
        let (orig_read, orig_except) = (read, except);
        let mut timeouts = Vec::new();
        let mut calls = 0;
        let n = restarting(
            Some(&mut read),
            None,
            Some(&mut except),
            Some(Duration::from_millis(50)),
            |r, w, e, t| {
                calls += 1;
                timeouts.push(t);
                let (r, e) = (r.unwrap(), e.unwrap());
                assert!(w.is_none());
                // Every attempt sees the original sets.
                assert_eq!((*r, *e), (orig_read, orig_except));
                if calls < 4 {
                    // Clobber them like a kernel might, then fail with EINTR.
                    r.clear();
                    e.insert(100).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    Err(io::Error::from_raw_os_error(libc::EINTR))
                } else {
                    Ok(7)
                }
            },
        )
        .unwrap();
        assert_eq!((n, calls), (7, 4));
        assert_eq!(timeouts[0], Some(Duration::from_millis(50)));
        for pair in timeouts.windows(2) {
            assert!(pair[1].unwrap() < pair[0].unwrap(), "{timeouts:?}");
        }
    }

    #[test]
    fn restarting_passes_other_errors_through() {
        let err = restarting::<FdSet>(None, None, None, None, |_, _, _, t| {
            assert_eq!(t, None);
            Err(io::Error::from_raw_os_error(libc::EBADF))
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    /// Eight words with the given descriptors.
    fn bitmap(fds: &[usize]) -> Vec<FdWord> {
        let mut words = vec![0; 8];
        for &fd in fds {
            let (w, bit) = word_bit(fd);
            words[w] |= bit;
        }
        words
    }

    #[test]
    fn words_for_rounds_up() {
        assert_eq!(words_for(-1), 0);
        assert_eq!(words_for(0), 0);
        assert_eq!(words_for(1), 1);
        assert_eq!(words_for(WORD_BITS as libc::c_int), 1);
        assert_eq!(words_for(WORD_BITS as libc::c_int + 1), 2);
    }

    #[test]
    fn select_result_accepts_a_count_that_matches_the_sets() {
        // Descriptor 3 ready for reading and writing counts twice.
        let (hi, nfds) = (WORD_BITS + 6, WORD_BITS as libc::c_int + 7);
        let (mut r, mut w) = (bitmap(&[3]), bitmap(&[3, hi]));
        let n = select_result(3, nfds, [Some(&mut r), Some(&mut w), None]).unwrap();
        assert_eq!(n, 3);
        assert_eq!((r, w), (bitmap(&[3]), bitmap(&[3, hi])));
        assert_eq!(select_result(0, 0, [None, None, None]).unwrap(), 0);
        let mut e = bitmap(&[]);
        assert_eq!(select_result(0, 1, [None, None, Some(&mut e)]).unwrap(), 0);
    }

    #[test]
    fn select_result_is_ebadf_when_a_bit_was_not_counted() {
        for (rc, read, write) in [
            (0, &[200][..], &[][..]), // alone, the kernel returned 0
            (1, &[][..], &[3, 200][..]),
            (1, &[200][..], &[3][..]),
            (2, &[3, 200][..], &[3][..]),
        ] {
            let (mut r, mut w, mut e) = (bitmap(read), bitmap(write), bitmap(&[]));
            let err =
                select_result(rc, 201, [Some(&mut r), Some(&mut w), Some(&mut e)]).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{read:?} {write:?}");
            assert_eq!((&r, &w, &e), (&bitmap(&[]), &bitmap(&[]), &bitmap(&[])));
        }
    }

    #[test]
    fn select_result_keeps_the_kernels_count_when_it_is_higher() {
        // Cannot happen with distinct sets; the kernel's count is not second-guessed.
        let mut r = bitmap(&[3]);
        assert_eq!(select_result(2, 4, [Some(&mut r), None, None]).unwrap(), 2);
        assert_eq!(r, bitmap(&[3]));
    }

    #[test]
    fn select_result_counts_only_the_words_below_nfds() {
        // The kernel reads and writes ceil(nfds / WORD_BITS) words; nothing after them
        // is counted (the select functions never leave bits there), and a shorter slice
        // is not indexed past its end.
        let mut r = bitmap(&[3, 200]);
        assert_eq!(select_result(1, 4, [Some(&mut r), None, None]).unwrap(), 1);
        let mut short = vec![0 as FdWord; 1];
        short[0] = 1 << 3;
        assert_eq!(
            select_result(1, 201, [Some(&mut short), None, None]).unwrap(),
            1
        );
    }
}
