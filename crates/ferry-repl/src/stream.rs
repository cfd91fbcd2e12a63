//! The byte stream under a replica link: the TCP connection itself, or what a
//! [`StreamUpgrade`] makes of it (TLS, in ferry). This crate knows nothing of certificates:
//! whoever needs TLS hands in an upgrade that wraps the connected socket.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// Any bidirectional byte stream a link can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// The stream a link runs over, whatever it is.
pub type BoxedStream = Box<dyn AsyncStream>;
/// The reading and writing halves of a link (the ACK task owns the writing one).
pub type StreamReader = ReadHalf<BoxedStream>;
/// The writing half of a link.
pub type StreamWriter = WriteHalf<BoxedStream>;

/// What [`StreamUpgrade::upgrade`] returns: the upgraded stream, once its handshake is done.
pub type UpgradeFuture<'a> = Pin<Box<dyn Future<Output = io::Result<BoxedStream>> + Send + 'a>>;

/// Turns a freshly connected TCP socket into the stream to speak RESP over, e.g. by a TLS
/// handshake. It should bound its own time by the connect timeout; the link cuts it off a
/// second later. Its error should say in one line what went wrong (it is shown as the
/// cause of [`crate::ReplError::Connect`]).
pub trait StreamUpgrade: fmt::Debug + Send + Sync {
    /// Upgrades the connected socket `tcp`.
    fn upgrade(&self, tcp: TcpStream) -> UpgradeFuture<'_>;
}
