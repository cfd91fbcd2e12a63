//! TLS for every connection ferry makes: one place that reads the CA, certificate and key
//! files, builds the rustls configurations (client side, and server side for a listener),
//! and turns TLS failures into one-line messages that say what to fix.
//!
//! Our own async clients (the replica link, the target writer) wrap their socket with
//! [`TlsConnector`]; redis-rs connections (verify, assess) get the same files through
//! [`redis_client`].

use crate::url::ServerUrl;
use ferry_repl::{BoxedStream, StreamUpgrade, UpgradeFuture};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct};
use rustls::{RootCertStore, ServerConfig, SignatureScheme};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// What a `rediss://` connection uses besides the URL. Paths only: the files are read when
/// connecting, so a reconnect picks up renewed certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA certificates (PEM) that sign the server's certificate; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Our client certificate chain (PEM), for servers with `tls-auth-clients`.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry (and SNI); default: the URL's host.
    pub server_name: Option<String>,
    /// Accept any server certificate. Only ever set by an explicit `--…-insecure`.
    pub insecure: bool,
    /// `--source` or `--target`: messages name the flags to fix (`--source-tls-ca`).
    pub flag_prefix: &'static str,
}

impl TlsSettings {
    fn flag(&self, name: &str) -> String {
        flag(self.flag_prefix, name)
    }
}

fn flag(prefix: &str, name: &str) -> String {
    match prefix {
        "" => format!("--…-{name}"),
        prefix => format!("{prefix}-{name}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the {what} {} holds no PEM {expected}", path.display())]
    NoPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("the {what} {} is not valid PEM: {reason}", path.display())]
    BadPem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("'{0}' is not a valid TLS server name")]
    ServerName(String),
    #[error("a client certificate needs its key, and a key its certificate")]
    HalfIdentity,
    #[error("cannot use the TLS settings: {0}")]
    Config(String),
}

/// The one crypto provider (ring). Installed as the process default too, for redis-rs.
fn provider() -> Arc<CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Fails only if a default is already installed, which is as good.
    let _ = CryptoProvider::install_default((*provider).clone());
    provider
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "key file";
    let pem = read_file(what, path)?;
    // The parser's message names no key material, only what it expected.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            what,
            path: path.to_owned(),
            expected: "private key",
        },
        other => TlsError::BadPem {
            what,
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates("CA file", path)? {
                roots.add(cert).map_err(|e| TlsError::BadPem {
                    what: "CA file",
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            // Unreadable system certificates are skipped; none at all is an error below.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::Config(
                    "the system has no CA certificates; give the server's CA file".into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The client certificate and key, when both are given.
fn identity(
    settings: &TlsSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => Ok(Some((
            certificates("client certificate file", cert)?,
            private_key(key)?,
        ))),
        (None, None) => Ok(None),
        _ => Err(TlsError::HalfIdentity),
    }
}

/// The rustls client configuration for `settings`.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
    } else {
        builder.with_root_certificates(root_store(settings.ca_file.as_deref())?)
    };
    match identity(settings)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("the client certificate and key: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The rustls server configuration for a listener (the relay's): our certificate and key,
/// and, with `client_ca`, clients must present a certificate signed by it.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(Arc::new(root_store(Some(ca))?))
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            certificates("certificate file", cert_file)?,
            private_key(key_file)?,
        )
        .map_err(|e| TlsError::Config(format!("the certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

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
                explain_io(&error, self.ca_file.as_deref(), self.flag_prefix).unwrap_or_else(
                    || format!("TLS handshake failed: {error}; is the server expecting TLS?"),
                ),
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

/// A one-line explanation of a TLS failure carried by `error` (during the handshake or
/// on the first read after it, where TLS 1.3 servers report a refused client certificate).
pub fn explain_io(error: &io::Error, ca_file: Option<&Path>, flags: &str) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(explain(tls, ca_file, flags))
}

/// Looks for a TLS failure anywhere in an error chain (redis-rs errors included, which
/// hold their cause in an `Arc`).
pub fn explain_chain(
    error: &(dyn std::error::Error + 'static),
    settings: &TlsSettings,
) -> Option<String> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(text) = explain_one(error, settings) {
            return Some(text);
        }
        current = error.source();
    }
    None
}

fn explain_one(
    error: &(dyn std::error::Error + 'static),
    settings: &TlsSettings,
) -> Option<String> {
    let ca_file = settings.ca_file.as_deref();
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(explain(tls, ca_file, settings.flag_prefix));
    }
    if let Some(io) = error.downcast_ref::<io::Error>() {
        return explain_io(io, ca_file, settings.flag_prefix);
    }
    if let Some(shared) = error.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>() {
        return explain_one(&**shared, settings);
    }
    None
}

/// A redis-rs connection error made clear: the TLS failure it hides, or, for a plaintext
/// URL whose server hung up or never answered, the hint that it may expect TLS.
pub fn explain_redis_error(
    error: redis::RedisError,
    url: &ServerUrl,
) -> Box<dyn std::error::Error + Send + Sync> {
    match &url.tls {
        Some(settings) => match explain_chain(&error, settings) {
            Some(text) => text.into(),
            None => Box::new(error),
        },
        None if error.is_connection_dropped() || error.is_timeout() => {
            format!("{error}: is the server expecting TLS? use rediss:// (or valkeys://)").into()
        }
        None => Box::new(error),
    }
}

/// What a rustls error means for the person running ferry.
pub fn explain(error: &rustls::Error, ca_file: Option<&Path>, flags: &str) -> String {
    use rustls::Error as E;
    let ca_flag = flag(flags, "tls-ca");
    let name_flag = flag(flags, "tls-server-name");
    let cert_flags = format!("{} and {}", flag(flags, "tls-cert"), flag(flags, "tls-key"));
    let trusted = match ca_file {
        Some(path) => format!("the CA file {}", path.display()),
        None => "the given CA file or the system's CAs".to_owned(),
    };
    match error {
        E::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "certificate verify failed: unknown issuer (the server's certificate is not \
                 signed by {trusted}; give its CA with {ca_flag})"
            ),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "certificate verify failed: the server's certificate has expired ({} days ago)",
                time.as_secs().saturating_sub(not_after.as_secs()) / 86_400
            ),
            CertificateError::Expired => {
                "certificate verify failed: the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate verify failed: the server's certificate is not valid yet (check \
                 the clocks)"
                    .to_owned()
            }
            CertificateError::NotValidForName => format!(
                "certificate verify failed: hostname mismatch (connect by a name the \
                 certificate lists, or set {name_flag})"
            ),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate verify failed: hostname mismatch: the server's certificate is for \
                 {} but we connected as {} (connect by a name it lists, or set \
                 {name_flag})",
                presented
                    .iter()
                    .map(|name| plain_name(name))
                    .collect::<Vec<_>>()
                    .join(", "),
                expected.to_str()
            ),
            other => format!("certificate verify failed: {other:?}"),
        },
        E::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                format!("the server requires a client certificate: give {cert_flags}")
            }
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError => format!(
                "the server refused our client certificate (TLS alert: {alert:?}); is it \
                 signed by a CA the server trusts (its tls-ca-cert-file)?"
            ),
            AlertDescription::CertificateExpired => {
                "the server refused our client certificate: it has expired".to_owned()
            }
            AlertDescription::HandshakeFailure => format!(
                "the server refused the TLS handshake (handshake failure): it may require a \
                 client certificate ({cert_flags}) or other TLS versions"
            ),
            other => format!("the server ended the TLS handshake (alert: {other:?})"),
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the server did not answer with TLS: is this a plaintext port? use redis:// (or \
             valkey://)"
                .to_owned()
        }
        other => format!("TLS failed: {other}"),
    }
}

/// `DnsName("db.example")` or `IpAddress(10.0.0.1)`, as rustls lists a certificate's
/// names, without the wrapping.
fn plain_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

/// Skips every check of the server's certificate (`--…-insecure`); the handshake's
/// signatures are still verified, so the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A redis-rs connection for `url` (verify, assess) with the URL's TLS settings and
/// credentials, checked with PING. For TLS our own handshake runs first: it fails fast and
/// clearly where redis-rs would wait its whole reply timeout on a plaintext port, and
/// name less precisely what is wrong with a certificate. Every error is one clear line.
pub fn redis_connection(
    url: &ServerUrl,
    connect_timeout: Duration,
    reply_timeout: Duration,
) -> Result<redis::Connection, Box<dyn std::error::Error + Send + Sync>> {
    if let Some(settings) = &url.tls {
        check_handshake(url, settings, connect_timeout)?;
    }
    let explained = |e| explain_redis_error(e, url);
    let client = redis_client(url)?;
    let mut connection = client
        .get_connection_with_timeout(connect_timeout)
        .map_err(explained)?;
    connection
        .set_read_timeout(Some(reply_timeout))
        .map_err(explained)?;
    connection
        .set_write_timeout(Some(reply_timeout))
        .map_err(explained)?;
    // The first reply shows a refused login or client certificate (TLS 1.3 servers refuse
    // it after the handshake) as a connection error, not as a failed command later.
    redis::cmd("PING")
        .query::<()>(&mut connection)
        .map_err(explained)?;
    Ok(connection)
}

/// Connects, completes a TLS handshake with our configuration, and hangs up.
fn check_handshake(
    url: &ServerUrl,
    settings: &TlsSettings,
    timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use std::net::ToSocketAddrs;
    let name = settings.server_name.as_deref().unwrap_or(&url.host);
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    let mut tcp = None;
    for address in (url.host.as_str(), url.port).to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut tcp = tcp.ok_or(last)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let mut tls = rustls::ClientConnection::new(Arc::new(client_config(settings)?), server_name)?;
    while tls.is_handshaking() {
        if let Err(error) = tls.complete_io(&mut tcp) {
            let text = match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                    "no answer to the TLS handshake within {timeout:?}: is this a plaintext \
                     port? use redis:// (or valkey://)"
                ),
                _ => explain_io(&error, settings.ca_file.as_deref(), settings.flag_prefix)
                    .unwrap_or_else(|| format!("TLS handshake failed: {error}")),
            };
            return Err(text.into());
        }
    }
    tls.send_close_notify();
    let _ = tls.complete_io(&mut tcp);
    Ok(())
}

/// A redis-rs client for `url`, with the URL's TLS settings. redis-rs
/// checks the certificate against the URL's host itself, so a different
/// `--…-tls-server-name` cannot be honoured there and is refused.
fn redis_client(url: &ServerUrl) -> Result<redis::Client, RedisSetupError> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(username) = &url.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &url.password {
        settings = settings.set_password(password.expose());
    }
    if let Some(db) = url.db {
        settings = settings.set_db(db as i64);
    }
    let Some(tls) = &url.tls else {
        let info = ConnectionAddr::Tcp(url.host.clone(), url.port)
            .into_connection_info()?
            .set_redis_settings(settings);
        return Ok(redis::Client::open(info)?);
    };
    if tls
        .server_name
        .as_ref()
        .is_some_and(|name| name != &url.host)
    {
        return Err(RedisSetupError::Tls(TlsError::Config(format!(
            "this command checks the certificate against the URL's host; connect by the \
                 certificate's name instead of setting {}",
            tls.flag("tls-server-name")
        ))));
    }
    provider();
    // Read and checked by our own parser first, so a bad file fails with our message.
    client_config(tls)?;
    let read = |what, path: &PathBuf| read_file(what, path);
    let certificates = redis::TlsCertificates {
        client_tls: match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("client certificate file", cert)?,
                client_key: read("key file", key)?,
            }),
            _ => None,
        },
        root_cert: tls
            .ca_file
            .as_ref()
            .map(|ca| read("CA file", ca))
            .transpose()?,
    };
    let info = ConnectionAddr::TcpTls {
        host: url.host.clone(),
        port: url.port,
        insecure: tls.insecure,
        tls_params: None,
    }
    .into_connection_info()?
    .set_redis_settings(settings);
    Ok(redis::Client::build_with_tls(info, certificates)?)
}

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let settings = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("CA file /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_file_without_pem_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            ca_file: Some(path),
            ..TlsSettings::default()
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let settings = TlsSettings {
            insecure: true,
            cert_file: Some("/nonexistent/c.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            client_config(&settings),
            Err(TlsError::HalfIdentity)
        ));
    }

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

    #[test]
    fn explanations_say_what_to_fix() {
        let unknown = explain(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            Some(Path::new("/etc/ca.pem")),
            "--source",
        );
        assert!(unknown.contains("--source-tls-ca"), "{unknown}");
        assert!(unknown.contains("unknown issuer") && unknown.contains("/etc/ca.pem"));
        let required = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            None,
            "--target",
        );
        assert!(
            required.contains("requires a client certificate"),
            "{required}"
        );
        assert!(
            required.contains("--target-tls-cert and --target-tls-key"),
            "{required}"
        );
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        assert!(explain_io(&io, None, "").unwrap().contains("expired"));
        assert_eq!(plain_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(plain_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(plain_name("plain"), "plain");
        assert_eq!(explain_io(&io::Error::other("plain"), None, ""), None);
    }
}
