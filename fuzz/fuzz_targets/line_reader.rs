//! `LineReader` under arbitrary chunking: the input reader hands over the data in
//! pieces of fuzzer-chosen sizes, interleaved with `EAGAIN` and `EINTR`. Whatever the
//! chunking, `readline` must return exactly the reference pieces (lines of at most
//! `max_line` bytes, longer lines in pieces of exactly `max_line`, the unterminated
//! tail last), lose and invent no byte, append nothing on `WouldBlock`, keep its
//! buffer within `max(capacity, max_line)`, and `has_line()` must mean "no read
//! needed". The same properties run as a proptest in `tests/server/reliability/line_reader_props.rs`.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use unp_select::readline::LineReader;

#[derive(Arbitrary, Debug)]
enum Step {
    Bytes(u8),
    WouldBlock,
    Interrupted,
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_line: u8,
    capacity: u8,
    steps: Vec<Step>,
    data: Vec<u8>,
}

struct Chunked<'a> {
    data: &'a [u8],
    steps: &'a [Step],
    next: usize,
    reads: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let step = self.steps.get(self.next % self.steps.len().max(1));
        self.next += 1;
        match step {
            Some(Step::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Some(Step::Interrupted) => Err(io::ErrorKind::Interrupted.into()),
            Some(Step::Bytes(n)) => Ok(self.give(usize::from(*n).max(1), buf)),
            None => Ok(self.give(usize::MAX, buf)),
        }
    }
}

impl Chunked<'_> {
    fn give(&mut self, n: usize, buf: &mut [u8]) -> usize {
        let n = n.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        n
    }
}

fn expected_pieces(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(max)];
        let n = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |i| i + 1);
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fuzz_target!(|input: Input| {
    // A cycle of steps that never hands over a byte would never finish.
    if !input.steps.is_empty() && !input.steps.iter().any(|s| matches!(s, Step::Bytes(_))) {
        return;
    }
    let max = usize::from(input.max_line).max(1);
    let cap = usize::from(input.capacity);
    let src = Chunked {
        data: &input.data,
        steps: &input.steps,
        next: 0,
        reads: 0,
    };
    let mut r = LineReader::with_capacity(cap, src);
    r.set_max_line(max).unwrap();
    let expected = expected_pieces(&input.data, max);
    let mut got = 0;
    let mut line = Vec::new();
    loop {
        let promised = r.has_line();
        let reads = r.get_ref().reads;
        line.clear();
        match r.readline(&mut line) {
            Ok(0) => break,
            Ok(n) => {
                assert_eq!(n, line.len());
                if promised {
                    assert_eq!(r.get_ref().reads, reads, "has_line() but read");
                }
                assert_eq!(Some(&line[..]), expected.get(got).copied(), "piece {got}");
                got += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => assert!(line.is_empty()),
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(r.buffered().len() <= cap.max(1).max(max));
    }
    assert_eq!(got, expected.len(), "pieces missing");
});
