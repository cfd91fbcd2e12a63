//! A tiny HTTP/1.1 listener: `GET /metrics` (Prometheus text), `GET /status` (JSON) and
//! `POST /stop` (what `ferry cutover` uses to end the run once the target is live: the
//! run drains and exits as on SIGTERM); anything else is 404. One request per connection,
//! then close.

use super::metrics::Stats;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request head larger than this is refused: the listener answers two fixed paths.
const MAX_REQUEST: usize = 8 << 10;
/// A client that does not finish its request in this time is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (port 0 picks a free port) and serves in the background.
pub async fn serve(addr: SocketAddr, stats: Arc<Stats>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                // Out of descriptors and the like: pause rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let stats = stats.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(socket, &stats)).await;
            });
        }
    });
    Ok(bound)
}

async fn answer(mut socket: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
        if head.len() > MAX_REQUEST {
            return respond(
                &mut socket,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => {
            let body = stats.prometheus();
            respond(&mut socket, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/status") => {
            let body = serde_json::to_string_pretty(&stats.status()).unwrap_or_default();
            respond(&mut socket, "200 OK", "application/json", &body).await
        }
        ("POST", "/stop") => {
            stats.request_stop();
            respond(&mut socket, "202 Accepted", "text/plain", "stopping\n").await
        }
        ("GET", _) => respond(&mut socket, "404 Not Found", "text/plain", "not found\n").await,
        _ => respond(&mut socket, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn respond(
    socket: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}
