//! The two halves of a command connection. Plain TCP splits without a lock, so the pipe's
//! writer and reply reader never wait on each other; a TLS stream has one session state
//! for both directions and is split behind tokio's lock.

use ferry_repl::BoxedStream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub enum ReadSide {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<BoxedStream>),
}

pub enum WriteSide {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<BoxedStream>),
}

pub fn split_tcp(stream: TcpStream) -> (ReadSide, WriteSide) {
    let (read, write) = stream.into_split();
    (ReadSide::Tcp(read), WriteSide::Tcp(write))
}

pub fn split_tls(stream: BoxedStream) -> (ReadSide, WriteSide) {
    let (read, write) = tokio::io::split(stream);
    (ReadSide::Tls(read), WriteSide::Tls(write))
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadSide::Tcp(read) => Pin::new(read).poll_read(cx, buf),
            ReadSide::Tls(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(write) => Pin::new(write).poll_write(cx, buf),
            WriteSide::Tls(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(write) => Pin::new(write).poll_flush(cx),
            WriteSide::Tls(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(write) => Pin::new(write).poll_shutdown(cx),
            WriteSide::Tls(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}
