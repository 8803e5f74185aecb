//! A slab of entries on an intrusive doubly linked list, the most recently used
//! first: every operation is O(1). An entry is named by its position in the slab,
//! which stays the same until it is removed; a removed entry's place is reused.
//!
//! The slab is made of segments of about 32 KiB, not one growing array: a
//! segment fits where a long value's piece was freed (`value.rs`), so a store
//! whose large items give way to many small ones reuses their memory, where one
//! array of megabytes would be mapped anew beside it. The first segment grows to
//! that size by steps, so a small store holds a small slab.

/// No entry (the end of the list, or of the free list).
const NIL: u32 = u32::MAX;

/// The bytes of a segment, at most.
const SEGMENT_BYTES: usize = 32 * 1024;

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
    /// Segments of [`Self::PER_SEGMENT`] places each (allocated whole, filled in
    /// order; the first grows to it), place `i` in segment `i / PER_SEGMENT`.
    segments: Vec<Vec<Entry<T>>>,
    /// The most recently used entry.
    head: u32,
    /// The least recently used entry: the next to evict.
    tail: u32,
    /// The first free place.
    free: u32,
    len: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Lru::new()
    }
}

impl<T> Lru<T> {
    /// Places in a segment.
    const PER_SEGMENT: usize = {
        let n = SEGMENT_BYTES / std::mem::size_of::<Entry<T>>();
        if n == 0 {
            1
        } else {
            n
        }
    };

    pub fn new() -> Lru<T> {
        Lru {
            segments: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes the slab has allocated: its segments and their list.
    pub fn bytes(&self) -> usize {
        // Every segment but the last is full.
        let places = match self.segments.last() {
            Some(last) => (self.segments.len() - 1) * Self::PER_SEGMENT + last.capacity(),
            None => 0,
        };
        places * std::mem::size_of::<Entry<T>>()
            + self.segments.capacity() * std::mem::size_of::<Vec<Entry<T>>>()
    }

    /// How many bytes the slab would allocate more for the next
    /// [`push_front`](Self::push_front) (0 while a place is free).
    pub fn growth(&self) -> usize {
        if self.free != NIL {
            return 0;
        }
        let places = match self.segments.last() {
            Some(last) if Self::has_room(last) => return 0,
            Some(last) if last.capacity() < Self::PER_SEGMENT => {
                return Self::grow_first_by(last.capacity()) * std::mem::size_of::<Entry<T>>();
            }
            Some(_) => Self::PER_SEGMENT,
            None => Self::grow_first_by(0),
        };
        let list = if self.segments.len() == self.segments.capacity() {
            Self::grow_list_by(self.segments.len()) * std::mem::size_of::<Vec<Entry<T>>>()
        } else {
            0
        };
        places * std::mem::size_of::<Entry<T>>() + list
    }

    /// Whether a segment takes one more place without growing (never past
    /// [`Self::PER_SEGMENT`], whatever capacity the allocator gave).
    fn has_room(segment: &Vec<Entry<T>>) -> bool {
        segment.len() < segment.capacity().min(Self::PER_SEGMENT)
    }

    /// The first segment grows by a half (at least 16 places) up to
    /// [`Self::PER_SEGMENT`].
    fn grow_first_by(capacity: usize) -> usize {
        (capacity / 2).max(16).min(Self::PER_SEGMENT - capacity)
    }

    /// The list of segments grows by a half (at least 4).
    fn grow_list_by(len: usize) -> usize {
        (len / 2).max(4)
    }

    fn entry(&self, i: u32) -> &Entry<T> {
        let i = i as usize;
        &self.segments[i / Self::PER_SEGMENT][i % Self::PER_SEGMENT]
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry<T> {
        let i = i as usize;
        &mut self.segments[i / Self::PER_SEGMENT][i % Self::PER_SEGMENT]
    }

    /// Adds `value` as the most recently used entry; returns its position.
    pub fn push_front(&mut self, value: T) -> u32 {
        let i = if self.free != NIL {
            let i = self.free;
            let e = self.entry_mut(i);
            let next = e.next;
            e.value = Some(value);
            self.free = next;
            i
        } else {
            match self.segments.last_mut() {
                Some(last) if Self::has_room(last) => {}
                Some(last) if last.capacity() < Self::PER_SEGMENT => {
                    let more = Self::grow_first_by(last.capacity());
                    last.reserve_exact(more);
                }
                _ => {
                    if self.segments.len() == self.segments.capacity() {
                        let more = Self::grow_list_by(self.segments.len());
                        self.segments.reserve_exact(more);
                    }
                    let first = if self.segments.is_empty() {
                        Self::grow_first_by(0)
                    } else {
                        Self::PER_SEGMENT
                    };
                    self.segments.push(Vec::with_capacity(first));
                }
            }
            let n = self.segments.len();
            let i = (n - 1) * Self::PER_SEGMENT + self.segments[n - 1].len();
            assert!(i < NIL as usize, "more than 2^32 - 1 entries");
            self.segments[n - 1].push(Entry {
                value: Some(value),
                prev: NIL,
                next: NIL,
            });
            i as u32
        };
        self.link_front(i);
        self.len += 1;
        i
    }

    /// Removes the entry at `i` and returns its value. Panics if there is none.
    pub fn remove(&mut self, i: u32) -> T {
        let value = self.entry_mut(i).value.take().expect("a used place");
        self.unlink(i);
        let free = self.free;
        let e = self.entry_mut(i);
        e.prev = NIL;
        e.next = free;
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
        self.entry(i).value.as_ref().expect("a used place")
    }

    pub fn get_mut(&mut self, i: u32) -> &mut T {
        self.entry_mut(i).value.as_mut().expect("a used place")
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
                i = self.entry(here).next;
                here
            })
        })
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        let e = self.entry_mut(i);
        e.prev = NIL;
        e.next = old;
        if old != NIL {
            self.entry_mut(old).prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let e = self.entry(i);
            (e.prev, e.next)
        };
        if prev != NIL {
            self.entry_mut(prev).next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.entry_mut(next).prev = prev;
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
    fn the_slab_grows_by_a_segment_and_says_so_first() {
        let mut lru = Lru::new();
        let per = Lru::<u32>::PER_SEGMENT;
        assert_eq!(per, SEGMENT_BYTES / std::mem::size_of::<Entry<u32>>());
        for i in 0..10_000u32 {
            let growth = lru.growth();
            let before = lru.bytes();
            lru.push_front(i);
            assert_eq!(lru.bytes() - before, growth);
            assert_eq!(lru.segments.len(), lru.len().div_ceil(per));
            assert!(lru.segments.iter().all(|s| s.capacity() == per) || lru.len() < per);
            // Unused places: at most a half of the first segment, or a segment.
            let list = lru.segments.capacity() * std::mem::size_of::<Vec<Entry<u32>>>();
            let spare = (lru.bytes() - list) / std::mem::size_of::<Entry<u32>>() - lru.len();
            assert!(spare < per, "{spare} spare");
            assert!(
                lru.len() > per || spare <= lru.len() / 2 + 16,
                "{spare} spare"
            );
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
