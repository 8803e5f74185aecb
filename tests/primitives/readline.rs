//! Integration tests of `LineReader` and `readn`: scripted readers (random chunking
//! with injected EINTR/EAGAIN), real nonblocking sockets, and real EINTR from signals.

use crate::common;

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::signals::{install_handler, signal_thread, total};
use common::Watchdog;
use nix::sys::signal::Signal;
use proptest::prelude::*;
use unp_select::readline::{LineReader, DEFAULT_MAX_LINE};
use unp_select::readn::{readn, PartialRead};

// ---------------------------------------------------------------------------------
// Helpers

#[derive(Clone, Copy, Debug)]
enum Ev {
    /// Hand out at most this many bytes.
    Chunk(usize),
    /// Fail with EINTR.
    Intr,
    /// Fail with EAGAIN.
    Block,
}

/// A reader that follows a script of events, cycling through it, until its data is
/// exhausted; then it returns 0 (end of file) forever.
struct Script {
    data: Vec<u8>,
    pos: usize,
    events: Vec<Ev>,
    next: usize,
    reads: usize,
}

impl Script {
    fn new(data: &[u8], events: &[Ev]) -> Script {
        let mut events = events.to_vec();
        events.push(Ev::Chunk(1)); // guarantees progress
        Script {
            data: data.to_vec(),
            pos: 0,
            events,
            next: 0,
            reads: 0,
        }
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.pos == self.data.len() {
            return Ok(0);
        }
        let ev = self.events[self.next % self.events.len()];
        self.next += 1;
        match ev {
            Ev::Intr => Err(io::Error::from_raw_os_error(libc::EINTR)),
            Ev::Block => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
            Ev::Chunk(n) => {
                let n = n.min(buf.len()).min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
    }
}

/// Reads every piece with `readline`, calling again on WouldBlock, and checks the
/// invariants after each call. Returns the pieces.
fn read_all_lines(r: &mut LineReader<Script>, input: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut returned = 0;
    let mut line = Vec::new();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 1_000_000, "readline makes no progress");
        match r.readline(&mut line) {
            Ok(0) => {
                assert!(line.is_empty());
                assert!(r.buffered().is_empty());
                break;
            }
            Ok(n) => {
                assert_eq!(n, line.len());
                returned += n;
                pieces.push(std::mem::take(&mut line));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
                assert!(line.is_empty(), "nothing is appended on WouldBlock");
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
        // Nothing lost, nothing invented: what the reader handed out is exactly what
        // was returned plus what is buffered.
        let delivered = r.get_ref().pos;
        assert_eq!(returned + r.buffered().len(), delivered);
        assert_eq!(r.buffered(), &input[returned..delivered]);
    }
    pieces
}

fn check_pieces(pieces: &[Vec<u8>], input: &[u8], max: usize) {
    assert_eq!(pieces.concat(), input);
    for (i, p) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        assert!(!p.is_empty());
        assert!(p.len() <= max, "piece longer than max_line");
        // A '\n' can only be the last byte of a piece.
        assert!(!p[..p.len() - 1].contains(&b'\n'));
        assert!(
            p.ends_with(b"\n") || p.len() == max || last,
            "piece {i} of {} bytes neither ends a line, nor is max_line, nor is the tail",
            p.len()
        );
    }
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(b'\n'),
        2 => Just(b'\r'),
        2 => Just(0u8),
        8 => any::<u8>(),
    ]
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        prop_oneof![
            6 => (1usize..40).prop_map(Ev::Chunk),
            2 => Just(Ev::Chunk(1)),
            1 => Just(Ev::Intr),
            1 => Just(Ev::Block),
        ],
        1..30,
    )
}

// ---------------------------------------------------------------------------------
// Property tests

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Default max_line (no piece splitting for these sizes): the pieces are the lines.
    #[test]
    fn lines_come_back_exactly(
        input in prop::collection::vec(byte(), 0..800),
        evs in events(),
        cap in 0usize..48,
    ) {
        let mut r = LineReader::with_capacity(cap, Script::new(&input, &evs));
        let pieces = read_all_lines(&mut r, &input);
        check_pieces(&pieces, &input, DEFAULT_MAX_LINE);
        // With a large max_line, every piece but the last is a whole line.
        for p in &pieces[..pieces.len().saturating_sub(1)] {
            prop_assert!(p.ends_with(b"\n"));
        }
        // Growth doubles, so at most twice the input (the longest line) is needed.
        prop_assert!(r.capacity() <= cap.max(1).max(2 * input.len()));
    }

    /// Small max_line values: long lines come back in max_line pieces; memory bounded.
    #[test]
    fn small_max_line_splits_without_loss(
        input in prop::collection::vec(byte(), 0..800),
        evs in events(),
        cap in 0usize..48,
        max in 1usize..20,
    ) {
        let mut r = LineReader::with_capacity(cap, Script::new(&input, &evs));
        r.set_max_line(max).unwrap();
        let pieces = read_all_lines(&mut r, &input);
        check_pieces(&pieces, &input, max);
        prop_assert!(r.capacity() <= cap.max(1).max(max));
        // The pieces are exactly the lines of the input cut into max-sized parts.
        let mut expected = Vec::new();
        for l in input.split_inclusive(|&b| b == b'\n') {
            expected.extend(l.chunks(max).map(<[u8]>::to_vec));
        }
        prop_assert_eq!(pieces, expected);
    }

    /// readline, Read::read and BufRead::fill_buf/consume mixed at random on one
    /// reader return the input exactly, in order.
    #[test]
    fn read_and_readline_mix(
        input in prop::collection::vec(byte(), 0..600),
        evs in events(),
        cap in 0usize..32,
        mut ops in prop::collection::vec((0u8..3, 0usize..40), 1..50),
    ) {
        ops.push((0, 0)); // a readline in every round guarantees progress
        let mut r = LineReader::with_capacity(cap, Script::new(&input, &evs));
        r.set_max_line(25).unwrap();
        let mut out = Vec::new();
        let mut line = Vec::new();
        let mut calls = 0;
        'outer: loop {
            for &(op, size) in &ops {
                calls += 1;
                prop_assert!(calls < 1_000_000);
                let res = match op {
                    0 => r.readline(&mut line).inspect(|_| {
                        out.append(&mut line);
                    }),
                    1 => {
                        let mut b = vec![0u8; size];
                        r.read(&mut b).inspect(|&n| {
                            out.extend_from_slice(&b[..n]);
                        })
                    }
                    _ => match r.fill_buf() {
                        Ok(avail) => {
                            let n = avail.len().min(size);
                            let eof = avail.is_empty();
                            out.extend_from_slice(&avail[..n]);
                            r.consume(n);
                            Ok(if eof { 0 } else { usize::MAX })
                        }
                        Err(e) => Err(e),
                    },
                };
                match res {
                    Ok(0) if op != 1 || size > 0 => break 'outer,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("unexpected error {e:?}"),
                }
                prop_assert_eq!(&out[..], &input[..out.len()]);
            }
        }
        prop_assert_eq!(out, input);
    }
}

// ---------------------------------------------------------------------------------
// Example-based tests of LineReader

fn collect(r: &mut LineReader<impl Read>) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut line = Vec::new();
    while r.readline(&mut line).unwrap() != 0 {
        v.push(std::mem::take(&mut line));
    }
    v
}

#[test]
fn crlf_and_nul_bytes_are_kept() {
    let input = b"a\r\n\0\0\n\r\r\n\0tail\0";
    let mut r = LineReader::with_capacity(3, &input[..]);
    let pieces = collect(&mut r);
    assert_eq!(
        pieces,
        [&b"a\r\n"[..], b"\0\0\n", b"\r\r\n", b"\0tail\0"].map(<[u8]>::to_vec)
    );
}

#[test]
fn line_longer_than_limit_comes_in_pieces() {
    let mut input = vec![b'x'; 25];
    input.extend_from_slice(b"\nshort\n");
    let mut r = LineReader::with_capacity(4, &input[..]);
    r.set_max_line(10).unwrap();
    let pieces = collect(&mut r);
    let lens: Vec<usize> = pieces.iter().map(Vec::len).collect();
    assert_eq!(lens, [10, 10, 6, 6]);
    assert_eq!(pieces[2], b"xxxxx\n");
    assert_eq!(pieces[3], b"short\n");
    assert!(r.capacity() <= 10);
}

#[test]
fn line_of_exactly_max_line_bytes() {
    // "abc\n" with max_line 4 is whole; with max_line 3, "abc" then "\n".
    let mut r = LineReader::new(&b"abc\n"[..]);
    r.set_max_line(4).unwrap();
    assert_eq!(collect(&mut r), [b"abc\n".to_vec()]);
    let mut r = LineReader::new(&b"abc\n"[..]);
    r.set_max_line(3).unwrap();
    assert_eq!(collect(&mut r), [b"abc".to_vec(), b"\n".to_vec()]);
}

#[test]
fn set_max_line_zero_is_invalid_input() {
    let mut r = LineReader::new(io::empty());
    let e = r.set_max_line(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(r.max_line(), DEFAULT_MAX_LINE);
}

#[test]
fn buffered_after_partial_read() {
    let mut r = LineReader::new(Script::new(b"ab\ncd", &[Ev::Chunk(100)]));
    let mut line = Vec::new();
    assert_eq!(r.readline(&mut line).unwrap(), 3);
    assert_eq!(line, b"ab\n");
    assert_eq!(r.buffered(), b"cd");
    assert!(!r.has_line());
    assert_eq!(r.get_ref().reads, 1);
}

#[test]
fn has_line_means_no_syscall() {
    let mut r = LineReader::new(Script::new(b"a\nb\nc", &[Ev::Chunk(100)]));
    let mut line = Vec::new();
    r.readline(&mut line).unwrap();
    assert!(r.has_line());
    let reads = r.get_ref().reads;
    line.clear();
    r.readline(&mut line).unwrap();
    assert_eq!(line, b"b\n");
    assert_eq!(r.get_ref().reads, reads, "a buffered line needs no read");
    assert!(!r.has_line());
}

#[test]
fn bufread_read_line_is_reachable_by_method_syntax() {
    // `readline` is LineReader's own method, so `read_line` resolves to BufRead's.
    let mut r = LineReader::new(&b"caf\xc3\xa9\nnext\n"[..]);
    let mut s = String::new();
    assert_eq!(r.read_line(&mut s).unwrap(), 6);
    assert_eq!(s, "caf\u{e9}\n");
    assert_eq!(r.buffered(), b"next\n");
}

#[test]
fn bufread_methods_ignore_max_line() {
    let input = b"0123456789\nab\n0123456789\n0123456789\n";
    let mut r = LineReader::with_capacity(4, &input[..]);
    r.set_max_line(3).unwrap();
    // fill_buf makes one read of at most the capacity, and does not grow the buffer.
    assert_eq!(r.fill_buf().unwrap(), b"0123");
    let mut v = Vec::new();
    assert_eq!(r.read_until(b'\n', &mut v).unwrap(), 11);
    assert_eq!(v, b"0123456789\n");
    let mut s = String::new();
    assert_eq!(r.read_line(&mut s).unwrap(), 3);
    assert_eq!(s, "ab\n");
    let rest: Vec<String> = r.by_ref().lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, ["0123456789", "0123456789"]);
    assert_eq!(r.capacity(), 4);
    // readline applies the bound on the same reader.
    let mut r = LineReader::with_capacity(4, &input[..]);
    r.set_max_line(3).unwrap();
    let mut line = Vec::new();
    assert_eq!(r.readline(&mut line).unwrap(), 3);
    assert_eq!(line, b"012");
}

#[test]
fn bufread_methods_hand_a_partial_line_to_the_caller_on_would_block() {
    let script = [Ev::Chunk(2), Ev::Block, Ev::Chunk(100)];
    // read_until: the bytes taken before WouldBlock are in the caller's Vec.
    let mut r = LineReader::new(Script::new(b"hello\n", &script));
    let mut v = Vec::new();
    let e = r.read_until(b'\n', &mut v).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(v, b"he");
    assert!(r.buffered().is_empty());
    r.read_until(b'\n', &mut v).unwrap();
    assert_eq!(v, b"hello\n");
    // read_line: kept in the String when valid UTF-8.
    let mut r = LineReader::new(Script::new(b"hello\n", &script));
    let mut s = String::new();
    assert_eq!(
        r.read_line(&mut s).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!((s.as_str(), r.buffered()), ("he", &b""[..]));
    // ... and dropped when not (a UTF-8 sequence cut by the WouldBlock).
    let mut r = LineReader::new(Script::new(b"\xc3\xa9\n", &[Ev::Chunk(1), Ev::Block]));
    let mut s = String::new();
    assert_eq!(
        r.read_line(&mut s).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!((s.as_str(), r.buffered()), ("", &b""[..]));
}

#[test]
fn would_block_keeps_partial_line() {
    let script = [
        Ev::Chunk(2),
        Ev::Block,
        Ev::Chunk(3),
        Ev::Block,
        Ev::Chunk(100),
    ];
    let mut r = LineReader::new(Script::new(b"hello\nworld\n", &script));
    let mut line = Vec::new();
    let e = r.readline(&mut line).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(r.buffered(), b"he");
    assert!(line.is_empty());
    let e = r.readline(&mut line).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(r.buffered(), b"hello");
    assert!(line.is_empty());
    assert_eq!(r.readline(&mut line).unwrap(), 6);
    assert_eq!(line, b"hello\n");
    assert_eq!(r.buffered(), b"world\n");
}

#[test]
fn eintr_is_retried() {
    let script = [Ev::Intr, Ev::Intr, Ev::Chunk(2), Ev::Intr, Ev::Chunk(10)];
    let mut r = LineReader::new(Script::new(b"abc\n", &script));
    let mut line = Vec::new();
    assert_eq!(r.readline(&mut line).unwrap(), 4);
    assert_eq!(line, b"abc\n");
    assert_eq!(r.get_ref().reads, 5);
}

#[test]
fn other_errors_keep_buffered_bytes() {
    struct ResetAfter(Option<&'static [u8]>);
    impl Read for ResetAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.take() {
                Some(d) => {
                    buf[..d.len()].copy_from_slice(d);
                    Ok(d.len())
                }
                None => Err(io::Error::from_raw_os_error(libc::ECONNRESET)),
            }
        }
    }
    let mut r = LineReader::new(ResetAfter(Some(b"partial")));
    let mut line = Vec::new();
    let e = r.readline(&mut line).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
    assert_eq!(r.buffered(), b"partial");
    assert!(line.is_empty());
    let (_, rest) = r.into_parts();
    assert_eq!(rest, b"partial");
}

#[test]
fn eof_with_unterminated_tail_then_zero() {
    let mut r = LineReader::new(&b"one\ntwo"[..]);
    let mut line = Vec::new();
    assert_eq!(r.readline(&mut line).unwrap(), 4);
    line.clear();
    assert_eq!(r.readline(&mut line).unwrap(), 3);
    assert_eq!(line, b"two");
    line.clear();
    assert_eq!(r.readline(&mut line).unwrap(), 0);
    assert_eq!(r.readline(&mut line).unwrap(), 0);
    assert!(line.is_empty());
}

#[test]
fn readline_appends_without_clearing() {
    let mut r = LineReader::new(&b"b\n"[..]);
    let mut line = b"a".to_vec();
    assert_eq!(r.readline(&mut line).unwrap(), 2);
    assert_eq!(line, b"ab\n");
}

#[test]
fn bufread_and_read_see_the_same_buffer() {
    let mut r = LineReader::with_capacity(64, &b"first\nsecond\nthird\n"[..]);
    let mut line = Vec::new();
    r.readline(&mut line).unwrap();
    let shown = r.buffered().to_vec();
    assert_eq!(r.fill_buf().unwrap(), shown.as_slice());
    assert_eq!(r.buffered(), b"second\nthird\n");
    r.consume(3);
    let mut b = [0u8; 4];
    r.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ond\n");
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    assert_eq!(s, "third\n");
    assert_eq!(r.read(&mut b).unwrap(), 0);
}

#[test]
fn readn_over_line_reader_uses_buffered_bytes() {
    // A header line, then a counted body: the body starts in the line buffer.
    let mut r = LineReader::new(Script::new(
        b"LEN 5\nhelloNEXT\n",
        &[Ev::Chunk(8), Ev::Chunk(100)],
    ));
    let mut line = Vec::new();
    r.readline(&mut line).unwrap();
    assert_eq!(line, b"LEN 5\n");
    let mut body = [0u8; 5];
    assert_eq!(readn(&mut r, &mut body).unwrap(), 5);
    assert_eq!(&body, b"hello");
    line.clear();
    r.readline(&mut line).unwrap();
    assert_eq!(line, b"NEXT\n");
}

// ---------------------------------------------------------------------------------
// Real sockets

#[test]
fn nonblocking_unix_socket_partial_line() {
    let _w = Watchdog::new(
        "nonblocking_unix_socket_partial_line",
        Duration::from_secs(10),
    );
    let (mut writer, reader) = UnixStream::pair().unwrap();
    reader.set_nonblocking(true).unwrap();
    let mut r = LineReader::new(reader);
    let mut line = Vec::new();

    // Nothing sent yet: EAGAIN, nothing buffered.
    let e = r.readline(&mut line).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
    assert!(r.buffered().is_empty());

    writer.write_all(b"hel").unwrap();
    let e = r.readline(&mut line).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(r.buffered(), b"hel");
    assert!(line.is_empty());

    writer.write_all(b"lo\nwor").unwrap();
    assert_eq!(r.readline(&mut line).unwrap(), 6);
    assert_eq!(line, b"hello\n");
    assert_eq!(r.buffered(), b"wor");

    // Peer closes: the tail comes back, then 0.
    drop(writer);
    line.clear();
    assert_eq!(r.readline(&mut line).unwrap(), 3);
    assert_eq!(line, b"wor");
    line.clear();
    assert_eq!(r.readline(&mut line).unwrap(), 0);
}

/// Calls `readline` until it returns something other than WouldBlock, for at most
/// 5 s (loopback TCP delivers quickly but not synchronously).
fn readline_when_ready(r: &mut LineReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match r.readline(line) {
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            res => return res,
        }
    }
}

#[test]
fn nonblocking_tcp_partial_line() {
    let _w = Watchdog::new("nonblocking_tcp_partial_line", Duration::from_secs(10));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let mut r = LineReader::new(server);
    let mut line = Vec::new();

    client.write_all(b"hel").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.buffered() != b"hel" {
        assert!(Instant::now() < deadline, "\"hel\" never arrived");
        let e = r.readline(&mut line).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        thread::sleep(Duration::from_millis(1));
    }
    assert!(line.is_empty());

    client.write_all(b"lo\nwor").unwrap();
    assert_eq!(readline_when_ready(&mut r, &mut line).unwrap(), 6);
    assert_eq!(line, b"hello\n");
    assert_eq!(r.buffered(), b"wor");

    client.shutdown(Shutdown::Write).unwrap();
    line.clear();
    assert_eq!(readline_when_ready(&mut r, &mut line).unwrap(), 3);
    assert_eq!(line, b"wor");
    line.clear();
    assert_eq!(readline_when_ready(&mut r, &mut line).unwrap(), 0);
}

#[test]
fn per_connection_buffers_do_not_mix() {
    // UNP's static buffer would hand client A's second line to client B.
    let (mut wa, ra) = UnixStream::pair().unwrap();
    let (mut wb, rb) = UnixStream::pair().unwrap();
    ra.set_nonblocking(true).unwrap();
    rb.set_nonblocking(true).unwrap();
    wa.write_all(b"a1\na2\n").unwrap();
    wb.write_all(b"b1\n").unwrap();
    let mut a = LineReader::new(ra);
    let mut b = LineReader::new(rb);
    let mut line = Vec::new();
    a.readline(&mut line).unwrap();
    assert_eq!(line, b"a1\n");
    line.clear();
    b.readline(&mut line).unwrap();
    assert_eq!(line, b"b1\n");
    line.clear();
    assert_eq!(
        b.readline(&mut line).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    a.readline(&mut line).unwrap();
    assert_eq!(line, b"a2\n");
}

// ---------------------------------------------------------------------------------
// Real EINTR: a signal without SA_RESTART interrupts a blocked read(2).

/// Passes reads through, counting the EINTR errors seen.
struct CountEintr<R> {
    inner: R,
    eintr: Arc<AtomicUsize>,
}

impl<R: Read> Read for CountEintr<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let res = self.inner.read(buf);
        if let Err(e) = &res {
            if e.kind() == ErrorKind::Interrupted {
                self.eintr.fetch_add(1, Ordering::SeqCst);
            }
        }
        res
    }
}

/// Signals `handle`'s thread until `eintr` counts 2 interrupted reads (or fails after
/// 5 s).
fn interrupt_until<T>(handle: &thread::JoinHandle<T>, eintr: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while eintr.load(Ordering::SeqCst) < 2 {
        assert!(!handle.is_finished(), "the reader returned early");
        assert!(Instant::now() < deadline, "no EINTR observed");
        // SIGUSR1 has a harmless handler installed.
        let rc = signal_thread(handle, Signal::SIGUSR1);
        assert_eq!(rc, 0);
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn readline_retries_real_eintr() {
    let _w = Watchdog::new("readline_retries_real_eintr", Duration::from_secs(10));
    install_handler();
    let (mut writer, reader) = UnixStream::pair().unwrap();
    let eintr = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&eintr);
    let handle = thread::spawn(move || {
        let mut r = LineReader::new(CountEintr {
            inner: reader,
            eintr: counter,
        });
        let mut line = Vec::new();
        r.readline(&mut line).map(|_| line)
    });
    writer.write_all(b"hel").unwrap();
    interrupt_until(&handle, &eintr);
    writer.write_all(b"lo\n").unwrap();
    let line = handle.join().unwrap().unwrap();
    assert_eq!(line, b"hello\n");
    assert!(total() >= 2);
}

#[test]
fn readn_retries_real_eintr() {
    let _w = Watchdog::new("readn_retries_real_eintr", Duration::from_secs(10));
    install_handler();
    let (mut writer, reader) = UnixStream::pair().unwrap();
    let eintr = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&eintr);
    let handle = thread::spawn(move || {
        let mut r = CountEintr {
            inner: reader,
            eintr: counter,
        };
        let mut buf = [0u8; 5];
        readn(&mut r, &mut buf).map(|n| (n, buf))
    });
    writer.write_all(b"he").unwrap();
    interrupt_until(&handle, &eintr);
    writer.write_all(b"llo").unwrap();
    let (n, buf) = handle.join().unwrap().unwrap();
    assert_eq!((n, &buf), (5, b"hello"));
}

// ---------------------------------------------------------------------------------
// readn

#[test]
fn readn_fills_from_a_trickling_socket() {
    let _w = Watchdog::new(
        "readn_fills_from_a_trickling_socket",
        Duration::from_secs(10),
    );
    let (mut writer, mut reader) = UnixStream::pair().unwrap();
    let t = thread::spawn(move || {
        for piece in [&b"ab"[..], b"c", b"defg", b"hij"] {
            writer.write_all(piece).unwrap();
            thread::sleep(Duration::from_millis(5));
        }
    });
    let mut buf = [0u8; 8];
    assert_eq!(readn(&mut reader, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"abcdefgh");
    t.join().unwrap();
    // The writer is gone: short count at EOF, then 0.
    let mut buf = [0u8; 8];
    assert_eq!(readn(&mut reader, &mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"ij");
    assert_eq!(readn(&mut reader, &mut buf).unwrap(), 0);
}

#[test]
fn readn_zero_length_is_invalid_input() {
    let (_w, mut reader) = UnixStream::pair().unwrap();
    reader.set_nonblocking(true).unwrap();
    let e = readn(&mut reader, &mut []).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn readn_would_block_reports_partial_count() {
    let (mut writer, mut reader) = UnixStream::pair().unwrap();
    reader.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 6];

    // Nothing available: the plain EAGAIN.
    let e = readn(&mut reader, &mut buf).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
    assert!(PartialRead::of(&e).is_none());

    // Part available: WouldBlock carrying the count; the bytes are in buf.
    writer.write_all(b"abcd").unwrap();
    let e = readn(&mut reader, &mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    let p = PartialRead::of(&e).unwrap();
    assert_eq!(p.count(), 4);
    assert_eq!(&buf[..4], b"abcd");
    assert_eq!(p.error().raw_os_error(), Some(libc::EAGAIN));

    // The rest, then EOF.
    writer.write_all(b"ef").unwrap();
    drop(writer);
    assert_eq!(readn(&mut reader, &mut buf[4..]).unwrap(), 2);
    assert_eq!(&buf, b"abcdef");
    assert_eq!(readn(&mut reader, &mut buf).unwrap(), 0);
}

#[test]
fn readn_scripted_eintr_and_chunks() {
    let script = [Ev::Intr, Ev::Chunk(1), Ev::Intr, Ev::Intr, Ev::Chunk(3)];
    let mut r = Script::new(b"0123456789", &script);
    let mut buf = [0u8; 9];
    assert_eq!(readn(&mut r, &mut buf).unwrap(), 9);
    assert_eq!(&buf, b"012345678");
}

#[test]
fn line_reader_exposes_the_inner_descriptor() {
    use std::os::fd::{AsFd, AsRawFd};
    use unp_select::poll::{poll, PollFd, PollFlags};

    let (mut peer, sock) = UnixStream::pair().unwrap();
    let raw = sock.as_raw_fd();

    // Borrowing the stream: AsFd through the `&UnixStream` it wraps.
    {
        let by_ref = LineReader::new(&sock);
        assert_eq!(by_ref.as_fd().as_raw_fd(), raw);
    }

    // Owning it: AsFd and AsRawFd give the stream's descriptor, usable with poll.
    let mut reader = LineReader::new(sock);
    assert_eq!(reader.as_fd().as_raw_fd(), raw);
    assert_eq!(reader.as_raw_fd(), raw);
    peer.write_all(b"hi\n").unwrap();
    let mut fds = [PollFd::from_fd(&reader, PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(fds[0].revents().contains(PollFlags::POLLIN));
    let mut line = Vec::new();
    assert_eq!(reader.readline(&mut line).unwrap(), 3);
    assert_eq!(line, b"hi\n");

    // A TCP stream too, and the borrow writes through to the peer.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let client_raw = client.as_raw_fd();
    let tcp_reader = LineReader::new(client);
    assert_eq!(tcp_reader.as_raw_fd(), client_raw);
    unp_select::writen::writen(&tcp_reader, b"ok").unwrap();
    let mut got = [0u8; 2];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ok");
}
