//! A single-threaded mio (epoll, edge-triggered) echo server in the shape of
//! `EchoServer`: per turn a connection gets at most one `read` and one `write`;
//! line mode echoes at most `MESSAGES_PER_TURN` whole lines per write, straight from
//! the connection's buffer; byte mode echoes what one read of a shared buffer
//! returned. A read that returns less than it asked for drained the socket (as
//! tokio assumes), so there is no read that ends in `EAGAIN` per event; a full read
//! keeps the connection in the backlog, served next turn without sleeping.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use unp_select::echo::MAXLINE;

use super::echobuf::EchoBuf;
use super::Mode;

struct Conn {
    stream: TcpStream,
    /// Line mode: input and echoes; byte mode: only echoes the kernel did not take.
    buf: EchoBuf,
    /// `buf.data()[..owed]` is echo the kernel has not taken.
    owed: usize,
    /// An edge said readable and no short read or `EAGAIN` has drained it since.
    readable: bool,
    writable: bool,
    served_in: u64,
}

/// What a turn left the connection waiting for.
enum After {
    /// An event (readable, writable).
    Event,
    /// Nothing: serve it next turn without sleeping.
    Again,
    Close,
}

fn gone(e: &io::Error) -> bool {
    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

impl Conn {
    fn turn(&mut self, mode: Mode, scratch: &mut [u8]) -> After {
        if self.owed > 0 {
            if !self.writable {
                return After::Event;
            }
            match self.stream.write(&self.buf.data()[..self.owed]) {
                Ok(n) => {
                    self.buf.consume(n);
                    self.owed -= n;
                }
                Err(e) if gone(&e) => return After::Close,
                Err(_) => {}
            }
            if self.owed > 0 {
                self.writable = false;
                return After::Event;
            }
            let lines = mode == Mode::Lines && self.buf.lines().0 > 0;
            return if lines || self.readable {
                After::Again
            } else {
                After::Event
            };
        }
        match mode {
            Mode::Bytes => {
                if !self.readable {
                    return After::Event;
                }
                let n = match self.stream.read(scratch) {
                    Ok(0) => return After::Close,
                    Ok(n) => n,
                    Err(e) if gone(&e) => return After::Close,
                    Err(_) => {
                        self.readable = false;
                        return After::Event;
                    }
                };
                if n < scratch.len() {
                    self.readable = false;
                }
                let w = match self.stream.write(&scratch[..n]) {
                    Ok(w) => w,
                    Err(e) if gone(&e) => return After::Close,
                    Err(_) => 0,
                };
                if w < n {
                    let rest = &scratch[w..n];
                    self.buf.space()[..rest.len()].copy_from_slice(rest);
                    self.buf.filled(rest.len());
                    self.owed = rest.len();
                    self.writable = false;
                    return After::Event;
                }
                if self.readable {
                    After::Again
                } else {
                    After::Event
                }
            }
            Mode::Lines => {
                if self.readable {
                    let space = self.buf.space();
                    let want = space.len();
                    if want > 0 {
                        match self.stream.read(space) {
                            Ok(0) => {
                                // EOF: echo an unterminated tail, then close.
                                let _ = self.stream.write(self.buf.data());
                                return After::Close;
                            }
                            Ok(n) => {
                                self.buf.filled(n);
                                if n < want {
                                    self.readable = false;
                                }
                            }
                            Err(e) if gone(&e) => return After::Close,
                            Err(_) => self.readable = false,
                        }
                    }
                }
                let (len, more) = self.buf.lines();
                if len > 0 {
                    let n = match self.stream.write(&self.buf.data()[..len]) {
                        Ok(n) => n,
                        Err(e) if gone(&e) => return After::Close,
                        Err(_) => 0,
                    };
                    self.buf.consume(n);
                    if n < len {
                        self.owed = len - n;
                        self.writable = false;
                        return After::Event;
                    }
                }
                if more || self.readable {
                    After::Again
                } else {
                    After::Event
                }
            }
        }
    }
}

pub fn run(addr: &str, mode: Mode, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    const LISTENER: Token = Token(usize::MAX);
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "bad address"))?;
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    ready(listener.local_addr()?);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut backlog: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; MAXLINE];
    let mut turn = 0u64;
    loop {
        turn += 1;
        let timeout = (!backlog.is_empty()).then_some(Duration::ZERO);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut work = std::mem::take(&mut backlog);
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut stream,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                stream,
                                buf: EchoBuf::new(),
                                owed: 0,
                                readable: false,
                                writable: true,
                                served_in: 0,
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                            ) => {}
                        Err(_) => break, // e.g. EMFILE: try again on the next event
                    }
                }
                continue;
            }
            let i = ev.token().0;
            if let Some(c) = conns.get_mut(i).and_then(Option::as_mut) {
                c.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                c.writable |= ev.is_writable() || ev.is_error();
                work.push(i);
            }
        }
        for i in work {
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if c.served_in == turn {
                continue;
            }
            c.served_in = turn;
            match c.turn(mode, &mut scratch) {
                After::Event => {}
                After::Again => backlog.push(i),
                After::Close => {
                    if let Some(mut c) = conns[i].take() {
                        let _ = poll.registry().deregister(&mut c.stream);
                    }
                    free.push(i);
                }
            }
        }
    }
}
