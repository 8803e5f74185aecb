//! STUB: replaced by the select/poll work.
#![allow(missing_docs, unused_variables, clippy::all)]
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PollFlags(i16);
impl PollFlags {
    pub const POLLIN: PollFlags = PollFlags(libc::POLLIN);
    pub const POLLRDNORM: PollFlags = PollFlags(libc::POLLRDNORM);
    pub const POLLOUT: PollFlags = PollFlags(libc::POLLOUT);
    pub const POLLERR: PollFlags = PollFlags(libc::POLLERR);
    pub const POLLHUP: PollFlags = PollFlags(libc::POLLHUP);
    pub const POLLNVAL: PollFlags = PollFlags(libc::POLLNVAL);
    pub fn empty() -> PollFlags {
        PollFlags(0)
    }
    pub fn contains(self, other: PollFlags) -> bool {
        unimplemented!()
    }
    pub fn intersects(self, other: PollFlags) -> bool {
        unimplemented!()
    }
}
impl std::ops::BitOr for PollFlags {
    type Output = PollFlags;
    fn bitor(self, o: PollFlags) -> PollFlags {
        PollFlags(self.0 | o.0)
    }
}
#[derive(Clone, Copy, Debug)]
pub struct PollFd {
    _p: (),
}
impl PollFd {
    pub fn new(fd: RawFd, events: PollFlags) -> PollFd {
        unimplemented!()
    }
    pub fn fd(&self) -> RawFd {
        unimplemented!()
    }
    pub fn set_fd(&mut self, fd: RawFd) {
        unimplemented!()
    }
    pub fn events(&self) -> PollFlags {
        unimplemented!()
    }
    pub fn set_events(&mut self, events: PollFlags) {
        unimplemented!()
    }
    pub fn revents(&self) -> PollFlags {
        unimplemented!()
    }
}
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    unimplemented!()
}
