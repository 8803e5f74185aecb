//! One connection's buffers and state: UNP's `client[i]`, plus what its last turn
//! left. A connection whose input was all delivered and whose output was all sent
//! holds no buffer at all.

use std::os::fd::OwnedFd;

use super::output::Output;
use super::protocol::{ConnId, Frame};
use super::timers::{Deadline, Timer, KINDS};
use crate::readline::find_newline;
use crate::sources::Interest;

/// The most bytes one `read` takes, whatever the frame.
pub(super) const READ_MAX: usize = 64 * 1024;

/// How a connection is to end, once its output is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// Not ending.
    Open,
    /// `shutdown(SHUT_WR)` when the output is sent (done once `fin_sent`).
    ShutdownWrite,
    /// Close when the output is sent.
    Close,
}

/// How far a connection is: one the server opened may still be connecting, and
/// one it opened or adopted is not known to the protocol until its next turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// A nonblocking `connect` in progress (UNP 16.3): watched for writable.
    Connecting,
    /// Established; the protocol's [`connect`](super::Protocol::connect) comes at
    /// its next turn.
    Made,
    /// The protocol has its state: served as any connection.
    Open,
    /// Not a connection: a descriptor the protocol watches
    /// ([`Context::watch`](super::Context::watch)); the loop neither reads nor
    /// writes it, it calls [`Protocol::ready`](super::Protocol::ready).
    Watched,
}

/// Who is at the other end, and the connection paired with this one: kept apart
/// (boxed, see [`Conn::link`]), since most connections have neither.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Link {
    /// The server opened it ([`Context::connect`](super::Context::connect)).
    pub(super) outgoing: bool,
    /// Back-pressure on either stops reading the other; when one closes, the
    /// other closes once its output is sent ([`Context::pair`](super::Context::pair)).
    pub(super) partner: Option<ConnId>,
    /// Not read because the partner's output is over `max_unsent`: served again
    /// when it is not.
    pub(super) waits_for_partner: bool,
}

pub(super) struct Conn {
    pub(super) fd: OwnedFd,
    pub(super) generation: u32,
    pub(super) frame: Frame,
    /// Input read and not delivered yet: the start of a message, or messages left
    /// for the next turn. Freed when empty.
    pub(super) input: Vec<u8>,
    /// `input[..scanned]` holds no `\n` (line frames): a line that arrives a few
    /// bytes at a time is not searched again from its start.
    pub(super) scanned: usize,
    /// Whole messages may wait in `input`: the last delivery stopped before its
    /// end (the turn's quota, back-pressure, a streamed reply).
    pub(super) pending: bool,
    /// Output the kernel has not taken.
    pub(super) out: Output,
    /// What this connection's output counts in the server's total (see `Totals`).
    pub(super) charged: usize,
    pub(super) ending: Ending,
    pub(super) fin_sent: bool,
    /// The peer sent end of file.
    pub(super) eof: bool,
    /// Output from others passed `Config::max_output`: closed at its next turn.
    pub(super) overflowed: bool,
    /// A `recv` or `send` failed: the connection is gone, closed after this turn.
    pub(super) reset: bool,
    /// A `recv` failed for want of kernel memory: try it again next turn.
    pub(super) retry_read: bool,
    /// The protocol streams a reply ([`Context::wait_drained`](super::Context::wait_drained)):
    /// no input is delivered until it is done, and `drained` is called when the
    /// output falls to the low-water mark.
    pub(super) streaming: bool,
    /// Each kind of timer's deadline (see [`Timer`]).
    pub(super) deadlines: [Deadline; KINDS],
    /// The loop's turn in which this connection was last served.
    pub(super) served_in: u64,
    /// What the connection is watched for now.
    pub(super) interest: Interest,
    pub(super) stage: Stage,
    /// `None` for a connection the server accepted and did not pair.
    pub(super) link: Option<Box<Link>>,
    /// The protocol heard of the end of its input ([`Protocol::end_of_input`](super::Protocol::end_of_input)).
    pub(super) eof_told: bool,
}

impl Conn {
    pub(super) fn new(fd: OwnedFd, generation: u32) -> Conn {
        Conn {
            fd,
            generation,
            frame: Frame::Bytes,
            input: Vec::new(),
            scanned: 0,
            pending: false,
            out: Output::default(),
            charged: 0,
            ending: Ending::Open,
            fin_sent: false,
            eof: false,
            overflowed: false,
            reset: false,
            retry_read: false,
            streaming: false,
            deadlines: [Deadline::default(); KINDS],
            served_in: 0,
            interest: Interest::READ,
            stage: Stage::Open,
            link: None,
            eof_told: false,
        }
    }

    /// Bytes queued and not yet taken by the kernel.
    #[inline]
    pub(super) fn unsent(&self) -> usize {
        self.out.unsent()
    }

    /// Whether output from others may be queued: open, not closing, and not past
    /// `max_output` already (closed at its next turn).
    pub(super) fn takes_output(&self) -> bool {
        self.ending == Ending::Open && !self.overflowed
    }

    /// The connection paired with this one, if any.
    #[inline]
    pub(super) fn partner(&self) -> Option<ConnId> {
        self.link.as_ref().and_then(|l| l.partner)
    }

    /// Whether it was not read for its partner's output (see [`Link`]).
    #[inline]
    pub(super) fn waits_for_partner(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.waits_for_partner)
    }

    /// Its [`Link`], made if it has none yet.
    pub(super) fn link_mut(&mut self) -> &mut Link {
        self.link.get_or_insert_with(Box::default)
    }

    /// Timer `timer`'s deadline.
    pub(super) fn deadline(&mut self, timer: Timer) -> &mut Deadline {
        &mut self.deadlines[timer as usize]
    }

    /// How many bytes the next `read` may take: at most [`READ_MAX`], and no more
    /// than the frame may hold unread (`max_line` for bytes and lines; for an exact
    /// frame its length, or `max_line` if that is more, so small messages that
    /// follow it come in the same read).
    pub(super) fn read_room(&self, max_line: usize) -> usize {
        let bound = match self.frame {
            Frame::Bytes | Frame::Line => max_line,
            Frame::Exact(n) => n.max(max_line),
        };
        bound.saturating_sub(self.input.len()).min(READ_MAX)
    }
}

/// The length of the next message at the start of `data` cut as `frame` says, or
/// `None` if `data` does not hold a whole one. `scanned` bytes at the start are
/// known to hold no `\n`; it is updated.
#[inline]
pub(super) fn next_message(
    data: &[u8],
    frame: Frame,
    max_line: usize,
    eof: bool,
    scanned: &mut usize,
) -> Option<usize> {
    match frame {
        Frame::Bytes => (!data.is_empty()).then_some(data.len()),
        Frame::Exact(n) => (data.len() >= n).then_some(n),
        Frame::Line => {
            let window = &data[..data.len().min(max_line)];
            let skip = (*scanned).min(window.len());
            if let Some(i) = find_newline(&window[skip..]) {
                *scanned = 0;
                Some(skip + i + 1)
            } else if data.len() >= max_line {
                *scanned = 0;
                Some(max_line) // a piece of a long line, as UNP's readline returns it
            } else if eof && !data.is_empty() {
                *scanned = 0;
                Some(data.len()) // the unterminated last line
            } else {
                *scanned = window.len();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(data: &[u8], max_line: usize, eof: bool) -> Option<usize> {
        next_message(data, Frame::Line, max_line, eof, &mut 0)
    }

    #[test]
    fn lines_stop_before_an_incomplete_line() {
        assert_eq!(line(b"a\nbb\nccc", 4095, false), Some(2));
        assert_eq!(line(b"ccc", 4095, false), None);
        assert_eq!(line(b"ccc", 4095, true), Some(3));
        assert_eq!(line(b"", 4095, true), None);
    }

    #[test]
    fn a_long_line_comes_in_pieces_of_max_line() {
        assert_eq!(line(&[b'x'; 4095], 4095, false), Some(4095));
        assert_eq!(line(&[b'x'; 4094], 4095, false), None);
        assert_eq!(line(b"abcdefghij\n", 4, false), Some(4));
        assert_eq!(line(b"ab\ncdefghij\n", 4, false), Some(3));
    }

    #[test]
    fn a_slow_line_is_not_searched_again() {
        let mut scanned = 0;
        assert_eq!(
            next_message(b"abc", Frame::Line, 4095, false, &mut scanned),
            None
        );
        assert_eq!(scanned, 3);
        // Were the first three bytes searched again, this '\n' at 1 would be found.
        let lied = next_message(b"a\ncde\n", Frame::Line, 4095, false, &mut scanned);
        assert_eq!(lied, Some(6));
        assert_eq!(scanned, 0);
    }

    #[test]
    fn bytes_and_exact_frames() {
        let mut s = 0;
        assert_eq!(
            next_message(b"xyz", Frame::Bytes, 2, false, &mut s),
            Some(3)
        );
        assert_eq!(next_message(b"", Frame::Bytes, 2, true, &mut s), None);
        assert_eq!(
            next_message(b"hello", Frame::Exact(5), 2, false, &mut s),
            Some(5)
        );
        assert_eq!(
            next_message(b"hell", Frame::Exact(5), 2, true, &mut s),
            None
        );
        assert_eq!(
            next_message(b"", Frame::Exact(0), 2, false, &mut s),
            Some(0)
        );
    }
}
