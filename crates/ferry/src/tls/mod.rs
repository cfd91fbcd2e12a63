//! TLS for every connection ferry makes: one place that reads the CA, certificate and key
//! files, builds the rustls configurations (client side, and server side for a listener),
//! and turns TLS failures into one-line messages that say what to fix.
//!
//! Our own async clients (the replica link, the target writer) wrap their socket with
//! [`TlsConnector`]; redis-rs connections (verify, assess) come from [`redis_connection`],
//! with the same files.
//!
//! - `config.rs`: files → rustls `ClientConfig` / `ServerConfig` (ring provider)
//! - `connector.rs`: the async handshake, bounded in time
//! - `acceptor.rs`: the server side for the relay's listener, and why a peer was refused
//! - `explain.rs`: rustls errors → what to fix
//! - `insecure.rs`: the verifier behind `--…-insecure`
//! - `redis_rs.rs`: redis-rs connections with the same settings

mod acceptor;
mod config;
mod connector;
mod explain;
mod insecure;
mod redis_rs;

pub use acceptor::{HandshakeError, ListenerTls, TlsAcceptor};
pub use config::{client_config, server_config};
pub use connector::TlsConnector;
pub use explain::{explain, explain_chain, explain_io};
pub use redis_rs::redis_connection;

use std::io;
use std::path::PathBuf;

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
