//! kqueue(2), the queue under `Backend::Kqueue`: Apple's systems, FreeBSD, NetBSD,
//! OpenBSD and DragonFly. Elsewhere a type with no value whose `open` fails with
//! `Unsupported`.

pub(crate) use imp::Kqueue;

#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod imp {
    use std::io;
    use std::os::fd::{AsFd, RawFd};
    use std::time::Duration;

    use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent};

    use super::super::queue::Queue;
    use crate::sources::{Interest, Readiness};

    /// A kqueue, close-on-exec.
    pub(crate) struct Kqueue(nix::sys::event::Kqueue);

    /// One `struct kevent`: nix's [`KEvent`], which is not `Sync` because its
    /// `udata` is a pointer on most systems.
    #[repr(transparent)]
    #[derive(Clone, Copy)]
    pub(crate) struct Event(KEvent);

    // SAFETY: the only pointer in a kevent is `udata`, which this crate sets to an
    // integer (a generation number) and never dereferences; sending or sharing the
    // struct sends or shares plain integers.
    unsafe impl Send for Event {}
    // SAFETY: as for Send.
    unsafe impl Sync for Event {}

    fn empty() -> KEvent {
        KEvent::new(
            0,
            EventFilter::EVFILT_READ,
            EvFlags::empty(),
            FilterFlag::empty(),
            0,
            0,
        )
    }

    impl Kqueue {
        /// Applies the changes that take `fd` from `from` to `to`, in one
        /// `kevent(2)`: `EV_ADD` for each filter in `to` (which also updates one
        /// that exists, and its `udata`), `EV_DELETE` for each only in `from`.
        /// Each change's result comes back as a receipt (`EV_RECEIPT`), so one
        /// failure does not hide another. A failed delete is ignored: the kernel
        /// drops a descriptor's filters when it is closed, so `ENOENT` and `EBADF`
        /// mean it is gone already.
        fn change(&self, fd: RawFd, from: Interest, to: Interest, token: u64) -> io::Result<()> {
            // The descriptor is the event's ident; udata carries the generation.
            let udata = (token >> 32) as u32 as isize;
            let filters = [
                (
                    EventFilter::EVFILT_READ,
                    from.is_readable(),
                    to.is_readable(),
                ),
                (
                    EventFilter::EVFILT_WRITE,
                    from.is_writable(),
                    to.is_writable(),
                ),
            ];
            let mut changes = [empty(); 2];
            let mut n = 0;
            for (filter, had, wanted) in filters {
                let action = match (had, wanted) {
                    (_, true) => EvFlags::EV_ADD,
                    (true, false) => EvFlags::EV_DELETE,
                    (false, false) => continue,
                };
                changes[n] = KEvent::new(
                    fd as usize,
                    filter,
                    action | EvFlags::EV_RECEIPT,
                    FilterFlag::empty(),
                    0,
                    udata,
                );
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            let mut receipts = [empty(); 2];
            let zero = crate::sys::timespec(0, 0);
            let got = self
                .0
                .kevent(&changes[..n], &mut receipts[..n], Some(zero))?;
            for receipt in &receipts[..got] {
                let errno = receipt.data();
                if !receipt.flags().contains(EvFlags::EV_ERROR) || errno == 0 {
                    continue;
                }
                let added = filters
                    .iter()
                    .any(|&(f, _, wanted)| wanted && receipt.filter().ok() == Some(f));
                if added {
                    return Err(io::Error::from_raw_os_error(errno as i32));
                }
            }
            Ok(())
        }

        fn as_kevents(events: &mut [Event]) -> &mut [KEvent] {
            // SAFETY: Event is repr(transparent) over KEvent, so the slice's memory
            // is `events.len()` valid KEvents; the returned borrow is the only one
            // for its lifetime, as `events` was.
            unsafe {
                std::slice::from_raw_parts_mut(events.as_mut_ptr().cast::<KEvent>(), events.len())
            }
        }
    }

    impl Queue for Kqueue {
        type Event = Event;
        const SUPPORTED: bool = true;
        const FOLLOWS_FILE: bool = false;

        fn empty() -> Event {
            Event(empty())
        }

        fn open() -> io::Result<Kqueue> {
            let kq = nix::sys::event::Kqueue::new()?;
            // A kqueue is not inherited by fork(2)'s child, but exec(2) without a
            // fork would keep it: close-on-exec, as every descriptor of the crate.
            super::super::fd::set_cloexec(kq.as_fd())?;
            Ok(Kqueue(kq))
        }

        fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
            let result = self.change(fd, Interest::NONE, interest, token);
            if result.is_err() {
                // One filter may have been added before the other failed.
                let _ = self.change(fd, interest, Interest::NONE, token);
            }
            result
        }

        fn modify(&self, fd: RawFd, from: Interest, to: Interest, token: u64) -> io::Result<()> {
            self.change(fd, from, to, token)
        }

        fn delete(&self, fd: RawFd, from: Interest) -> io::Result<()> {
            self.change(fd, from, Interest::NONE, 0)
        }

        fn wait(&self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<usize> {
            // A timespec: no rounding needed; clamped as select's timeouts are.
            let timeout = timeout.map(crate::time::to_timespec);
            Ok(self.0.kevent(&[], Self::as_kevents(events), timeout)?)
        }

        /// `EVFILT_READ` is readable and `EVFILT_WRITE` writable; `EV_EOF` (the
        /// peer closed: end of file, or a pipe's other end gone) adds
        /// [`Readiness::HANGUP`], and [`Readiness::ERROR`] when `fflags` holds the
        /// socket's error; `EV_ERROR` is [`Readiness::INVALID`] for `EBADF`,
        /// [`Readiness::ERROR`] otherwise.
        fn decode(event: &Event) -> (u64, Readiness) {
            let ev = &event.0;
            let flags = ev.flags();
            let mut r = match ev.filter() {
                Ok(EventFilter::EVFILT_READ) => Readiness::READABLE,
                Ok(EventFilter::EVFILT_WRITE) => Readiness::WRITABLE,
                _ => Readiness::EMPTY,
            };
            if flags.contains(EvFlags::EV_EOF) {
                r |= Readiness::HANGUP;
                if ev.fflags().bits() != 0 {
                    r |= Readiness::ERROR;
                }
            }
            if flags.contains(EvFlags::EV_ERROR) {
                r = if ev.data() == libc::EBADF as isize {
                    Readiness::INVALID
                } else {
                    Readiness::ERROR
                };
            }
            let fd = ev.ident() as u32;
            let generation = ev.udata() as u32;
            (u64::from(fd) | (u64::from(generation) << 32), r)
        }
    }
}

#[cfg(not(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
mod imp {
    use std::io;
    use std::os::fd::RawFd;
    use std::time::Duration;

    use super::super::queue::{unsupported, Queue};
    use crate::sources::{Interest, Readiness};

    /// No kqueue here: no value of this type exists.
    pub(crate) enum Kqueue {}

    impl Queue for Kqueue {
        type Event = ();
        const SUPPORTED: bool = false;
        const FOLLOWS_FILE: bool = false;

        fn empty() {}

        fn open() -> io::Result<Kqueue> {
            Err(unsupported(
                "kqueue",
                "macOS, iOS, FreeBSD, NetBSD, OpenBSD and DragonFly",
            ))
        }

        fn add(&self, _: RawFd, _: Interest, _: u64) -> io::Result<()> {
            match *self {}
        }

        fn modify(&self, _: RawFd, _: Interest, _: Interest, _: u64) -> io::Result<()> {
            match *self {}
        }

        fn delete(&self, _: RawFd, _: Interest) -> io::Result<()> {
            match *self {}
        }

        fn wait(&self, _: &mut [()], _: Option<Duration>) -> io::Result<usize> {
            match *self {}
        }

        fn decode(_: &()) -> (u64, Readiness) {
            (0, Readiness::EMPTY)
        }
    }
}
