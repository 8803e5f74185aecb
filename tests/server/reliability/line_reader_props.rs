//! `LineReader` under arbitrary chunking (proptest; the fuzz target in fuzz/ checks the
//! same properties with libFuzzer).

use proptest::prelude::*;
use std::io::{self, Read};
use unp_select::readline::LineReader;

/// What the reader sees on each `read` call.
#[derive(Clone, Debug)]
enum Step {
    /// Hand over at most this many bytes.
    Bytes(usize),
    /// Fail with `EAGAIN`, as a nonblocking socket with nothing to read.
    WouldBlock,
    /// Fail with `EINTR`.
    Interrupted,
}

struct Chunked {
    data: Vec<u8>,
    pos: usize,
    steps: Vec<Step>,
    next: usize,
    reads: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let step = if self.steps.is_empty() {
            Step::Bytes(usize::MAX)
        } else {
            self.steps[self.next % self.steps.len()].clone()
        };
        self.next += 1;
        match step {
            Step::WouldBlock => Err(io::ErrorKind::WouldBlock.into()),
            Step::Interrupted => Err(io::ErrorKind::Interrupted.into()),
            Step::Bytes(n) => {
                let n = n.max(1).min(buf.len()).min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
    }
}

/// The pieces `readline` must return: lines up to `max` bytes (newline
/// included), longer lines in pieces of exactly `max`, the tail last.
fn expected_pieces(data: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(max)];
        let n = match window.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => window.len(),
        };
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    out
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1usize..40).prop_map(Step::Bytes),
        1 => Just(Step::WouldBlock),
        1 => Just(Step::Interrupted),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    // Newline-heavy bytes so that lines of every length occur.
    proptest::collection::vec(
        prop_oneof![3 => Just(b'\n'), 1 => Just(0u8), 10 => any::<u8>()],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        super::pick(64, 512, 20_000)
    ))]

    #[test]
    fn line_reader_loses_nothing_under_any_chunking(
        data in data(),
        steps in proptest::collection::vec(step(), 0..12),
        max in 1usize..70,
        cap in 0usize..80,
    ) {
        // Runs beside the other scenarios (it counts no descriptors), but takes
        // the suite's lock per case: it pauses while a scenario runs alone.
        let all_would_block = !steps.is_empty()
            && steps.iter().all(|s| !matches!(s, Step::Bytes(_)));
        prop_assume!(!all_would_block);
        let src = Chunked { data: data.clone(), pos: 0, steps, next: 0, reads: 0 };
        let mut r = LineReader::with_capacity(cap, src);
        r.set_max_line(max).unwrap();
        let mut pieces = Vec::new();
        let mut line = Vec::new();
        let mut would_blocks = 0;
        loop {
            let had_line = r.has_line();
            let reads_before = r.get_ref().reads;
            line.clear();
            match r.readline(&mut line) {
                Ok(0) => break,
                Ok(n) => {
                    prop_assert_eq!(n, line.len());
                    prop_assert!(n <= max, "piece of {} > max_line {}", n, max);
                    if had_line {
                        prop_assert_eq!(
                            r.get_ref().reads, reads_before,
                            "has_line() promised a line without a read"
                        );
                    }
                    pieces.push(line.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    prop_assert!(line.is_empty(), "nothing appended on WouldBlock");
                    would_blocks += 1;
                    prop_assert!(would_blocks < 100_000);
                }
                Err(e) => return Err(TestCaseError::fail(format!("error {e}"))),
            }
            // Memory stays bounded by the larger of capacity and max_line.
            prop_assert!(r.buffered().len() <= cap.max(1).max(max));
        }
        prop_assert_eq!(pieces, expected_pieces(&data, max));
    }
}
