//! Accepts replica connections; each gets its own session task, after the TLS
//! handshake when the listener serves TLS.

use super::{session, Relay};
use crate::tls::TlsAcceptor;
use ferry_repl::BoxedStream;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Runs until the task is dropped. Accept errors (out of file descriptors) are logged
/// and retried after a pause rather than ending the relay.
pub async fn accept(relay: Arc<Relay>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                tokio::spawn(open(relay.clone(), socket, peer, tls.clone()));
            }
            Err(error) => {
                relay.log(format!("cannot accept a connection: {error}"));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// The handshake, in the connection's own task so that a slow peer holds up no other;
/// a refused peer gets one log line naming its address.
async fn open(relay: Arc<Relay>, socket: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
    let _ = socket.set_nodelay(true);
    let stream: BoxedStream = match tls {
        None => Box::new(socket),
        Some(tls) => match tls.accept(socket).await {
            Ok(stream) => stream,
            Err(reason) => {
                relay.log(format!(
                    "client {peer}: TLS refused: {reason}; connection closed"
                ));
                return;
            }
        },
    };
    session::serve(relay, stream, peer).await;
}
