//! A `StreamUpgrade` (TLS, in ferry) is applied to the socket before anything is sent, its
//! failure is the connection's failure, and it cannot hang past the connect timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferry_repl::{
    BoxedStream, ConnectOptions, ReplError, ReplicaConnection, StreamUpgrade, UpgradeFuture,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Counts the bytes written through it: proof that the link used the upgraded stream.
struct Counting {
    inner: TcpStream,
    written: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = self.written.clone();
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            written.fetch_add(*n, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug)]
enum Upgrade {
    Count(Arc<AtomicUsize>),
    Refuse,
    Hang,
}

impl StreamUpgrade for Upgrade {
    fn upgrade(&self, tcp: TcpStream) -> UpgradeFuture<'_> {
        Box::pin(async move {
            match self {
                Upgrade::Count(written) => Ok(Box::new(Counting {
                    inner: tcp,
                    written: written.clone(),
                }) as BoxedStream),
                Upgrade::Refuse => Err(io::Error::other("certificate verify failed: test")),
                Upgrade::Hang => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            }
        })
    }
}

fn options(upgrade: Upgrade) -> ConnectOptions {
    ConnectOptions {
        upgrade: Some(Arc::new(upgrade)),
        connect_timeout: Duration::from_millis(500),
        ..ConnectOptions::default()
    }
}

/// Answers PING and REPLCONF until the replica stops sending.
async fn primary(listener: TcpListener) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buf = vec![0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // One reply per command that arrived (each starts with '*'; the
                // handshake's arguments hold none).
                let commands = buf[..n].iter().filter(|&&b| b == b'*').count();
                for _ in 0..commands {
                    let _ = stream.write_all(b"+OK\r\n").await;
                }
            }
        }
    }
}

#[tokio::test]
async fn the_handshake_runs_over_the_upgraded_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(primary(listener));
    let written = Arc::new(AtomicUsize::new(0));
    let connection = ReplicaConnection::connect(&address, options(Upgrade::Count(written.clone())))
        .await
        .expect("handshake");
    drop(connection);
    // PING and the REPLCONFs went through the wrapper.
    assert!(written.load(Ordering::Relaxed) > 40, "{written:?}");
}

#[tokio::test]
async fn a_refused_upgrade_is_a_connect_error_with_its_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let Err(error) = ReplicaConnection::connect(&address, options(Upgrade::Refuse)).await else {
        panic!("connected");
    };
    assert!(matches!(error, ReplError::Connect { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("certificate verify failed: test"),
        "{error}"
    );
}

#[tokio::test]
async fn an_upgrade_that_never_ends_is_bounded_by_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let started = Instant::now();
    let Err(error) = ReplicaConnection::connect(&address, options(Upgrade::Hang)).await else {
        panic!("connected");
    };
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    assert!(error.to_string().contains("TLS handshake"), "{error}");
    drop(listener);
}
