//! The main demo: UNP 16.6's RST-before-accept race, with the book's blocking
//! listener and with the nonblocking fix, against the same scripted clients.
//!
//! ```text
//! cargo run --example accept_race
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use unp_select::echo::{Echo, EchoServer};
use unp_select::poll::{poll, PollFd, PollFlags};
use unp_select::server::{Config, Stats};

const USAGE: &str = "\
usage: accept_race [--delay MS] [--wait MS]

Runs UNP's select echo server twice on 127.0.0.1, first with the book's blocking
listener, then with the nonblocking listener of UNP 16.6, and drives both with the
same scripted clients:

  1. client A connects and is echoed;
  2. the book's RST client connects and aborts (SO_LINGER {on, 0} + close: an
     RST) while the server sleeps between select and accept; Linux still hands
     the reset connection to accept, so even the book's server does not hang here;
  3. a second accepter takes a new connection off the queue in the same window
     (how the book's hang shows on Linux, which keeps reset connections queued);
     then A sends a line and waits for its echo.

options:
  --delay MS   the server's sleep between select and accept (default 500)
  --wait MS    how long A waits for its echo before calling the server stuck
               (default 3000)
  -h, --help   print this help

exit status: 0 if the book's server stalled and the fixed one kept serving, 1
otherwise, 2 on a usage error.";

struct Opts {
    delay: Duration,
    wait: Duration,
}

/// The command line: `Ok(None)` for `--help`.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut opts = Opts {
        delay: Duration::from_millis(500),
        wait: Duration::from_millis(3000),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut ms = |name: &str| -> Result<Duration, String> {
            match it.next() {
                None => Err(format!("{name} needs a number of milliseconds")),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
                    _ => Err(format!(
                        "{name} {v}: expected a number of milliseconds, at least 1"
                    )),
                },
            }
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--delay" => opts.delay = ms(&a)?,
            "--wait" => opts.wait = ms(&a)?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                return Err(format!(
                    "unexpected argument {s} (this demo takes no operands)"
                ))
            }
        }
    }
    Ok(Some(opts))
}

/// Prints to stdout like `println!`, but a closed stdout (`accept_race | head -1`)
/// is no reason to panic: the rest of the report is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = io::stdout().lock();
        let _ = writeln!(out, $($arg)*).and_then(|()| out.flush());
    }};
}

/// A line client whose reads give up after a timeout.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client { stream, reader })
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(line.as_bytes())
    }

    /// Waits up to `limit` for one line; `Ok(None)` if none came.
    fn recv(&mut self, limit: Duration) -> io::Result<Option<String>> {
        self.stream.set_read_timeout(Some(limit))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(_) => Ok(Some(line)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// A competing accepter: when the shared listener becomes readable it waits `after`
/// (so the server's `select` has surely seen the connection too) and takes it off
/// the queue, inside the server's accept delay.
fn steal_next(listener: TcpListener, after: Duration) -> thread::JoinHandle<io::Result<TcpStream>> {
    thread::spawn(move || {
        let mut fds = [PollFd::new(listener.as_raw_fd(), PollFlags::POLLIN)];
        poll(&mut fds, Some(Duration::from_secs(10)))?;
        thread::sleep(after);
        loop {
            match listener.accept() {
                Ok((s, _)) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// Runs the script against one server; returns whether A was served in step 3.
fn act(nonblocking: bool, opts: &Opts) -> io::Result<bool> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let thief = listener.try_clone()?;
    let config = Config::book()
        .with_nonblocking_listener(nonblocking)
        .with_accept_delay(Some(opts.delay));
    let server = EchoServer::new(listener, Echo::Bytes, config)?;
    let addr = server.local_addr()?;
    let stop = server.shutdown_handle();
    let thread = thread::spawn(move || server.run());
    let limit = opts.wait;

    let start = Instant::now();
    let mut a = Client::connect(addr)?;
    a.send("hello\n")?;
    match a.recv(limit)? {
        Some(_) => say!(
            "  1. client A connects and is echoed after {} (the server sleeps {} before accept)",
            ms(start.elapsed()),
            ms(opts.delay)
        ),
        None => say!("  1. client A was not echoed within {}", ms(limit)),
    }

    let rst = TcpStream::connect(addr)?;
    unp_select::linger::abort(rst)?;
    thread::sleep(opts.delay + Duration::from_millis(100));
    let t = Instant::now();
    a.send("after the RST\n")?;
    match a.recv(limit)? {
        Some(_) => {
            say!(
                "  2. the book's RST client connects and resets during the accept delay; \
                 A is still echoed, in {}",
                ms(t.elapsed())
            );
            if !nonblocking && std::env::consts::OS == "linux" {
                say!(
                    "     why no hang: Linux keeps a connection reset before accept in the queue \
                     and hands it to accept, so accept returns it instead of blocking; the \
                     book's Berkeley kernels dropped it (docs/rst-accept-race.md)"
                );
            }
        }
        None => say!(
            "  2. after the book's RST client reset, A got no echo within {}",
            ms(limit)
        ),
    }

    let taker = steal_next(thief, opts.delay / 2);
    let _victim = TcpStream::connect(addr)?;
    let _taken = taker
        .join()
        .map_err(|_| io::Error::other("the competing accepter panicked"))??;
    let t = Instant::now();
    a.send("anyone there?\n")?;
    let served = match a.recv(limit)? {
        Some(_) => {
            say!(
                "  3. a second accepter empties the queue between select and accept; \
                 A is echoed in {}: accept said EAGAIN and the loop went back to select",
                ms(t.elapsed())
            );
            true
        }
        None => {
            say!(
                "  3. a second accepter empties the queue between select and accept; \
                 A gets NO echo for {}: the server sleeps in a blocking accept(2) and \
                 every client starves",
                ms(t.elapsed())
            );
            let t = Instant::now();
            let _unstick = TcpStream::connect(addr)?;
            let late = a.recv(limit)?;
            say!(
                "     only a new connection wakes it: A's echo arrives {} after that \
                 client connected{}",
                ms(t.elapsed()),
                if late.is_some() {
                    ""
                } else {
                    " (or not at all)"
                }
            );
            false
        }
    };

    stop.shutdown();
    let stats: Stats = thread
        .join()
        .map_err(|_| io::Error::other("the server thread panicked"))??;
    say!(
        "     server counters: {} accepted, {} empty accepts (EAGAIN {}, ECONNABORTED {}), \
         {} closed by reset, {} lines echoed",
        stats.accepted,
        stats.empty_accepts.total(),
        stats.empty_accepts.would_block,
        stats.empty_accepts.aborted,
        stats.closed_reset,
        stats.messages_sent
    );
    Ok(served)
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            say!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("accept_race: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    say!(
        "UNP 16.6: the RST-before-accept race, on {}\n",
        std::env::consts::OS
    );
    let started = Instant::now();
    let mut results = Vec::new();
    for (nonblocking, title) in [
        (false, "The book's server (blocking listener):"),
        (true, "The fixed server (nonblocking listener, UNP 16.6):"),
    ] {
        say!("{title}");
        match act(nonblocking, &opts) {
            Ok(served) => results.push(served),
            Err(e) => {
                eprintln!("accept_race: {e}");
                return ExitCode::FAILURE;
            }
        }
        say!();
    }
    let verdict = |served: bool| if served { "kept serving" } else { "stalled" };
    say!(
        "Result: the book's version {}; the fixed version {}. ({} in all)",
        verdict(results[0]),
        verdict(results[1]),
        ms(started.elapsed())
    );
    if results == [false, true] {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
