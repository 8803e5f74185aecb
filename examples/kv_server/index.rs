//! The hash index from a key to its item's position in the slab: open addressing
//! with linear probing, 8 bytes a slot (32 bits of the key's hash and the position),
//! the keys themselves kept once, by the items. `HashMap<Box<[u8]>, u32>` would
//! keep each key twice (or an `Arc` more per item) and cost 25 bytes a bucket in
//! steps of doubling that the store cannot see; here every byte is known and
//! counted in the store's memory.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// An empty slot. A used one holds `hash << 32 | (position + 1)`.
const EMPTY: u64 = 0;
const MIN_SLOTS: usize = 16;

pub struct Index {
    /// A power of two of slots, or none.
    slots: Vec<u64>,
    len: usize,
    hasher: RandomState,
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

impl Index {
    pub fn new() -> Index {
        Index {
            slots: Vec::new(),
            len: 0,
            hasher: RandomState::new(),
        }
    }

    /// The hash of `key` the other methods take (keyed per process, as std's maps).
    pub fn hash(&self, key: &[u8]) -> u32 {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        h.finish() as u32
    }

    /// The bytes the table has allocated.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    /// How many bytes the next [`insert`](Self::insert) would allocate.
    pub fn growth(&self) -> usize {
        if self.full() {
            self.slots.len().max(MIN_SLOTS) * std::mem::size_of::<u64>()
        } else {
            0
        }
    }

    /// At most three quarters of the slots used (linear probing stays short).
    fn full(&self) -> bool {
        (self.len + 1) * 4 > self.slots.len() * 3
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The position of `key`, whose hash is `hash`; `key_of` gives the key at a
    /// position.
    pub fn find<'a>(&self, key: &[u8], hash: u32, key_of: impl Fn(u32) -> &'a [u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            let pos = (s as u32).wrapping_sub(1);
            if (s >> 32) as u32 == hash && key_of(pos) == key {
                return Some(pos);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds the key of hash `hash` at `pos`; the key must not be in the index.
    pub fn insert(&mut self, hash: u32, pos: u32) {
        assert!(pos < u32::MAX, "position out of range");
        if self.full() {
            self.grow();
        }
        self.place(u64::from(hash) << 32 | u64::from(pos + 1));
        self.len += 1;
    }

    /// Removes the entry for `pos`, whose key's hash is `hash`. Panics if there is
    /// none.
    pub fn remove(&mut self, hash: u32, pos: u32) {
        let mask = self.mask();
        let want = u64::from(hash) << 32 | u64::from(pos + 1);
        let mut hole = hash as usize & mask;
        while self.slots[hole] != want {
            assert!(self.slots[hole] != EMPTY, "no entry for position {pos}");
            hole = (hole + 1) & mask;
        }
        // Backward shift: move up each later entry of the run that may live in
        // the hole, so that no search stops early at an empty slot.
        let mut j = (hole + 1) & mask;
        loop {
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = (s >> 32) as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// Removes every entry and frees the table.
    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.len = 0;
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(s);
        }
    }

    fn place(&mut self, s: u64) {
        let mask = self.mask();
        let mut i = (s >> 32) as usize & mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys at positions; `None` where removed.
    struct Keys(Vec<Option<Vec<u8>>>);

    impl Keys {
        fn key(&self, pos: u32) -> &[u8] {
            self.0[pos as usize].as_deref().expect("a live position")
        }
    }

    #[test]
    fn insert_find_remove_against_a_model() {
        let mut index = Index::new();
        let mut keys = Keys(Vec::new());
        let mut model = std::collections::HashMap::new();
        // A fixed pseudo-random sequence of inserts and removals.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 5000).into_bytes();
            let h = index.hash(&key);
            let found = index.find(&key, h, |p| keys.key(p));
            assert_eq!(found, model.get(&key).copied(), "step {step}");
            match found {
                Some(pos) => {
                    index.remove(h, pos);
                    keys.0[pos as usize] = None;
                    model.remove(&key);
                }
                None => {
                    let pos = keys.0.len() as u32;
                    keys.0.push(Some(key.clone()));
                    let growth = index.growth();
                    let before = index.bytes();
                    index.insert(h, pos);
                    assert_eq!(index.bytes() - before, growth);
                    model.insert(key, pos);
                }
            }
            assert_eq!(index.len, model.len());
        }
        for (key, &pos) in &model {
            assert_eq!(index.find(key, index.hash(key), |p| keys.key(p)), Some(pos));
        }
        assert!(index.len * 4 <= index.slots.len() * 3);
        index.clear();
        assert_eq!((index.len, index.bytes()), (0, 0));
        assert_eq!(index.find(b"k1", index.hash(b"k1"), |p| keys.key(p)), None);
    }

    #[test]
    fn colliding_hashes_and_wrapping_runs() {
        // Every key with the same hash, so all share one run that wraps around.
        let mut index = Index::new();
        let keys = Keys((0..11).map(|i| Some(vec![b'a' + i as u8])).collect());
        let h = 15; // the last slot of 16: the run wraps to the start
        for pos in 0..11 {
            index.insert(h, pos);
        }
        for pos in [3, 0, 10, 5] {
            index.remove(h, pos);
            for p in 0..11u32 {
                let gone = [3, 0, 10, 5][..].contains(&p)
                    && index.find(keys.key(p), h, |q| keys.key(q)).is_none();
                let here = index.find(keys.key(p), h, |q| keys.key(q)) == Some(p);
                assert!(gone || here, "position {p} after removing {pos}");
            }
        }
    }
}
