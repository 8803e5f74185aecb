//! tokio's current-thread runtime, a task per connection. Line mode reads into the
//! connection's buffer and writes at most `MESSAGES_PER_TURN` whole lines per write,
//! yielding to the other tasks between such writes; byte mode writes back what one
//! read returned. tokio clears a socket's readiness after a short read, so the next
//! read waits in epoll instead of failing with `EAGAIN`.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use unp_select::echo::MAXLINE;

use super::echobuf::EchoBuf;
use super::Mode;

async fn bytes(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; MAXLINE];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn lines(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = EchoBuf::new();
    loop {
        let n = stream.read(buf.space()).await?;
        if n == 0 {
            // EOF: echo an unterminated tail.
            return stream.write_all(buf.data()).await;
        }
        buf.filled(n);
        loop {
            let (len, more) = buf.lines();
            if len > 0 {
                stream.write_all(&buf.data()[..len]).await?;
                buf.consume(len);
            }
            if !more {
                break;
            }
            tokio::task::yield_now().await; // the others' turn
        }
    }
}

pub fn run(addr: &str, mode: Mode, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(listener.local_addr()?);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = match mode {
                    Mode::Bytes => bytes(stream).await,
                    Mode::Lines => lines(stream).await,
                };
            });
        }
    })
}
