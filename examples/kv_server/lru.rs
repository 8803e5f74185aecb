//! A slab of entries on an intrusive doubly linked list, the most recently used
//! first: every operation is O(1). An entry is named by its position in the slab,
//! which stays the same until it is removed; a removed entry's place is reused.

/// No entry (the end of the list, or of the free list).
const NIL: u32 = u32::MAX;

struct Entry<T> {
    /// `None` for a free place.
    value: Option<T>,
    /// Towards the most recently used; on the free list, unused.
    prev: u32,
    /// Towards the least recently used; on the free list, the next free place.
    next: u32,
}

/// The entries, in the order of their last use.
pub struct Lru<T> {
    slab: Vec<Entry<T>>,
    /// The most recently used entry.
    head: u32,
    /// The least recently used entry: the next to evict.
    tail: u32,
    /// The first free place in `slab`.
    free: u32,
    len: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Lru::new()
    }
}

impl<T> Lru<T> {
    pub fn new() -> Lru<T> {
        Lru {
            slab: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The size of one place in the slab.
    pub const fn entry_size() -> usize {
        std::mem::size_of::<Entry<T>>()
    }

    /// The bytes the slab has allocated.
    pub fn bytes(&self) -> usize {
        self.slab.capacity() * Self::entry_size()
    }

    /// How many bytes the slab would allocate more for the next
    /// [`push_front`](Self::push_front) (0 while a place is free).
    pub fn growth(&self) -> usize {
        if self.free != NIL || self.slab.len() < self.slab.capacity() {
            0
        } else {
            Self::grow_by(self.slab.len()) * Self::entry_size()
        }
    }

    /// The slab grows by an eighth (at least 16 places), not by doubling: its
    /// unused end stays small (it is counted in the store's memory).
    fn grow_by(len: usize) -> usize {
        (len / 8).max(16)
    }

    /// Adds `value` as the most recently used entry; returns its position.
    pub fn push_front(&mut self, value: T) -> u32 {
        let i = if self.free != NIL {
            let i = self.free;
            let e = &mut self.slab[i as usize];
            self.free = e.next;
            e.value = Some(value);
            i
        } else {
            assert!(self.slab.len() < NIL as usize, "more than 2^32 - 1 entries");
            if self.slab.len() == self.slab.capacity() {
                self.slab.reserve_exact(Self::grow_by(self.slab.len()));
            }
            self.slab.push(Entry {
                value: Some(value),
                prev: NIL,
                next: NIL,
            });
            (self.slab.len() - 1) as u32
        };
        self.link_front(i);
        self.len += 1;
        i
    }

    /// Removes the entry at `i` and returns its value. Panics if there is none.
    pub fn remove(&mut self, i: u32) -> T {
        let value = self.slab[i as usize].value.take().expect("a used place");
        self.unlink(i);
        let e = &mut self.slab[i as usize];
        e.prev = NIL;
        e.next = self.free;
        self.free = i;
        self.len -= 1;
        value
    }

    /// Makes the entry at `i` the most recently used.
    pub fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    /// The least recently used entry.
    pub fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    pub fn get(&self, i: u32) -> &T {
        self.slab[i as usize].value.as_ref().expect("a used place")
    }

    pub fn get_mut(&mut self, i: u32) -> &mut T {
        self.slab[i as usize].value.as_mut().expect("a used place")
    }

    /// Removes every entry and frees the slab.
    pub fn clear(&mut self) {
        *self = Lru::new();
    }

    /// The positions from the most to the least recently used.
    #[cfg(test)]
    pub fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        let mut i = self.head;
        std::iter::from_fn(move || {
            let here = i;
            (here != NIL).then(|| {
                i = self.slab[here as usize].next;
                here
            })
        })
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        let e = &mut self.slab[i as usize];
        e.prev = NIL;
        e.next = old;
        if old != NIL {
            self.slab[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let e = &self.slab[i as usize];
            (e.prev, e.next)
        };
        if prev != NIL {
            self.slab[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slab[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(lru: &Lru<u32>) -> Vec<u32> {
        lru.positions().map(|i| *lru.get(i)).collect()
    }

    #[test]
    fn most_recent_first_and_places_reused() {
        let mut lru = Lru::new();
        let a = lru.push_front(1);
        let b = lru.push_front(2);
        let c = lru.push_front(3);
        assert_eq!(order(&lru), [3, 2, 1]);
        assert_eq!(lru.back(), Some(a));
        lru.touch(a);
        assert_eq!(order(&lru), [1, 3, 2]);
        lru.touch(a); // already first
        assert_eq!(lru.back(), Some(b));
        assert_eq!(lru.remove(c), 3);
        assert_eq!(order(&lru), [1, 2]);
        let d = lru.push_front(4);
        assert_eq!(d, c, "the free place is reused");
        assert_eq!(order(&lru), [4, 1, 2]);
        assert_eq!(lru.remove(b), 2);
        assert_eq!(lru.remove(d), 4);
        assert_eq!(lru.remove(a), 1);
        assert_eq!((lru.len(), lru.back()), (0, None));
        assert!(order(&lru).is_empty());
        let e = lru.push_front(5);
        *lru.get_mut(e) += 1;
        assert_eq!(order(&lru), [6]);
    }

    #[test]
    fn the_slab_grows_by_an_eighth_and_says_so_first() {
        let mut lru = Lru::new();
        for i in 0..10_000u32 {
            let growth = lru.growth();
            let before = lru.bytes();
            lru.push_front(i);
            assert_eq!(lru.bytes() - before, growth);
            assert!(lru.slab.capacity() <= lru.len() + lru.len() / 8 + 16);
        }
        // Evicting and adding reuses places: no growth.
        for i in 0..10_000u32 {
            let back = lru.back().unwrap();
            assert_eq!(lru.remove(back), i);
            assert_eq!(lru.growth(), 0);
            lru.push_front(i);
        }
        assert_eq!(lru.len(), 10_000);
        lru.clear();
        assert_eq!((lru.len(), lru.bytes()), (0, 0));
    }
}
