//! The running migration, seen through its `--metrics-addr` listener: `GET /status` for
//! its applied offset, `POST /stop` to end it (with the run's control token). Plain
//! HTTP/1.1 over a blocking socket: two fixed requests do not need an HTTP client library.

use crate::control::ControlToken;
use serde::Deserialize;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect and read timeout of one request; the listener answers from memory.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A `/status` document is a few KB (it lists policy report lines); more is not ferry.
const MAX_RESPONSE: u64 = 1 << 20;

/// The fields of `/status` cutover relies on. `migrate` and `relay` both serve them.
#[derive(Debug, Clone, Deserialize)]
pub struct RunStatus {
    /// `migrate` or `relay`; absent from older builds (then `migrate`).
    #[serde(default)]
    pub mode: Option<String>,
    pub phase: String,
    /// host:port of the run's source and target.
    pub source: String,
    pub target: String,
    pub source_replid: Option<String>,
    /// Every write of the source's replication stream up to this offset is on the target.
    pub applied_offset: i64,
    /// Bytes of the source's stream not yet on the target (what `ferry fleet` shows).
    #[serde(default)]
    pub lag_bytes: i64,
    /// Keys the run's full syncs have written so far.
    #[serde(default)]
    pub keys_written: u64,
    /// A cluster source's shards, each followed on its own; empty for one server.
    #[serde(default)]
    pub shards: Vec<ShardRun>,
    /// The `/status` address this came from (for several workers: the one whose phase
    /// this is).
    #[serde(skip)]
    pub run: Option<SocketAddr>,
}

/// One shard of a cluster source in `/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct ShardRun {
    /// host:port of the primary the run follows for these slots.
    pub node: String,
    pub replid: Option<String>,
    pub applied_offset: i64,
    /// The `/status` address of the run (the worker) following it.
    #[serde(skip)]
    pub run: Option<SocketAddr>,
}

impl RunStatus {
    pub fn is_relay(&self) -> bool {
        self.mode.as_deref() == Some("relay")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0} is not host:port")]
    Address(String),
    #[error("cannot reach the migration's status endpoint {addr}")]
    Unreachable {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}{path} answered {code}{reason}")]
    Status {
        addr: SocketAddr,
        path: &'static str,
        code: String,
        /// ` (the body's first line)` when the listener said why, else empty.
        reason: String,
    },
    #[error("{addr}/status is not a ferry status document")]
    Malformed {
        addr: SocketAddr,
        #[source]
        source: serde_json::Error,
    },
}

impl StatusError {
    /// Nothing listens any more: the run has exited.
    pub fn is_refused(&self) -> bool {
        matches!(self, StatusError::Unreachable { source, .. }
            if source.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// The longest reason from a refusal's body that an error repeats.
const MAX_REASON: usize = 200;

/// The migration's listener.
#[derive(Debug, Clone)]
pub struct StatusEndpoint {
    pub addr: SocketAddr,
    /// Sent with `POST /stop` as `Authorization: Bearer …`.
    pub token: Option<ControlToken>,
}

impl StatusEndpoint {
    /// `host:port`, optionally written as `http://host:port/`; no token yet.
    pub fn parse(text: &str) -> Result<Self, StatusError> {
        let bare = text
            .strip_prefix("http://")
            .unwrap_or(text)
            .trim_end_matches('/');
        let addr = bare
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| StatusError::Address(text.to_owned()))?;
        Ok(Self { addr, token: None })
    }

    pub fn status(&self) -> Result<RunStatus, StatusError> {
        let body = self.request("GET", "/status")?;
        let mut status: RunStatus =
            serde_json::from_slice(&body).map_err(|source| StatusError::Malformed {
                addr: self.addr,
                source,
            })?;
        status.run = Some(self.addr);
        for shard in &mut status.shards {
            shard.run = Some(self.addr);
        }
        Ok(status)
    }

    /// Asks the run to drain and exit.
    pub fn stop(&self) -> Result<(), StatusError> {
        self.request("POST", "/stop").map(|_| ())
    }

    fn request(&self, method: &str, path: &'static str) -> Result<Vec<u8>, StatusError> {
        let unreachable = |source| StatusError::Unreachable {
            addr: self.addr,
            source,
        };
        let mut socket =
            TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT).map_err(unreachable)?;
        socket
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .map_err(unreachable)?;
        socket
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .map_err(unreachable)?;
        // Only the control request carries the token: reads need none.
        let authorization = match (&self.token, method) {
            (Some(token), "POST") => format!("Authorization: Bearer {}\r\n", token.expose()),
            _ => String::new(),
        };
        // One write: a listener that reads a single packet sees the whole request.
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        socket.write_all(request.as_bytes()).map_err(unreachable)?;
        let mut response = Vec::with_capacity(4096);
        socket
            .take(MAX_RESPONSE)
            .read_to_end(&mut response)
            .map_err(unreachable)?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(response.len());
        let head = String::from_utf8_lossy(&response[..split]);
        let code = head.split_whitespace().nth(1).unwrap_or("nothing");
        if !code.starts_with('2') {
            let body = response.get(split + 4..).unwrap_or_default();
            return Err(StatusError::Status {
                addr: self.addr,
                path,
                code: code.to_owned(),
                reason: refusal_reason(body, self.token.as_ref()),
            });
        }
        Ok(response.get(split + 4..).unwrap_or_default().to_vec())
    }
}

/// ` (first line of the body)` for an error, printable and short; empty if none. Something
/// else at --status may echo the request back: the token never shows.
fn refusal_reason(body: &[u8], token: Option<&ControlToken>) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    if let Some(token) = token {
        text = text.replace(token.expose(), "***");
    }
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    let line = line.trim();
    if line.is_empty() {
        String::new()
    } else {
        format!(" ({line})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_taken_with_or_without_the_scheme() {
        let plain = StatusEndpoint::parse("127.0.0.1:9121").unwrap();
        let url = StatusEndpoint::parse("http://127.0.0.1:9121/").unwrap();
        assert_eq!(plain.addr, url.addr);
        assert!(StatusEndpoint::parse("9121").is_err());
    }

    #[test]
    fn a_refusal_reason_is_one_short_line_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "a-long-enough-control-token").unwrap();
        let args = crate::control::ControlTokenArgs {
            control_token_file: Some(file),
            control_token_env: None,
        };
        let token = args.token().unwrap().unwrap();
        let echo = b"POST /stop HTTP/1.1 Authorization: Bearer a-long-enough-control-token\r\nmore";
        let reason = refusal_reason(echo, Some(&token));
        assert!(!reason.contains("a-long-enough"), "{reason}");
        assert!(
            reason.contains("Bearer ***") && !reason.contains("more"),
            "{reason}"
        );
        assert_eq!(refusal_reason(b"", Some(&token)), "");
        assert!(refusal_reason(&[b'x'; 1000], None).len() < 210);
    }

    #[test]
    fn a_status_without_mode_is_a_migration() {
        let status: RunStatus = serde_json::from_str(
            r#"{"phase":"in-sync","source":"a:1","target":"b:2","source_replid":null,"applied_offset":5,"lag_bytes":0}"#,
        )
        .unwrap();
        assert!(!status.is_relay());
        assert_eq!(status.applied_offset, 5);
    }
}
