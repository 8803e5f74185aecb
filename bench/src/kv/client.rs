//! The kv load: memcached text-protocol clients for [`crate::load::drive`], `depth`
//! requests in flight on each connection, every reply checked byte for byte.
//!
//! Keys are `key:%08x` over `keys` keys; request `seq` of connection `id` uses key
//! `(id * 7919 + seq) % keys`. `get` expects `VALUE key 0 LEN`, the value the
//! preload stored (`value_of(key, 0)`), `END`; `set` stores `value_of(key, seq + 1)`
//! and expects `STORED`.

use std::io::{self, Write};
use std::net::SocketAddr;

use crate::exchange::{self, Dialect, Exchange};

/// What the requests do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    Get,
    Set,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Get, Workload::Set];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Set => "set",
        }
    }

    pub fn from_name(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// The keys and values of a run.
#[derive(Clone, Copy, Debug)]
pub struct Data {
    pub keys: u64,
    pub value: usize,
}

pub fn key(out: &mut Vec<u8>, k: u64) {
    out.extend_from_slice(b"key:");
    for i in (0..8).rev() {
        out.push(b"0123456789abcdef"[((k >> (4 * i)) & 15) as usize]);
    }
}

/// The value of key `k` stored with `salt` (letters; the preload's salt is 0).
pub fn value_of(out: &mut Vec<u8>, k: u64, salt: u64, len: usize) {
    let s = k.wrapping_add(salt.wrapping_mul(7));
    out.extend((0..len as u64).map(|j| b'a' + (s.wrapping_add(j) % 26) as u8));
}

fn set_request(out: &mut Vec<u8>, k: u64, salt: u64, len: usize) {
    out.extend_from_slice(b"set ");
    key(out, k);
    let _ = write!(out, " 0 0 {len}\r\n");
    value_of(out, k, salt, len);
    out.extend_from_slice(b"\r\n");
}

const STORED: &[u8] = b"STORED\r\n";

/// memcached's text protocol: `get` or `set` of one key per request.
#[derive(Clone, Copy, Debug)]
pub struct Memcache {
    pub workload: Workload,
    pub data: Data,
}

impl Dialect for Memcache {
    fn request(&self, id: u32, seq: u64, out: &mut Vec<u8>, expect: &mut Vec<u8>) {
        let k = (u64::from(id) * 7919 + seq) % self.data.keys;
        let len = self.data.value;
        match self.workload {
            Workload::Get => {
                out.extend_from_slice(b"get ");
                key(out, k);
                out.extend_from_slice(b"\r\n");
                expect.extend_from_slice(b"VALUE ");
                key(expect, k);
                let _ = write!(expect, " 0 {len}\r\n");
                value_of(expect, k, 0, len);
                expect.extend_from_slice(b"\r\nEND\r\n");
            }
            Workload::Set => {
                set_request(out, k, seq + 1, len);
                expect.extend_from_slice(STORED);
            }
        }
    }

    fn preload(&self, k: u64, out: &mut Vec<u8>, expect: &mut Vec<u8>) {
        set_request(out, k, 0, self.data.value);
        expect.extend_from_slice(STORED);
    }

    fn keys(&self) -> u64 {
        self.data.keys
    }
}

/// One client connection.
pub type KvConn = Exchange<Memcache>;

/// Stores `value_of(k, 0)` under every key, each `STORED` checked.
pub fn preload(addr: SocketAddr, data: Data) -> io::Result<()> {
    let dialect = Memcache {
        workload: Workload::Set,
        data,
    };
    exchange::preload(addr, &dialect)
}

/// Opens `n` connections and runs one request on each (not timed). Returns them
/// nonblocking.
pub fn connect(
    addr: SocketAddr,
    n: usize,
    workload: Workload,
    data: Data,
    depth: usize,
) -> io::Result<Vec<KvConn>> {
    exchange::connect(addr, n, &Memcache { workload, data }, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies() {
        let mut out = Vec::new();
        set_request(&mut out, 0xab, 0, 5);
        assert_eq!(out, b"set key:000000ab 0 0 5\r\npqrst\r\n");
        let mut v = Vec::new();
        value_of(&mut v, 0xab, 1, 5);
        assert_ne!(v, b"pqrst");
    }
}
