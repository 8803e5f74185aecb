//! Safe `select(2)`, `poll(2)`, `SO_LINGER` and UNP's line I/O, with the select-based
//! TCP echo server of W. Richard Stevens' *Unix Network Programming* (UNP) ported
//! faithfully and its RST-before-accept race (UNP 16.6) fixed.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod linger;
pub mod poll;
pub mod readline;
pub mod readn;
pub mod select;
mod sys;
pub mod writen;

pub use linger::{abort, linger, set_linger};
pub use poll::{poll, PollFd, PollFlags};
pub use readline::LineReader;
pub use readn::{readn, PartialRead};
pub use select::{select, FdSet, FD_SETSIZE};
pub use writen::{try_writen, writen};
