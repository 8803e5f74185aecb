//! Between workers: what one worker's protocol sends to connections of another
//! (a broadcast, `send_to`, `close_other`) goes through that worker's inbox, and
//! its waker makes the other loop look.
//!
//! What waits in an inbox counts as unsent output against
//! [`Config::max_output_total`](super::Config::max_output_total) (a broadcast's
//! bytes once; delivered, each receiving connection counts them): past it, every
//! worker's input waits, so a worker that floods another, slower one stops
//! reading what makes it post. A worker that has stopped takes no more posts, and
//! what waited for it is dropped and no longer counted.

use std::sync::{Arc, Mutex, MutexGuard};

use super::protocol::ConnId;
use super::totals::Totals;
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

impl Post {
    /// The bytes it carries (a broadcast's once: its receivers share them).
    fn bytes(&self) -> usize {
        match self {
            Post::All(data) => data.len(),
            Post::To(_, data) => data.len(),
            Post::Close(_) => 0,
        }
    }
}

/// What waits in an inbox, the bytes of it charged to [`Totals`], and whether its
/// worker has stopped.
#[derive(Default)]
struct Queue {
    posts: Vec<Post>,
    charged: usize,
    closed: bool,
}

/// A worker's inbox.
pub(super) struct Inbox {
    queue: Mutex<Queue>,
    pub(super) waker: Waker,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every worker's inbox, by worker index.
pub(super) struct Hub {
    inboxes: Vec<Inbox>,
    totals: Arc<Totals>,
}

impl Hub {
    pub(super) fn new(workers: usize, totals: Arc<Totals>) -> std::io::Result<Hub> {
        let inboxes = (0..workers)
            .map(|_| {
                Ok(Inbox {
                    queue: Mutex::new(Queue::default()),
                    waker: Waker::new()?,
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Hub { inboxes, totals })
    }

    pub(super) fn inbox(&self, worker: usize) -> &Inbox {
        &self.inboxes[worker]
    }

    pub(super) fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Puts `post` into worker `to`'s inbox, and wakes it if the inbox was empty
    /// (otherwise a wake-up is already on its way). Returns `false` if that wake-up
    /// could not be written (`ENOMEM`, `ENOBUFS`, a full socket): the caller must
    /// [`wake`](Self::wake) worker `to` again later, or the post may wait for the
    /// next one.
    pub(super) fn post(&self, to: usize, post: Post) -> bool {
        let Some(inbox) = self.inboxes.get(to) else {
            return true;
        };
        let was_empty = {
            let mut queue = inbox.lock();
            if queue.closed {
                return true; // its worker has stopped: nothing to deliver to
            }
            let bytes = queue.charged.saturating_add(post.bytes());
            self.totals.charge(&mut queue.charged, bytes);
            queue.posts.push(post);
            queue.posts.len() == 1
        };
        !was_empty || inbox.waker.wake_written()
    }

    /// Worker `worker` has stopped (its loop returned, or its thread panicked):
    /// what waits for it is dropped and no longer counted, and later posts to it
    /// are dropped too.
    pub(super) fn close(&self, worker: usize) {
        if let Some(inbox) = self.inboxes.get(worker) {
            let mut queue = inbox.lock();
            queue.closed = true;
            queue.posts.clear();
            self.totals.charge(&mut queue.charged, 0);
        }
    }

    /// Wakes worker `to` (again); `false` if the wake-up could not be written.
    pub(super) fn wake(&self, to: usize) -> bool {
        self.inboxes
            .get(to)
            .is_none_or(|inbox| inbox.waker.wake_written())
    }

    /// Takes everything in worker `worker`'s inbox (into `into`, which is cleared
    /// first and whose memory is swapped with the queue's, so neither allocates in
    /// steady state).
    ///
    /// # Errors
    /// Reading the inbox's waker failed with an error that means the server's own
    /// descriptor is broken (`EBADF`, `EFAULT`, `EINVAL`, `ENOTSOCK`); any other
    /// error leaves the waker readable, and the next turn tries again.
    pub(super) fn take(&self, worker: usize, into: &mut Vec<Post>) -> std::io::Result<()> {
        into.clear();
        let inbox = &self.inboxes[worker];
        if let Err(e) = inbox.waker.reset() {
            if matches!(
                e.raw_os_error(),
                Some(libc::EBADF | libc::EFAULT | libc::EINVAL | libc::ENOTSOCK)
            ) {
                return Err(e);
            }
        }
        let mut queue = inbox.lock();
        std::mem::swap(&mut queue.posts, into);
        // Delivered now: the connections it is queued for count it from here.
        self.totals.charge(&mut queue.charged, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(hub: &Hub, worker: usize) -> Vec<Post> {
        let mut posts = Vec::new();
        hub.take(worker, &mut posts).unwrap();
        posts
    }

    fn hub(workers: usize, max_output_total: usize) -> Hub {
        Hub::new(workers, Arc::new(Totals::new(100, max_output_total))).unwrap()
    }

    #[test]
    fn a_post_wakes_an_empty_inbox_and_is_taken_once() {
        let hub = hub(2, 1000);
        assert!(hub.post(1, Post::All(Arc::from(&b"x"[..]))));
        assert!(hub.post(1, Post::All(Arc::from(&b"y"[..])))); // no second wake-up
        assert_eq!(take(&hub, 1).len(), 2);
        assert!(take(&hub, 1).is_empty());
        assert!(take(&hub, 0).is_empty());
    }

    #[test]
    fn a_wake_up_that_cannot_be_written_says_so_and_can_be_repeated() {
        let hub = hub(2, 1000);
        // Fill the inbox's socket with wake-ups: the post's own then finds it full.
        while hub.inbox(1).waker.wake_written() {}
        assert!(!hub.post(1, Post::All(Arc::from(&b"x"[..]))));
        assert!(!hub.wake(1));
        assert_eq!(take(&hub, 1).len(), 1); // reads the socket empty
        assert!(hub.wake(1));
    }

    #[test]
    fn what_waits_in_an_inbox_counts_against_max_output_total() {
        let hub = hub(3, 100);
        let id = ConnId {
            worker: 2,
            index: 0,
            generation: 0,
        };
        hub.post(1, Post::All(Arc::from(&[0u8; 60][..])));
        assert!(!hub.totals.over());
        hub.post(2, Post::To(id, Box::from(&[0u8; 41][..])));
        hub.post(2, Post::Close(id));
        assert!(hub.totals.over(), "101 bytes wait, past 100");
        assert_eq!(take(&hub, 2).len(), 2);
        assert!(!hub.totals.over());
        assert_eq!(take(&hub, 1).len(), 1);
        hub.post(1, Post::All(Arc::from(&[0u8; 100][..])));
        assert!(!hub.totals.over(), "100 is not past 100");
        take(&hub, 1);
        hub.post(1, Post::All(Arc::from(&[0u8; 101][..])));
        assert!(hub.totals.over());
    }

    #[test]
    fn a_stopped_worker_takes_no_posts_and_gives_back_its_charge() {
        let hub = hub(2, 100);
        hub.post(1, Post::All(Arc::from(&[0u8; 101][..])));
        assert!(hub.totals.over());
        hub.close(1);
        assert!(
            !hub.totals.over(),
            "what waited for it is no longer counted"
        );
        assert!(hub.post(1, Post::All(Arc::from(&[0u8; 101][..]))));
        assert!(!hub.totals.over(), "a post to it is dropped");
        assert!(take(&hub, 1).is_empty());
    }
}
