//! The RESP load: `SET` and `GET` in RESP arrays, as `redis-benchmark` and
//! every Redis client send them, with the keys and values of the kv load
//! ([`crate::kv::client`]): request `seq` of connection `id` uses key
//! `key:%08x` of `(id * 7919 + seq) % keys`; `GET` expects the value the preload
//! stored, `SET` stores a new one and expects `+OK`.

use std::io::Write;

use crate::exchange::Dialect;
use crate::kv::client::{key, value_of, Data, Workload};

/// `SET key value` or `GET key`, one per request.
#[derive(Clone, Copy, Debug)]
pub struct Resp {
    pub workload: Workload,
    pub data: Data,
}

fn set(out: &mut Vec<u8>, k: u64, salt: u64, len: usize) {
    out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$12\r\n");
    key(out, k);
    let _ = write!(out, "\r\n${len}\r\n");
    value_of(out, k, salt, len);
    out.extend_from_slice(b"\r\n");
}

impl Dialect for Resp {
    fn request(&self, id: u32, seq: u64, out: &mut Vec<u8>, expect: &mut Vec<u8>) {
        let k = (u64::from(id) * 7919 + seq) % self.data.keys;
        let len = self.data.value;
        match self.workload {
            Workload::Get => {
                out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$12\r\n");
                key(out, k);
                out.extend_from_slice(b"\r\n");
                let _ = write!(expect, "${len}\r\n");
                value_of(expect, k, 0, len);
                expect.extend_from_slice(b"\r\n");
            }
            Workload::Set => {
                set(out, k, seq + 1, len);
                expect.extend_from_slice(b"+OK\r\n");
            }
        }
    }

    fn preload(&self, k: u64, out: &mut Vec<u8>, expect: &mut Vec<u8>) {
        set(out, k, 0, self.data.value);
        expect.extend_from_slice(b"+OK\r\n");
    }

    fn keys(&self) -> u64 {
        self.data.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_in_resp() {
        let mut out = Vec::new();
        set(&mut out, 0xab, 0, 3);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$12\r\nkey:000000ab\r\n$3\r\npqr\r\n"
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 7);
    }
}
