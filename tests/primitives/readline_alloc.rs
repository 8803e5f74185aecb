//! `LineReader::readline` allocates nothing per line in steady state when the caller
//! reuses its `Vec` (`clear` between lines). The binary's allocator counts the
//! allocations of the calling thread (`common::alloc`).

use crate::common;

use std::io::{Cursor, Write};
use std::os::unix::net::UnixStream;

use common::alloc::allocations_in;
use unp_select::LineReader;

fn lines(count: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..count {
        // Lines of 1 to 300 bytes, some with CR and NUL.
        let len = 1 + (i * 37) % 300;
        v.extend((0..len).map(|k| [b'a', b'\r', 0, b'z'][(i + k) % 4]));
        v.push(b'\n');
    }
    v
}

#[test]
fn counter_sees_allocations() {
    // The counter itself works: a fresh Vec with capacity allocates once.
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(100);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn readline_does_not_allocate_per_line_from_cursor() {
    let data = lines(5000);
    let mut r = LineReader::with_capacity(4096, Cursor::new(&data[..]));
    let mut line = Vec::new();
    // Warm-up: `line` grows to the longest line (300 bytes + '\n').
    for _ in 0..20 {
        line.clear();
        r.readline(&mut line).unwrap();
    }
    line.reserve(512);
    let mut count = 0;
    let mut bytes = 0;
    let n = allocations_in(|| loop {
        line.clear();
        let k = r.readline(&mut line).unwrap();
        if k == 0 {
            break;
        }
        count += 1;
        bytes += k;
    });
    assert_eq!(count, 5000 - 20);
    assert!(
        bytes > 500_000,
        "enough lines crossed buffer refills: {bytes}"
    );
    assert_eq!(n, 0, "readline allocated {n} times for {count} lines");
}

#[test]
fn readline_does_not_allocate_per_line_from_socket() {
    let data = lines(400);
    assert!(data.len() < 100_000, "fits the socket buffer");
    let (mut writer, reader) = UnixStream::pair().unwrap();
    reader.set_nonblocking(true).unwrap();
    writer.write_all(&data).unwrap();
    drop(writer);
    let mut r = LineReader::with_capacity(1024, reader);
    let mut line = Vec::with_capacity(512);
    // Warm-up: the line buffer is already large enough; one line settles the reader.
    r.readline(&mut line).unwrap();
    let mut count = 0;
    let n = allocations_in(|| loop {
        line.clear();
        match r.readline(&mut line) {
            Ok(0) => break,
            Ok(_) => count += 1,
            Err(e) => panic!("{e}"),
        }
    });
    assert_eq!(count, 399);
    assert_eq!(n, 0, "readline allocated {n} times for {count} lines");
}

#[test]
fn a_long_line_grows_the_buffer_once_then_never_again() {
    // 10 lines of 20 000 bytes with a 1 KiB starting buffer: the buffer grows
    // (doubling) during the first line only.
    let mut data = Vec::new();
    for _ in 0..10 {
        data.extend(std::iter::repeat_n(b'x', 20_000));
        data.push(b'\n');
    }
    let mut r = LineReader::with_capacity(1024, Cursor::new(&data[..]));
    let mut line = Vec::with_capacity(32_000);
    let first = allocations_in(|| {
        r.readline(&mut line).unwrap();
    });
    assert!(first >= 1, "the buffer had to grow");
    let rest = allocations_in(|| {
        for _ in 0..9 {
            line.clear();
            assert_eq!(r.readline(&mut line).unwrap(), 20_001);
        }
    });
    assert_eq!(rest, 0);
}

/// A reader allocates its buffer at the first read, so an idle connection (a server
/// holding many of them) costs no buffer memory.
#[test]
fn no_buffer_until_the_first_read() {
    let mut reader = None;
    let n = allocations_in(|| reader = Some(LineReader::with_capacity(4096, &b"a\n"[..])));
    assert_eq!(n, 0, "constructing a LineReader allocated");
    let mut reader = reader.unwrap();
    assert_eq!(reader.capacity(), 4096);
    let mut line = Vec::with_capacity(16);
    let n = allocations_in(|| {
        reader.readline(&mut line).unwrap();
    });
    assert_eq!(n, 1, "the first read allocates the buffer once");
    assert_eq!(line, b"a\n");
}
