//! What the workers count together: open connections (for
//! [`Config::max_clients`](super::Config::max_clients)) and unsent output (for
//! [`Config::max_output_total`](super::Config::max_output_total)).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counters shared by every worker of one server (relaxed atomics: each is a
/// bound, not a synchronisation).
#[derive(Debug)]
pub(super) struct Totals {
    open: AtomicUsize,
    unsent: AtomicUsize,
    max_clients: usize,
    max_output_total: usize,
}

impl Totals {
    pub(super) fn new(max_clients: usize, max_output_total: usize) -> Totals {
        Totals {
            open: AtomicUsize::new(0),
            unsent: AtomicUsize::new(0),
            max_clients,
            max_output_total,
        }
    }

    /// Counts one more open connection, unless `max_clients` are open already.
    pub(super) fn admit(&self) -> bool {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_clients).then_some(n + 1)
            })
            .is_ok()
    }

    /// One connection fewer.
    pub(super) fn release(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection that counted `*charged` bytes of unsent output now has
    /// `unsent`: the total follows.
    #[inline]
    pub(super) fn charge(&self, charged: &mut usize, unsent: usize) {
        if unsent > *charged {
            self.unsent.fetch_add(unsent - *charged, Ordering::Relaxed);
        } else if unsent < *charged {
            self.unsent.fetch_sub(*charged - unsent, Ordering::Relaxed);
        }
        *charged = unsent;
    }

    /// Whether all connections' unsent output passes `max_output_total`.
    #[inline]
    pub(super) fn over(&self) -> bool {
        self.unsent.load(Ordering::Relaxed) > self.max_output_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_max_clients_and_follows_each_charge() {
        let totals = Totals::new(2, 100);
        assert!(totals.admit() && totals.admit());
        assert!(!totals.admit());
        totals.release();
        assert!(totals.admit());
        let (mut a, mut b) = (0, 0);
        totals.charge(&mut a, 60);
        totals.charge(&mut b, 41);
        assert!(totals.over());
        totals.charge(&mut a, 10);
        assert!(!totals.over());
        totals.charge(&mut a, 0);
        totals.charge(&mut b, 0);
        assert_eq!(totals.unsent.load(Ordering::Relaxed), 0);
    }
}
