//! Every platform difference of the crate, and every call into the C library, in
//! one place: the rest of the crate calls these items and never writes
//! `cfg(target_os)` itself. One file per concept.

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod fd;
mod io;
mod poll;
mod select;
mod signal;
mod socket;

pub(crate) use io::*;
pub(crate) use poll::*;
pub(crate) use select::*;
pub(crate) use signal::*;
pub(crate) use socket::*;
