//! UNP's select-based echo client (`str_cli`, Figure 6.13): standard input and the
//! socket in one `select`, `shutdown(SHUT_WR)` at the end of input, and every echo
//! still in flight read before exiting.
//!
//! ```text
//! printf 'one\ntwo\n' | cargo run --example echo_client -- [ADDR]
//! ```

use std::io::{self};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use unp_select::{select, writen, FdSet};

#[path = "common/cli.rs"]
mod cli;
use cli::{errln, or_usage, parse_addr};

const USAGE: &str = "\
usage: echo_client [ADDR]

UNP's str_cli (Figure 6.13): sends standard input to the echo server at ADDR (default
127.0.0.1:9877, UNP's SERV_PORT) and prints what comes back. At the end of input it
half-closes the connection (shutdown SHUT_WR) and keeps reading until the server
closes, so no echo is lost.

options:
  -h, --help   print this help

exit status: 0 when the server closed after the last echo, 1 on a network error,
2 on a usage error.";

const MAXLINE: usize = 4096;

fn str_cli(sock: &TcpStream) -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let (infd, sockfd) = (stdin.as_raw_fd(), sock.as_raw_fd());
    let mut buf = [0u8; MAXLINE];
    let mut stdineof = false;
    let mut rset = FdSet::new();
    loop {
        rset.clear();
        if !stdineof {
            rset.insert(infd)?;
        }
        rset.insert(sockfd)?;
        match select(Some(&mut rset), None, None, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if rset.contains(sockfd) {
            // Raw read(2), not a buffered reader: select knows nothing of user buffers.
            let n = nix::unistd::read(sock, &mut buf)?;
            if n == 0 {
                if stdineof {
                    return Ok(()); // normal termination
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "str_cli: server terminated prematurely",
                ));
            }
            writen(&stdout, &buf[..n])?;
        }
        if rset.contains(infd) {
            let n = nix::unistd::read(&stdin, &mut buf)?;
            if n == 0 {
                stdineof = true;
                sock.shutdown(Shutdown::Write)?; // send FIN, keep reading
                continue;
            }
            writen(sock, &buf[..n])?;
        }
    }
}

fn main() -> ExitCode {
    let parsed = parse_addr(std::env::args().skip(1));
    let (addr, addrs) = match or_usage("echo_client", USAGE, parsed) {
        Ok(target) => target,
        Err(status) => return status,
    };
    match addrs
        .and_then(|addrs| TcpStream::connect(&addrs[..]))
        .and_then(|sock| str_cli(&sock))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln(format_args!("echo_client: {addr}: {e}"));
            ExitCode::FAILURE
        }
    }
}
