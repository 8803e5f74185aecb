//! epoll(7), the queue under `Backend::Epoll`: Linux and Android. Elsewhere a type
//! with no value whose `open` fails with `Unsupported`.

pub(crate) use imp::Epoll;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

    use super::super::cvt;
    use super::super::queue::Queue;
    use crate::sources::{Interest, Readiness};

    /// An epoll instance, close-on-exec.
    pub(crate) struct Epoll(nix::sys::epoll::Epoll);

    impl Epoll {
        /// One `epoll_ctl(2)`. The descriptor is a bare number: it may have been
        /// closed or renumbered behind the caller's back, which the kernel reports
        /// (`EBADF`, `ENOENT`), so nix's `AsFd` methods, which need a live borrow,
        /// do not fit here.
        fn ctl(
            &self,
            op: libc::c_int,
            fd: RawFd,
            interest: Interest,
            token: u64,
        ) -> io::Result<()> {
            let mut flags = EpollFlags::empty();
            if interest.is_readable() {
                flags |= EpollFlags::EPOLLIN;
            }
            if interest.is_writable() {
                flags |= EpollFlags::EPOLLOUT;
            }
            let mut event = libc::epoll_event {
                events: flags.bits() as u32,
                u64: token,
            };
            // SAFETY: `event` is a live epoll_event that the kernel reads (ADD, MOD)
            // or ignores (DEL; Linux before 2.6.9 wanted it non-null all the same).
            // The epoll descriptor is ours and open; `fd` is only a number to the
            // kernel, and one that is not open is an error, not UB.
            cvt(unsafe { libc::epoll_ctl(self.0 .0.as_raw_fd(), op, fd, &mut event) }).map(drop)
        }
    }

    impl Queue for Epoll {
        type Event = EpollEvent;
        const SUPPORTED: bool = true;
        const FOLLOWS_FILE: bool = true;

        fn empty() -> EpollEvent {
            EpollEvent::empty()
        }

        fn open() -> io::Result<Epoll> {
            Ok(Epoll(nix::sys::epoll::Epoll::new(
                EpollCreateFlags::EPOLL_CLOEXEC,
            )?))
        }

        fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
        }

        fn modify(&self, fd: RawFd, _from: Interest, to: Interest, token: u64) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_MOD, fd, to, token)
        }

        fn delete(&self, fd: RawFd, _from: Interest) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::NONE, 0)
        }

        fn wait(&self, events: &mut [EpollEvent], timeout: Option<Duration>) -> io::Result<usize> {
            // Milliseconds, rounded up and clamped as poll's are: −1 or 0..=c_int::MAX,
            // all of which EpollTimeout takes.
            let ms = crate::time::to_poll_millis(timeout);
            let timeout = EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE);
            Ok(self.0.wait(events, timeout)?)
        }

        /// As poll's flags are mapped: `EPOLLHUP` and `EPOLLERR`, which come without
        /// being asked for, are [`Readiness::HANGUP`] and [`Readiness::ERROR`].
        fn decode(event: &EpollEvent) -> (u64, Readiness) {
            let flags = event.events();
            let mut r = Readiness::EMPTY;
            let pairs = [
                (
                    EpollFlags::EPOLLIN | EpollFlags::EPOLLRDNORM,
                    Readiness::READABLE,
                ),
                (
                    EpollFlags::EPOLLOUT | EpollFlags::EPOLLWRNORM,
                    Readiness::WRITABLE,
                ),
                (EpollFlags::EPOLLHUP, Readiness::HANGUP),
                (EpollFlags::EPOLLERR, Readiness::ERROR),
            ];
            for (f, readiness) in pairs {
                if flags.intersects(f) {
                    r |= readiness;
                }
            }
            (event.data(), r)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::io::Write;
        use std::os::unix::net::UnixStream;

        #[test]
        fn close_on_exec_and_the_token_comes_back() {
            let epoll = Epoll::open().unwrap();
            use std::os::fd::AsFd;
            let flags = nix::fcntl::fcntl(epoll.0 .0.as_fd(), nix::fcntl::FcntlArg::F_GETFD);
            let flags = flags.unwrap();
            assert_ne!(flags & libc::FD_CLOEXEC, 0);

            let (a, mut b) = UnixStream::pair().unwrap();
            let token = (7u64 << 32) | a.as_raw_fd() as u64;
            epoll.add(a.as_raw_fd(), Interest::READ, token).unwrap();
            let again = epoll.add(a.as_raw_fd(), Interest::READ, token).unwrap_err();
            assert_eq!(again.raw_os_error(), Some(libc::EEXIST));
            let mut events = [Epoll::empty(); 4];
            assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
            b.write_all(b"x").unwrap();
            assert_eq!(
                epoll
                    .wait(&mut events, Some(Duration::from_secs(5)))
                    .unwrap(),
                1
            );
            assert_eq!(Epoll::decode(&events[0]), (token, Readiness::READABLE));

            epoll
                .modify(a.as_raw_fd(), Interest::READ, Interest::BOTH, token + 1)
                .unwrap();
            assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
            assert_eq!(
                Epoll::decode(&events[0]),
                (token + 1, Readiness::READABLE | Readiness::WRITABLE)
            );
            epoll.delete(a.as_raw_fd(), Interest::BOTH).unwrap();
            let gone = epoll.delete(a.as_raw_fd(), Interest::BOTH).unwrap_err();
            assert_eq!(gone.raw_os_error(), Some(libc::ENOENT));
            assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        }

        #[test]
        fn hangup_and_error_come_unasked() {
            let epoll = Epoll::open().unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            // Watched for writing only: the peer's close still shows.
            epoll.add(a.as_raw_fd(), Interest::WRITE, 1).unwrap();
            drop(b);
            let mut events = [Epoll::empty(); 4];
            assert_eq!(
                epoll
                    .wait(&mut events, Some(Duration::from_secs(5)))
                    .unwrap(),
                1
            );
            let (token, r) = Epoll::decode(&events[0]);
            assert_eq!(token, 1);
            assert!(r.is_hangup(), "{r:?}");
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::io;
    use std::os::fd::RawFd;
    use std::time::Duration;

    use super::super::queue::{unsupported, Queue};
    use crate::sources::{Interest, Readiness};

    /// No epoll here: no value of this type exists.
    pub(crate) enum Epoll {}

    impl Queue for Epoll {
        type Event = ();
        const SUPPORTED: bool = false;
        const FOLLOWS_FILE: bool = true;

        fn empty() {}

        fn open() -> io::Result<Epoll> {
            Err(unsupported("epoll", "Linux and Android"))
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
