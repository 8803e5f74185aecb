//! Between workers: what one worker's protocol sends to connections of another
//! (a broadcast, `send_to`, `close_other`) goes through that worker's inbox, and
//! its waker makes the other loop look.

use std::sync::{Arc, Mutex};

use super::protocol::ConnId;
use crate::sources::Waker;

/// One message for another worker.
pub(super) enum Post {
    /// To every open connection of the worker.
    All(Arc<[u8]>),
    /// To one connection.
    To(ConnId, Box<[u8]>),
    /// Close one connection once its output is sent.
    Close(ConnId),
}

/// A worker's inbox.
pub(super) struct Inbox {
    queue: Mutex<Vec<Post>>,
    pub(super) waker: Waker,
}

/// Every worker's inbox, by worker index.
pub(super) struct Hub {
    inboxes: Vec<Inbox>,
}

impl Hub {
    pub(super) fn new(workers: usize) -> std::io::Result<Hub> {
        let inboxes = (0..workers)
            .map(|_| {
                Ok(Inbox {
                    queue: Mutex::new(Vec::new()),
                    waker: Waker::new()?,
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Hub { inboxes })
    }

    pub(super) fn inbox(&self, worker: usize) -> &Inbox {
        &self.inboxes[worker]
    }

    pub(super) fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Puts `post` into worker `to`'s inbox, and wakes it if the inbox was empty
    /// (otherwise a wake-up is already on its way).
    pub(super) fn post(&self, to: usize, post: Post) {
        let Some(inbox) = self.inboxes.get(to) else {
            return;
        };
        let was_empty = {
            let mut queue = match inbox.queue.lock() {
                Ok(q) => q,
                Err(poisoned) => poisoned.into_inner(),
            };
            queue.push(post);
            queue.len() == 1
        };
        if was_empty {
            let _ = inbox.waker.wake();
        }
    }

    /// Takes everything in worker `worker`'s inbox (into `into`, which is cleared
    /// first and whose memory is swapped with the queue's, so neither allocates in
    /// steady state).
    pub(super) fn take(&self, worker: usize, into: &mut Vec<Post>) {
        into.clear();
        let inbox = &self.inboxes[worker];
        let _ = inbox.waker.reset();
        let mut queue = match inbox.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::swap(&mut *queue, into);
    }
}
