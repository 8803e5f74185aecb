//! A connection's echo buffer for the mio and tokio servers: what was read and not
//! yet echoed, searched for whole lines. It mirrors `EchoServer`'s per-client
//! buffer: allocated at the first read, `MAXLINE` bytes, echoes sent straight from
//! it, at most `MESSAGES_PER_TURN` lines per send.

use unp_select::echo::MAXLINE;
use unp_select::server::MESSAGES_PER_TURN;

/// The position of the first `\n` in `hay` (glibc's vectorised `memchr`, as the C
/// server uses).
pub fn find_newline(hay: &[u8]) -> Option<usize> {
    if hay.is_empty() {
        return None;
    }
    // SAFETY: the pointer and length describe `hay`, which outlives the call;
    // memchr only reads within them.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(b'\n'), hay.len()) };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}

#[derive(Default)]
pub struct EchoBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The first `scanned` bytes after the last echo `lines()` returned hold no
    /// `\n`: a line arriving in pieces is not searched again from its start.
    scanned: usize,
}

impl EchoBuf {
    pub fn new() -> EchoBuf {
        EchoBuf::default()
    }

    /// Room to read into (allocating the buffer at the first read, moving a
    /// partial line to the front); empty when the buffer is full.
    pub fn space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; MAXLINE];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        // `scanned` already counts from the end of the echo `lines()` returned,
        // which the caller consumes whole (in one or several calls) before asking
        // again.
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The length of this turn's echo (at most `MESSAGES_PER_TURN` whole lines, or a
    /// full buffer without a newline as one piece) and whether whole lines remain
    /// after it.
    pub fn lines(&mut self) -> (usize, bool) {
        let data = &self.buf[self.start..self.end];
        let mut end = 0;
        let mut skip = self.scanned.min(data.len());
        for _ in 0..MESSAGES_PER_TURN {
            match find_newline(&data[end + skip..]) {
                Some(i) => end += skip + i + 1,
                None => {
                    if end == 0 && data.len() == self.buf.len() {
                        return (data.len(), false);
                    }
                    self.scanned = data.len() - end;
                    return (end, false);
                }
            }
            skip = 0;
        }
        self.scanned = 0;
        (end, find_newline(&data[end..]).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(b: &mut EchoBuf, s: &[u8]) {
        b.space()[..s.len()].copy_from_slice(s);
        b.filled(s.len());
    }

    #[test]
    fn lines_quota_and_partial() {
        let mut b = EchoBuf::new();
        fill(&mut b, b"ab\ncd");
        assert_eq!(b.lines(), (3, false));
        b.consume(3);
        assert_eq!(b.lines(), (0, false));
        fill(&mut b, b"e\n");
        assert_eq!(b.data(), b"cde\n");
        assert_eq!(b.lines(), (4, false));
        b.consume(4);
        assert!(b.data().is_empty());
        let many = b"x\n".repeat(MESSAGES_PER_TURN + 1);
        fill(&mut b, &many);
        assert_eq!(b.lines(), (2 * MESSAGES_PER_TURN, true));
        b.consume(2 * MESSAGES_PER_TURN);
        assert_eq!(b.lines(), (2, false));
    }

    #[test]
    fn full_buffer_without_newline_is_one_piece() {
        let mut b = EchoBuf::new();
        let n = b.space().len();
        fill(&mut b, &vec![b'a'; n]);
        assert_eq!(b.lines(), (n, false));
    }
}
