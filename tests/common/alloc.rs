//! A counting global allocator, for the tests that check what code allocates. A
//! test binary installs it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;` (one allocator per
//! binary, hence the separate `*_alloc.rs` and `server_memory.rs` binaries).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts the allocations (and reallocations) of the threads that turned counting
/// on ([`allocations_in`], [`count_live_bytes`]), and the heap bytes they hold.
pub struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Live heap bytes of the counting threads.
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn note(delta: isize, is_alloc: bool) {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        LIVE.fetch_add(delta, Ordering::SeqCst);
        if is_alloc {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged;
// the bookkeeping touches const-initialized thread-locals and an atomic, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, true);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), false);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns how many allocations this thread made meanwhile.
pub fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCS.with(Cell::get)
}

/// From now on, this thread's heap bytes count in [`live_bytes`].
pub fn count_live_bytes(on: bool) {
    COUNTING.with(|c| c.set(on));
}

/// Heap bytes held by the threads that count.
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::SeqCst)
}
