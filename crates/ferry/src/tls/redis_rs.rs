//! redis-rs connections (verify, assess) with the same TLS settings and clear errors.

use super::config::{client_config, provider, read_file};
use super::explain::{explain_chain, handshake_failure};
use super::{TlsError, TlsSettings};
use crate::url::ServerUrl;
use rustls::pki_types::ServerName;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
                _ => handshake_failure(&error, settings.ca_file.as_deref(), settings.flag_prefix),
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

/// A redis-rs connection error made clear: the TLS failure it hides, or, for a plaintext
/// URL whose server hung up on it, the hint that it may expect TLS.
pub fn explain_redis_error(
    error: redis::RedisError,
    url: &ServerUrl,
) -> Box<dyn std::error::Error + Send + Sync> {
    match &url.tls {
        Some(settings) => match explain_chain(&error, settings) {
            Some(text) => text.into(),
            None => Box::new(error),
        },
        None if hung_up(&error) => {
            format!("{error}: is the server expecting TLS? use rediss:// (or valkeys://)").into()
        }
        // The OS words a read timeout as "Resource temporarily unavailable".
        None if error.is_timeout() => {
            format!("the server accepted the connection but never replied ({error})").into()
        }
        None => Box::new(error),
    }
}

/// A server that accepted the connection and then hung up, as a TLS port does on a
/// plaintext command. A refused connection or silence says nothing about TLS.
fn hung_up(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() && !error.is_connection_refusal() && !error.is_timeout()
}
