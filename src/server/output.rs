//! One connection's unsent output: a queue of chunks, copied or shared, sent in one
//! `send` (or one `sendmsg` of several buffers) per turn, whatever it is made of.
//!
//! Small writes are copied into the owned tail and coalesce; a large buffer that
//! several connections send (a broadcast, a cache item) is queued as a reference to
//! one shared copy ([`Arc<[u8]>`](Arc)), so a slow receiver holds references, not
//! copies. Every byte counts against the connection's limits alike.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

/// Shared data shorter than this is copied instead: a reference (an `Arc` and its
/// place in the queue) costs about as much as the bytes.
pub(super) const SHARE_MIN: usize = 64;

/// Owned chunks start with this much room, so a run of small writes allocates once.
const OWNED_MIN: usize = 1024;

enum Chunk {
    /// Bytes copied in; `buf[start..]` is unsent. The tail takes later small writes.
    Owned { buf: Vec<u8>, start: usize },
    /// A reference to shared bytes; `buf[start..]` is unsent.
    Shared { buf: Arc<[u8]>, start: usize },
}

impl Chunk {
    fn unsent(&self) -> &[u8] {
        match self {
            Chunk::Owned { buf, start } => &buf[*start..],
            Chunk::Shared { buf, start } => &buf[*start..],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Owned { start, .. } | Chunk::Shared { start, .. } => *start += n,
        }
    }
}

/// A connection's output queue, and where each message in it ends.
#[derive(Default)]
pub(super) struct Output {
    chunks: VecDeque<Chunk>,
    /// Bytes ever queued and ever sent: message ends are positions on this count;
    /// their difference is what the kernel has not taken yet.
    queued: u64,
    sent: u64,
    /// Where the queued messages end, as positions of `queued`.
    ends: VecDeque<u64>,
}

impl Output {
    /// Bytes queued and not yet taken by the kernel.
    #[inline]
    pub(super) fn unsent(&self) -> usize {
        (self.queued - self.sent) as usize // at most what is held in memory
    }

    /// Appends a copy of `data`.
    pub(super) fn copy(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            Some(Chunk::Owned { buf, .. }) => buf.extend_from_slice(data),
            _ => {
                let mut buf = Vec::with_capacity(data.len().max(OWNED_MIN));
                buf.extend_from_slice(data);
                self.chunks.push_back(Chunk::Owned { buf, start: 0 });
            }
        }
        self.grow(data.len());
    }

    /// Appends `data` without copying it (a short one is copied: see [`SHARE_MIN`]).
    pub(super) fn share(&mut self, data: Arc<[u8]>) {
        if data.len() < SHARE_MIN {
            return self.copy(&data);
        }
        let len = data.len();
        self.chunks.push_back(Chunk::Shared {
            buf: data,
            start: 0,
        });
        self.grow(len);
    }

    fn grow(&mut self, n: usize) {
        self.queued += n as u64;
    }

    /// Marks the end of a message at what is queued now.
    #[inline]
    pub(super) fn end_message(&mut self) {
        self.ends.push_back(self.queued);
    }

    /// Bytes ever queued: the position after the last byte queued now.
    #[inline]
    pub(super) fn queued(&self) -> u64 {
        self.queued
    }

    /// Marks the end of a message at position `at` (see [`queued`](Self::queued)).
    #[inline]
    pub(super) fn end_at(&mut self, at: u64) {
        self.ends.push_back(at);
    }

    /// Sends what is queued with one system call: `send` for one buffer (as UNP's
    /// `writen` does), `sendmsg` for several. Returns the bytes the kernel took and
    /// the messages that completed.
    pub(super) fn send(&mut self, fd: BorrowedFd<'_>) -> io::Result<(usize, u64)> {
        let n = if self.chunks.len() == 1 {
            crate::sys::send_nosignal(fd.as_raw_fd(), self.chunks[0].unsent())?
        } else {
            let mut iov = [IoSlice::new(&[]); crate::sys::MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in iov.iter_mut().zip(&self.chunks) {
                *slot = IoSlice::new(chunk.unsent());
                count += 1;
            }
            crate::sys::send_vectored_nosignal(fd, &iov[..count])?
        };
        Ok((n, self.advance(n)))
    }

    /// The kernel took `n` bytes: drops what was sent, returns how many messages
    /// that completed. A connection with nothing unsent holds no buffer.
    fn advance(&mut self, mut n: usize) -> u64 {
        self.sent += n as u64;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let left = front.unsent().len();
            if n < left {
                front.advance(n);
                if let Chunk::Owned { buf, start } = front {
                    // Move the rest to the front, so the buffer does not only grow.
                    if *start >= buf.len() / 2 {
                        buf.drain(..*start);
                        *start = 0;
                    }
                }
                break;
            }
            n -= left;
            self.chunks.pop_front();
        }
        let mut done = 0;
        while self.ends.front().is_some_and(|&end| end <= self.sent) {
            self.ends.pop_front();
            done += 1;
        }
        if self.queued == self.sent {
            // Everything sent: free the queues.
            *self = Output {
                queued: self.queued,
                sent: self.sent,
                ..Output::default()
            };
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn copies_coalesce_and_shared_chunks_are_referenced() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut out = Output::default();
        out.copy(b"one\n");
        out.end_message();
        let big: Arc<[u8]> = vec![b'x'; 100].into();
        out.share(Arc::clone(&big));
        out.end_message();
        out.copy(b"two\n");
        out.end_message();
        assert_eq!(Arc::strong_count(&big), 2, "referenced, not copied");
        assert_eq!((out.unsent(), out.chunks.len()), (108, 3));
        let (n, done) = out.send(a.as_fd()).unwrap();
        assert_eq!((n, done), (108, 3));
        assert_eq!(Arc::strong_count(&big), 1, "released once sent");
        let mut got = vec![0; 108];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got[..4], b"one\n");
        assert_eq!(&got[104..], b"two\n");
        assert_eq!(out.chunks.capacity(), 0, "no buffer held when all is sent");
    }

    #[test]
    fn partial_sends_count_whole_messages() {
        let mut out = Output::default();
        out.copy(b"one\n");
        out.end_message();
        out.copy(b"two\n");
        out.end_message();
        assert_eq!(out.advance(3), 0);
        assert_eq!(out.advance(2), 1);
        assert_eq!(out.chunks[0].unsent(), b"wo\n");
        assert_eq!(out.advance(3), 1);
        assert_eq!(out.unsent(), 0);
    }

    #[test]
    fn short_shared_data_is_copied() {
        let mut out = Output::default();
        out.copy(b"a");
        out.share(Arc::from(&b"short"[..]));
        assert_eq!(out.chunks.len(), 1);
        assert_eq!(out.chunks[0].unsent(), b"ashort");
    }

    #[test]
    fn a_full_socket_is_would_block_and_loses_nothing() {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut out = Output::default();
        let big: Arc<[u8]> = vec![7u8; 1 << 20].into();
        for _ in 0..8 {
            out.share(Arc::clone(&big));
            out.end_message();
        }
        let mut sent = 0;
        loop {
            match out.send(a.as_fd()) {
                Ok((n, _)) => sent += n,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    break;
                }
            }
        }
        assert_eq!(sent + out.unsent(), 8 << 20);
    }
}
