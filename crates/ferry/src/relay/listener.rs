//! Accepts replica connections; each gets its own session task, after the TLS
//! handshake when the listener serves TLS.

use super::{gate, session, Relay};
use crate::tls::TlsAcceptor;
use ferry_repl::BoxedStream;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Runs until the task is dropped. Accept errors (out of file descriptors) are logged
/// and retried after a pause rather than ending the relay. A connection beyond
/// [`gate::MAX_HANDSHAKING`] still in their handshake is closed at once.
pub async fn accept(relay: Arc<Relay>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    let mut report = tokio::time::interval(gate::REFUSAL_LOG_EVERY);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = report.tick() => {
                relay.log_overdue_refusals();
                continue;
            }
        };
        match accepted {
            Ok((socket, peer)) => match relay.gate.enter() {
                Some(slot) => {
                    tokio::spawn(open(relay.clone(), socket, peer, tls.clone(), slot));
                }
                None => relay.log_refusal(
                    "connections refused",
                    format!(
                        "client {peer}: refused: {} connections are already in their \
                         handshake; connection closed",
                        gate::MAX_HANDSHAKING
                    ),
                ),
            },
            Err(error) => {
                relay.log(format!("cannot accept a connection: {error}"));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// The handshake, in the connection's own task so that a slow peer holds up no other;
/// a refused peer gets one log line naming its address.
async fn open(
    relay: Arc<Relay>,
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    slot: gate::Slot,
) {
    let _ = socket.set_nodelay(true);
    let stream: BoxedStream = match tls {
        None => Box::new(socket),
        Some(tls) => match tls.accept(socket).await {
            Ok(stream) => stream,
            Err(reason) => {
                // Each reason a kind of its own: they say different things to fix.
                relay.log_refusal(
                    &format!("TLS refusals ({reason})"),
                    format!("client {peer}: TLS refused: {reason}; connection closed"),
                );
                return;
            }
        },
    };
    session::serve(relay, stream, peer, slot).await;
}
