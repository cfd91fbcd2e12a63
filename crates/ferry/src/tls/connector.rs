//! The TLS handshake over a connected socket, for our own async clients.

use super::config::client_config;
use super::explain::handshake_failure;
use super::TlsError;
use crate::url::ServerUrl;
use ferry_repl::{BoxedStream, StreamUpgrade, UpgradeFuture};
use rustls::pki_types::ServerName;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Wraps a connected socket in TLS for one server. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    /// Bound on the handshake; a plaintext port never answers a ClientHello.
    handshake_timeout: Duration,
    /// Named in messages.
    ca_file: Option<PathBuf>,
    flag_prefix: &'static str,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsConnector({:?})", self.server_name)
    }
}

impl TlsConnector {
    /// For the server at `url`; `None` when its URL is not `rediss://`.
    pub fn for_url(url: &ServerUrl, handshake_timeout: Duration) -> Result<Option<Self>, TlsError> {
        let Some(settings) = &url.tls else {
            return Ok(None);
        };
        let name = settings.server_name.as_deref().unwrap_or(&url.host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::ServerName(name.to_owned()))?;
        Ok(Some(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(client_config(settings)?)),
            server_name,
            handshake_timeout,
            ca_file: settings.ca_file.clone(),
            flag_prefix: settings.flag_prefix,
        }))
    }

    /// The TLS handshake over `tcp`; its error is one line saying what to fix.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<BoxedStream> {
        let handshake = self.inner.connect(self.server_name.clone(), tcp);
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(error)) => Err(io::Error::new(
                error.kind(),
                handshake_failure(&error, self.ca_file.as_deref(), self.flag_prefix),
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer to the TLS handshake within {:?}: is this a plaintext port? \
                     use redis:// (or valkey://)",
                    self.handshake_timeout
                ),
            )),
        }
    }
}

impl StreamUpgrade for TlsConnector {
    fn upgrade(&self, tcp: TcpStream) -> UpgradeFuture<'_> {
        Box::pin(self.connect(tcp))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{server_config, TlsSettings};
    use super::*;

    /// Our connector against a listener built by [`server_config`] that requires client
    /// certificates: the two builders agree, and the relay's listener can use the latter.
    #[tokio::test]
    async fn client_and_server_configurations_shake_hands() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pki = ferry_testkit::tls::TestPki::generate().unwrap();
        let server = server_config(&pki.server.cert, &pki.server.key, Some(&pki.ca)).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let serve = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await?;
            let mut word = [0u8; 4];
            tls.read_exact(&mut word).await?;
            tls.write_all(&word).await?;
            tls.flush().await?;
            io::Result::Ok(word)
        });
        let mut url = ServerUrl::parse(&format!("rediss://127.0.0.1:{port}")).unwrap();
        url.tls = Some(TlsSettings {
            ca_file: Some(pki.ca.clone()),
            cert_file: Some(pki.client.cert.clone()),
            key_file: Some(pki.client.key.clone()),
            ..TlsSettings::default()
        });
        let connector = TlsConnector::for_url(&url, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut stream = connector.connect(tcp).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        assert_eq!(&serve.await.unwrap().unwrap(), b"ping");
    }
}
