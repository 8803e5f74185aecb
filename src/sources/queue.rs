//! The epoll and kqueue backends of [`Sources`](super::Sources): the kernel keeps
//! the interest list, so registering costs one call and a wait costs in proportion
//! to the ready descriptors, not the registered ones.
//!
//! What the two share lives here, over the calls of [`sys::Queue`]:
//! - registrations in a dense array (the `slot` of a source's entry, as poll's
//!   `pollfd` array), each with a generation number carried in the kernel's token,
//!   so that no event of an earlier registration of a number passes for a later one;
//! - [`Interest::NONE`] as no registration at all (epoll reports `EPOLLHUP` and
//!   `EPOLLERR` to every registration, asked or not);
//! - a descriptor found closed when it is (re)registered, reported invalid by the
//!   next wait, as poll's `POLLNVAL` is;
//! - for epoll, whose registrations belong to the open file description, every
//!   event checked against the file the number named when it was registered; a
//!   registration that can no longer be reached through its number (closed, or
//!   renumbered, while a `dup` keeps the file open) is dropped by rebuilding the
//!   set;
//! - kqueue's two events for one descriptor (reading and writing) merged into one.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{lookup, Entry, Events, Interest, Readiness};
use crate::sys::{self, FileId};
use crate::time::Deadline;

/// Events one wait can take from the kernel: at least this many…
const MIN_EVENTS: usize = 64;
/// …and at most this many; the rest are reported by the next wait (epoll and
/// kqueue hand out ready registrations in turn, so none is starved).
const MAX_EVENTS: usize = 1024;

/// A kernel queue and the registrations in it.
pub(super) struct Queue<Q: sys::Queue> {
    /// Opened at the first registration or wait (or by `Sources::try_new`).
    kernel: Option<Q>,
    /// The array a wait fills; sized by registrations, never by a wait.
    buf: Vec<Q::Event>,
    /// By slot: one per registered source.
    regs: Vec<Reg>,
    /// The last generation handed out.
    generation: u32,
    /// Descriptors found closed when (re)registered, with their generation: the
    /// next wait reports them invalid.
    pending: Vec<(RawFd, u32)>,
    /// The kernel holds a registration that its number can no longer reach:
    /// build the set anew before the next wait.
    rebuild: bool,
    /// Counts waits, to find a second event of one source in one wait.
    turn: u64,
}

/// One registered source.
#[derive(Clone, Copy, Debug)]
struct Reg {
    fd: RawFd,
    generation: u32,
    /// What the kernel watches it for (`NONE`: not in the kernel's set).
    armed: Interest,
    /// The file the number named when it was armed (epoll only).
    file: FileId,
    /// The wait that last reported it, and where in that wait's events.
    turn: u64,
    at: usize,
}

/// The kernel's token for a registration: the descriptor and the generation.
fn token(fd: RawFd, generation: u32) -> u64 {
    u64::from(fd as u32) | (u64::from(generation) << 32)
}

fn is(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// The kernel queue in `slot`, opened now if it is not yet.
fn open<Q: sys::Queue>(slot: &mut Option<Q>) -> io::Result<&Q> {
    let kernel = match slot.take() {
        Some(kernel) => kernel,
        None => Q::open()?,
    };
    Ok(slot.insert(kernel))
}

/// Puts `reg` into the kernel's set for `interest` under a new generation. A
/// descriptor that is not open is no error here: it goes to `pending`, and the
/// next wait reports it invalid, as poll reports `POLLNVAL`.
fn arm<Q: sys::Queue>(
    kernel: &Q,
    generation: &mut u32,
    pending: &mut Vec<(RawFd, u32)>,
    reg: &mut Reg,
    interest: Interest,
) -> io::Result<()> {
    *generation = generation.wrapping_add(1);
    let new = *generation;
    let fd = reg.fd;
    let file = if Q::FOLLOWS_FILE {
        match sys::file_id(fd) {
            Ok(file) => file,
            Err(e) if is(&e, libc::EBADF) => {
                reg.generation = new;
                pending.push((fd, new));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    } else {
        FileId::default()
    };
    let t = token(fd, new);
    let added = match kernel.add(fd, interest, t) {
        // This very file is in the set under this number still (a registration
        // whose removal failed, as its number was closed then): take it over.
        Err(e) if is(&e, libc::EEXIST) => kernel.modify(fd, interest, interest, t),
        other => other,
    };
    match added {
        Ok(()) => {
            reg.generation = new;
            reg.file = file;
            reg.armed = interest;
            Ok(())
        }
        Err(e) if is(&e, libc::EBADF) => {
            reg.generation = new;
            pending.push((fd, new));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl<Q: sys::Queue> Queue<Q> {
    pub(super) fn new() -> Queue<Q> {
        Queue {
            kernel: None,
            buf: vec![Q::empty(); MIN_EVENTS],
            regs: Vec::new(),
            generation: 0,
            pending: Vec::new(),
            rebuild: false,
            turn: 0,
        }
    }

    /// Opens the kernel queue if it is not open yet.
    pub(super) fn open(&mut self) -> io::Result<()> {
        open(&mut self.kernel).map(drop)
    }

    /// Registers `fd`; returns its slot.
    pub(super) fn add(&mut self, fd: RawFd, interest: Interest) -> io::Result<usize> {
        let kernel = open(&mut self.kernel)?;
        let mut reg = Reg {
            fd,
            generation: 0,
            armed: Interest::NONE,
            file: FileId::default(),
            turn: 0,
            at: 0,
        };
        if !interest.is_none() {
            arm(
                kernel,
                &mut self.generation,
                &mut self.pending,
                &mut reg,
                interest,
            )?;
        }
        self.regs.push(reg);
        // Room for two events per source (kqueue's reading and writing), up to
        // MAX_EVENTS: made here, so that a wait never allocates.
        let want = (2 * self.regs.len()).min(MAX_EVENTS);
        if self.buf.len() < want {
            let grown = want.next_power_of_two().min(MAX_EVENTS);
            self.buf.resize(grown, Q::empty());
        }
        Ok(self.regs.len() - 1)
    }

    /// Watches the source in `slot` for `interest` instead.
    pub(super) fn modify(&mut self, slot: usize, interest: Interest) -> io::Result<()> {
        let kernel = open(&mut self.kernel)?;
        let Some(reg) = self.regs.get_mut(slot) else {
            return Ok(());
        };
        let (fd, from) = (reg.fd, reg.armed);
        if from == interest {
            return Ok(());
        }
        if interest.is_none() {
            match kernel.delete(fd, from) {
                // EBADF, ENOENT: closed or renumbered behind our back. The kernel
                // dropped the registration with the file (or, kqueue, with the
                // number), or it lingers (epoll, a `dup` alive): then its next
                // event finds it stale, and the set is built anew.
                Err(e) if !is(&e, libc::EBADF) && !is(&e, libc::ENOENT) => return Err(e),
                _ => {}
            }
            reg.armed = Interest::NONE;
            return Ok(());
        }
        if !from.is_none() {
            match kernel.modify(fd, from, interest, token(fd, reg.generation)) {
                Ok(()) => {
                    reg.armed = interest;
                    return Ok(());
                }
                // Closed, or (epoll) the number names another file now: armed
                // anew below, as for a new registration.
                Err(e) if is(&e, libc::EBADF) || is(&e, libc::ENOENT) => {
                    reg.armed = Interest::NONE;
                }
                Err(e) => return Err(e),
            }
        }
        arm(
            kernel,
            &mut self.generation,
            &mut self.pending,
            reg,
            interest,
        )
    }

    /// Unregisters the source in `slot`. The last one moves into its slot: returns
    /// that one's descriptor.
    pub(super) fn remove(&mut self, slot: usize) -> Option<RawFd> {
        if slot >= self.regs.len() {
            return None;
        }
        let reg = self.regs.swap_remove(slot);
        if let (Some(kernel), false) = (&self.kernel, reg.armed.is_none()) {
            // Errors as in `modify`: a registration that lingers is found by its
            // next event.
            let _ = kernel.delete(reg.fd, reg.armed);
        }
        self.regs.get(slot).map(|r| r.fd)
    }

    /// One wait: the ready sources go into `events`, those found invalid into
    /// `invalid` as well.
    pub(super) fn wait<K: Clone>(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Events<K>,
        entries: &[Option<Entry<K>>],
        invalid: &mut Vec<RawFd>,
    ) -> io::Result<()> {
        let deadline = Deadline::after(timeout);
        let mut timeout = timeout;
        loop {
            if self.rebuild {
                self.rebuild()?;
            }
            let kernel = open(&mut self.kernel)?;
            self.turn += 1;
            let turn = self.turn;
            for (fd, generation) in self.pending.drain(..) {
                let Some(entry) = lookup(entries, fd) else {
                    continue; // unregistered since
                };
                match self.regs.get_mut(entry.slot) {
                    Some(reg) if reg.generation == generation && reg.turn != turn => {
                        reg.turn = turn;
                        reg.at = events.len();
                    }
                    _ => continue, // registered anew since, or listed twice
                }
                events.push(entry.key.clone(), Readiness::INVALID);
                invalid.push(fd);
            }
            // Something to report already: only collect what is ready now.
            let t = if events.is_empty() {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            let n = kernel.wait(&mut self.buf, t)?;
            for event in &self.buf[..n] {
                let (token, mut readiness) = Q::decode(event);
                let fd = token as u32 as RawFd;
                let generation = (token >> 32) as u32;
                let found = lookup(entries, fd)
                    .and_then(|entry| Some((entry, self.regs.get_mut(entry.slot)?)))
                    .filter(|(_, reg)| reg.generation == generation && !reg.armed.is_none());
                let Some((entry, reg)) = found else {
                    // A registration whose removal failed, its number closed first
                    // while a `dup` keeps its file open: not to be reported, and
                    // out of reach of epoll_ctl. Build the set anew without it.
                    self.rebuild = true;
                    continue;
                };
                if Q::FOLLOWS_FILE && sys::file_id(fd).ok() != Some(reg.file) {
                    // The number was closed, or names another file now, while a
                    // `dup` keeps the registered file open. Not this key's
                    // readiness: the source is reported invalid, as a closed
                    // descriptor is on every backend, and the set built anew.
                    readiness = Readiness::INVALID;
                    self.rebuild = true;
                }
                if readiness.is_invalid() {
                    invalid.push(fd);
                }
                if reg.turn == turn {
                    events.merge(reg.at, readiness);
                } else {
                    reg.turn = turn;
                    reg.at = events.len();
                    events.push(entry.key.clone(), readiness);
                }
            }
            // Only stale registrations woke the wait: rebuild, and wait the rest.
            if !events.is_empty() || n == 0 || !self.rebuild {
                return Ok(());
            }
            timeout = deadline.remaining();
        }
    }

    /// A new kernel queue with every armed registration whose number still names
    /// its file; the others are reported invalid by the next wait. The old queue
    /// is closed, and with it whatever registrations could not be reached. Costs
    /// one call per armed source: it happens only after a descriptor was closed
    /// before it was unregistered.
    fn rebuild(&mut self) -> io::Result<()> {
        let fresh = Q::open()?;
        let mut lost = Vec::new();
        for (slot, reg) in self.regs.iter().enumerate() {
            if reg.armed.is_none() {
                continue;
            }
            if Q::FOLLOWS_FILE && sys::file_id(reg.fd).ok() != Some(reg.file) {
                lost.push(slot);
                continue;
            }
            match fresh.add(reg.fd, reg.armed, token(reg.fd, reg.generation)) {
                Ok(()) => {}
                Err(e) if is(&e, libc::EBADF) => lost.push(slot),
                Err(e) => return Err(e),
            }
        }
        for slot in lost {
            if let Some(reg) = self.regs.get_mut(slot) {
                reg.armed = Interest::NONE;
                self.pending.push((reg.fd, reg.generation));
            }
        }
        self.kernel = Some(fresh);
        self.rebuild = false;
        Ok(())
    }
}
