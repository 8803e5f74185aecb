//! STUB: replaced by the select/poll work.
#![allow(missing_docs, unused_variables, clippy::all)]
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub const FD_SETSIZE: usize = crate::sys::FD_SETSIZE;

#[derive(Clone, Default, Debug, PartialEq)]
pub struct FdSet {
    _p: (),
}
impl FdSet {
    pub fn new() -> FdSet {
        unimplemented!()
    }
    pub fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        unimplemented!()
    }
    pub fn remove(&mut self, fd: RawFd) {
        unimplemented!()
    }
    pub fn contains(&self, fd: RawFd) -> bool {
        unimplemented!()
    }
    pub fn clear(&mut self) {
        unimplemented!()
    }
    pub fn highest(&self) -> Option<RawFd> {
        unimplemented!()
    }
    pub fn len(&self) -> usize {
        unimplemented!()
    }
    pub fn is_empty(&self) -> bool {
        unimplemented!()
    }
    pub fn iter(&self) -> impl Iterator<Item = RawFd> + '_ {
        std::iter::empty()
    }
}
pub fn select(
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    except: Option<&mut FdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    unimplemented!()
}
