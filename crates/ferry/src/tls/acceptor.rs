//! The server side of TLS for ferry's own listener (the relay's): the handshake with a
//! connecting replica, bounded in time, and why a replica was refused, in one line.

use super::config::server_config;
use super::TlsError;
use ferry_repl::BoxedStream;
use rustls::{AlertDescription, CertificateError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpStream;

/// The files a TLS listener is built from (`--listen-tls-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// Wraps accepted sockets in TLS. Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    /// Bound on the handshake: a peer that never sends its ClientHello is let go.
    handshake_timeout: Duration,
    /// Named in messages.
    client_ca: Option<PathBuf>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsAcceptor(client CA {:?})", self.client_ca)
    }
}

impl TlsAcceptor {
    /// Reads and checks the files now, so that a bad one stops ferry at start.
    pub fn new(files: &ListenerTls, handshake_timeout: Duration) -> Result<Self, TlsError> {
        let config = server_config(
            &files.cert_file,
            &files.key_file,
            files.client_ca.as_deref(),
        )?;
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
            handshake_timeout,
            client_ca: files.client_ca.clone(),
        })
    }

    /// The handshake with a connected peer; the error says why it failed, in one line.
    pub async fn accept(&self, tcp: TcpStream) -> Result<BoxedStream, HandshakeError> {
        match tokio::time::timeout(self.handshake_timeout, self.inner.accept(tcp)).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(error)) => Err(HandshakeError::new(error, self.client_ca.as_deref())),
            Err(_) => Err(HandshakeError::Timeout(self.handshake_timeout)),
        }
    }
}

/// Why a peer's handshake failed, for the person running the relay: each says what the
/// replica (or the relay's files) must change. The I/O and rustls errors are named in
/// their messages, so they are not sources too (a joined chain would repeat them).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS handshake within {0:?} (is it set to tls-replication yes?)")]
    Timeout(Duration),
    #[error("closed the connection during the TLS handshake")]
    Closed,
    #[error("TLS handshake failed ({0})")]
    Io(io::Error),
    #[error(
        "presented no client certificate; {} requires one (the replica's \
         tls-client-cert-file, or its tls-cert-file)",
        ca_flag(.client_ca)
    )]
    NoClientCertificate { client_ca: Option<PathBuf> },
    #[error("its client certificate is not signed by {}", ca_flag(.client_ca))]
    UnknownIssuer { client_ca: Option<PathBuf> },
    #[error("its client certificate has expired")]
    Expired,
    #[error(
        "its certificate is not for client authentication (extended key usage \
         clientAuth); give the replica a client certificate with tls-client-cert-file"
    )]
    NotForClients,
    #[error("its client certificate was refused ({0:?})")]
    CertificateRefused(CertificateError),
    #[error(
        "it refused the relay's certificate (TLS alert: {0:?}): its \
         tls-ca-cert-file must hold the CA that signed --listen-tls-cert"
    )]
    RelayCertificateRefused(AlertDescription),
    #[error("it ended the TLS handshake (alert: {0:?})")]
    Alert(AlertDescription),
    #[error("did not speak TLS (a replica needs tls-replication yes)")]
    NotTls,
    #[error("TLS handshake failed ({0})")]
    Tls(rustls::Error),
}

impl HandshakeError {
    /// What the failed handshake's `error` means, given the CA clients must be signed by.
    fn new(error: io::Error, client_ca: Option<&Path>) -> Self {
        let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return match error.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted => HandshakeError::Closed,
                _ => HandshakeError::Io(error),
            };
        };
        let client_ca = client_ca.map(Path::to_path_buf);
        use rustls::Error as E;
        match tls {
            E::NoCertificatesPresented => HandshakeError::NoClientCertificate { client_ca },
            E::InvalidCertificate(CertificateError::UnknownIssuer) => {
                HandshakeError::UnknownIssuer { client_ca }
            }
            E::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => HandshakeError::Expired,
            E::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            ) => HandshakeError::NotForClients,
            E::InvalidCertificate(other) => HandshakeError::CertificateRefused(other.clone()),
            E::AlertReceived(
                alert @ (AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown),
            ) => HandshakeError::RelayCertificateRefused(*alert),
            E::AlertReceived(alert) => HandshakeError::Alert(*alert),
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => HandshakeError::NotTls,
            other => HandshakeError::Tls(other.clone()),
        }
    }
}

/// `--listen-tls-ca`, with its file when one is set.
fn ca_flag(client_ca: &Option<PathBuf>) -> String {
    match client_ca {
        Some(path) => format!("--listen-tls-ca {}", path.display()),
        None => "--listen-tls-ca".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    fn refusal(error: io::Error, client_ca: Option<&Path>) -> String {
        HandshakeError::new(error, client_ca).to_string()
    }

    #[test]
    fn refusals_say_what_the_replica_lacks() {
        let ca = Some(Path::new("/etc/ferry/ca.pem"));
        let none = refusal(io(rustls::Error::NoCertificatesPresented), ca);
        assert_eq!(
            none,
            "presented no client certificate; --listen-tls-ca /etc/ferry/ca.pem requires one \
             (the replica's tls-client-cert-file, or its tls-cert-file)"
        );
        let alert = refusal(
            io(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
            None,
        );
        assert_eq!(
            alert,
            "it refused the relay's certificate (TLS alert: UnknownCA): its tls-ca-cert-file \
             must hold the CA that signed --listen-tls-cert"
        );
        let foreign = refusal(
            io(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            ca,
        );
        assert!(
            foreign.contains("not signed by --listen-tls-ca"),
            "{foreign}"
        );
        let plain = refusal(
            io(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType,
            )),
            None,
        );
        assert!(plain.contains("tls-replication yes"), "{plain}");
        let eof = refusal(io::Error::from(io::ErrorKind::UnexpectedEof), None);
        assert!(eof.contains("closed the connection"), "{eof}");
    }

    #[test]
    fn a_key_of_another_certificate_is_named() {
        let pki = ferry_testkit::tls::TestPki::generate().unwrap();
        let files = ListenerTls {
            cert_file: pki.server.cert.clone(),
            key_file: pki.client.key.clone(),
            client_ca: None,
        };
        let err = TlsAcceptor::new(&files, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not the key of"), "{err}");
        assert!(err.contains(&pki.client.key.display().to_string()), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}
