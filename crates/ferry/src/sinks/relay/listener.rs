//! Accepts replica connections; each gets its own session task.

use super::{session, Relay};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Runs until the task is dropped. Accept errors (out of file descriptors) are logged
/// and retried after a pause rather than ending the relay.
pub async fn accept(relay: Arc<Relay>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                tokio::spawn(session::serve(relay.clone(), socket, peer));
            }
            Err(error) => {
                relay.log(format!("cannot accept a connection: {error}"));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}
