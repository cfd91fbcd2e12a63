//! A loopback port that refuses connections for as long as it is held.
//!
//! A port found by binding a listener and dropping it is free again at once, and a server
//! that another test starts meanwhile may take it: the "unreachable" address then answers.
//! A socket bound without `listen` keeps the port ours while the kernel refuses every
//! connection to it.

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr};

pub struct ClosedPort {
    _socket: Socket,
    port: u16,
}

impl ClosedPort {
    pub fn reserve() -> Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).context("socket")?;
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .context("cannot bind a loopback port")?;
        let port = socket
            .local_addr()?
            .as_socket()
            .context("a loopback socket has an address")?
            .port();
        Ok(Self {
            _socket: socket,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_refused_while_it_is_held() {
        let closed = ClosedPort::reserve().unwrap();
        let error = std::net::TcpStream::connect(("127.0.0.1", closed.port())).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
        // Nobody else can listen on it meanwhile.
        assert!(std::net::TcpListener::bind(("127.0.0.1", closed.port())).is_err());
    }
}
