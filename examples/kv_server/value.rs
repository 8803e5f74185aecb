//! A stored value: its data and `"\r\n"`, as a `get` sends it, shared with the
//! replies that send it (no copy), so a change makes a new one.
//!
//! A value longer than [`PIECE`] is a chain of pieces of `PIECE` bytes, the last
//! shorter, as memcached chains its large items. One allocation per value would
//! ask the allocator for blocks of every size up to 1 MiB; glibc serves them from
//! its heap once its mmap threshold has risen (to the largest block freed), and
//! the hole a large value leaves, once small items have taken part of it, no
//! longer fits the next one: the heap grows while the store stays at its limit
//! (measured: resident memory up to 1.45 times the limit and the empty server's).
//! Pieces of one size fit each other's holes.

use std::sync::Arc;

use crate::store::allocated;

/// The size of a piece of a long value.
pub const PIECE: usize = 32 * 1024;

/// What an `Arc` allocates before its data: the two counters.
const ARC_COUNTERS: usize = 2 * std::mem::size_of::<usize>();

/// A value's bytes: its data and `"\r\n"`.
#[derive(Clone)]
pub enum Value {
    /// Up to [`PIECE`] bytes.
    One(Arc<[u8]>),
    /// More.
    Chain(Arc<Chain>),
}

/// The pieces of a long value: all of [`PIECE`] bytes but the last.
pub struct Chain {
    len: usize,
    pieces: Box<[Arc<[u8]>]>,
}

impl Value {
    /// A copy of `parts`, one after the other.
    pub fn from_parts(parts: &[&[u8]]) -> Value {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= PIECE {
            return Value::One(match parts {
                [one] => Arc::from(*one),
                _ => Arc::from(parts.concat()),
            });
        }
        let mut pieces = Vec::with_capacity(len.div_ceil(PIECE));
        let mut rest = parts.iter().copied();
        let mut at: &[u8] = &[];
        // A piece that straddles two parts is gathered here first.
        let mut gathered = Vec::new();
        let mut left = len;
        while left > 0 {
            let size = left.min(PIECE);
            left -= size;
            while at.is_empty() {
                at = rest.next().unwrap_or_default();
            }
            if at.len() >= size {
                pieces.push(Arc::from(&at[..size]));
                at = &at[size..];
                continue;
            }
            gathered.clear();
            while gathered.len() < size {
                while at.is_empty() {
                    at = rest.next().unwrap_or_default();
                }
                let take = at.len().min(size - gathered.len());
                gathered.extend_from_slice(&at[..take]);
                at = &at[take..];
            }
            pieces.push(Arc::from(&gathered[..]));
        }
        Value::Chain(Arc::new(Chain {
            len,
            pieces: pieces.into(),
        }))
    }

    /// Data and `"\r\n"`: bytes in all.
    pub fn len(&self) -> usize {
        match self {
            Value::One(bytes) => bytes.len(),
            Value::Chain(chain) => chain.len,
        }
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Arc<[u8]>] {
        match self {
            Value::One(bytes) => std::slice::from_ref(bytes),
            Value::Chain(chain) => &chain.pieces,
        }
    }

    /// The data without its `"\r\n"`, as parts one after the other.
    pub fn data_parts(&self) -> Vec<&[u8]> {
        let mut parts: Vec<&[u8]> = self.pieces().iter().map(|p| &p[..]).collect();
        let mut cut = 2;
        while cut > 0 {
            let Some(last) = parts.pop() else { break };
            if last.len() > cut {
                parts.push(&last[..last.len() - cut]);
                break;
            }
            cut -= last.len();
        }
        parts
    }

    /// The data without its `"\r\n"`, in one slice (copied if it is a chain).
    #[cfg(test)]
    pub fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Value::One(bytes) => std::borrow::Cow::Borrowed(&bytes[..bytes.len() - 2]),
            Value::Chain(_) => std::borrow::Cow::Owned(self.data_parts().concat()),
        }
    }
}

/// What the allocator hands out for a value of `len` bytes (data and `"\r\n"`):
/// its pieces, each an `Arc` (two counters, then the bytes), and for a chain the
/// chain and its list of pieces.
pub fn cost(len: usize) -> u64 {
    if len <= PIECE {
        return allocated(ARC_COUNTERS + len);
    }
    let (full, tail) = (len / PIECE, len % PIECE);
    let tail_cost = if tail > 0 {
        allocated(ARC_COUNTERS + tail)
    } else {
        0
    };
    let pieces = len.div_ceil(PIECE);
    full as u64 * allocated(ARC_COUNTERS + PIECE)
        + tail_cost
        + allocated(ARC_COUNTERS + std::mem::size_of::<Chain>())
        + allocated(pieces * std::mem::size_of::<Arc<[u8]>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    fn joined(v: &Value) -> Vec<u8> {
        v.pieces().concat()
    }

    #[test]
    fn pieces_of_every_length_and_cut() {
        for len in [
            2,
            3,
            PIECE - 1,
            PIECE,
            PIECE + 1,
            PIECE + 2,
            2 * PIECE,
            3 * PIECE - 1,
            (1 << 20) + 2,
        ] {
            let mut whole = bytes(len - 2, 7);
            whole.extend_from_slice(b"\r\n");
            for cut in [0, 1, len / 3, len - 2, len - 1, len] {
                let (a, b) = whole.split_at(cut);
                let v = Value::from_parts(&[a, b]);
                assert_eq!(v.len(), len);
                assert!(joined(&v) == whole, "len {len} cut {cut}");
                let pieces = v.pieces();
                assert_eq!(pieces.len(), len.div_ceil(PIECE));
                assert!(pieces[..pieces.len() - 1].iter().all(|p| p.len() == PIECE));
                assert_eq!(v.data_parts().concat(), &whole[..len - 2]);
                assert_eq!(&v.data()[..], &whole[..len - 2]);
            }
        }
    }

    #[test]
    fn a_value_is_sixteen_bytes_and_costs_its_pieces() {
        // The size of an item's place in the store's slab; a chain costs no more.
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(cost(2), 32);
        assert_eq!(cost(PIECE), allocated(ARC_COUNTERS + PIECE));
        let one_mib = cost((1 << 20) + 2);
        assert_eq!(
            one_mib,
            32 * allocated(ARC_COUNTERS + PIECE) + 32 + 48 + allocated(33 * 16)
        );
        // Within 0.2 % of the bytes themselves.
        assert!(one_mib < ((1 << 20) + 2) * 1002 / 1000);
    }
}
