//! STUB: replaced by the linger work.
#![allow(missing_docs, unused_variables, clippy::all)]
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;
pub fn set_linger<F: AsFd>(fd: &F, linger: Option<Duration>) -> io::Result<()> {
    unimplemented!()
}
pub fn linger<F: AsFd>(fd: &F) -> io::Result<Option<Duration>> {
    unimplemented!()
}
pub fn abort<S: Into<OwnedFd>>(sock: S) -> io::Result<()> {
    unimplemented!()
}
