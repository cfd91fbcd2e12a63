//! A plain command connection to a server (the target, or the source for INFO): connect
//! with a timeout (and TLS for `rediss://`), authenticate, send a command and read its
//! reply. The pipelined writer ([`crate::sinks::writer::pipe`]) takes the connection over once setup is
//! done.

use super::halves::{split_tcp, split_tls, ReadSide, WriteSide};
use crate::tls::{self, TlsConnector, TlsError};
use crate::url::ServerUrl;
use bytes::BytesMut;
use ferry_repl::resp::{encode_command, Frame, FrameDecoder, Limits, Mode};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The writing half of a connection (plain or TLS), as the pipe takes it over.
pub type ClientWriter = WriteSide;

/// Longest wait for one reply during setup (INFO, FLUSHALL of a big target excepted).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server that owes the pipe replies may send nothing before it counts as
/// gone (`--target-reply-timeout`'s default): a big RESTORE or a busy target takes
/// seconds, not minutes.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the server closed the connection")]
    Closed,
    #[error("network error: {0}")]
    Io(#[from] io::Error),
    #[error("the server sent something that is not RESP: {0}")]
    Protocol(String),
    /// What a TLS server sends a plaintext client: an alert or handshake record.
    #[error("the server answered with a TLS record, not RESP")]
    TlsRecord,
    #[error("{command} failed: {message}")]
    Command { command: String, message: String },
    /// A cluster's slot map or shard list that ferry cannot read.
    #[error("{command} failed: {source}")]
    ClusterReply {
        command: &'static str,
        #[source]
        source: crate::server::cluster::malformed::MalformedReply,
    },
}

/// The reading half: socket, receive buffer and frame decoder.
pub struct ReplyReader {
    read: ReadSide,
    buf: BytesMut,
    decoder: FrameDecoder,
    /// What the pipe waits for a reply it is owed ([`DEFAULT_STALL_TIMEOUT`] unless set).
    stall_timeout: Duration,
}

impl ReplyReader {
    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    /// The next reply, waiting at most `timeout`.
    pub async fn read(&mut self, timeout: Duration) -> Result<Frame, ClientError> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some((frame, _))) => return Ok(frame),
                Ok(None) => {}
                Err(_) if is_tls_record(&self.buf) => return Err(ClientError::TlsRecord),
                Err(e) => return Err(ClientError::Protocol(e.what)),
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            let read = tokio::time::timeout(timeout, self.read.read_buf(&mut self.buf))
                .await
                .map_err(|_| ClientError::Timeout(timeout))??;
            if read == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// A TLS record header: content type alert (21) or handshake (22), then major version 3.
fn is_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [21 | 22, 3, ..])
}

pub struct Client {
    reader: ReplyReader,
    write: ClientWriter,
    out: BytesMut,
}

impl Client {
    /// Connects, completes TLS and authenticates, all within `connect_timeout` (the
    /// flag's promise: a silent port fails in that time, not in a reply timeout).
    /// A server that wants a password we did not give is an authentication error too.
    pub async fn connect(url: &ServerUrl, connect_timeout: Duration) -> Result<Self, ClientError> {
        let tls = TlsConnector::for_url(url, connect_timeout)?;
        let deadline = tokio::time::Instant::now() + connect_timeout;
        let address = url.address();
        let attempt = async {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
            for socket_address in tokio::net::lookup_host(address.as_str()).await? {
                match TcpStream::connect(socket_address).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let timed_out = |what: &str| {
            ClientError::Connect(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} within {connect_timeout:?} (--connect-timeout)"),
            ))
        };
        let stream = tokio::time::timeout_at(deadline, attempt)
            .await
            .map_err(|_| timed_out("no connection"))?
            .map_err(ClientError::Connect)?;
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        let (read, write) = match &tls {
            Some(tls) => split_tls(
                tokio::time::timeout_at(deadline, tls.connect(stream))
                    .await
                    // As the connector words its own timeout: a plaintext server waits
                    // for a command's end and never answers a ClientHello.
                    .map_err(|_| {
                        ClientError::Connect(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no answer to the TLS handshake within {connect_timeout:?}: is \
                                 this a plaintext port? use redis:// (or valkey://)"
                            ),
                        ))
                    })?
                    .map_err(ClientError::Connect)?,
            ),
            None => split_tcp(stream),
        };
        let mut client = Client {
            reader: ReplyReader {
                read,
                buf: BytesMut::with_capacity(64 * 1024),
                decoder: FrameDecoder::new(Mode::Replies, Limits::default()),
                stall_timeout: DEFAULT_STALL_TIMEOUT,
            },
            write,
            out: BytesMut::new(),
        };
        tokio::time::timeout_at(deadline, client.authenticate(url))
            .await
            .map_err(|_| timed_out("connected, but no reply to the first command"))?
            .map_err(|e| Self::explain_setup_failure(e, url))?;
        Ok(client)
    }

    /// A TLS-only port hangs up on a plaintext command (silence is no sign of TLS: the
    /// hint would mislead); a TLS server refuses a missing client certificate only after
    /// the handshake, on the first read.
    fn explain_setup_failure(error: ClientError, url: &ServerUrl) -> ClientError {
        let hung_up = match &error {
            ClientError::Closed => true,
            ClientError::Io(io) => matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        };
        match error {
            error if hung_up && url.tls.is_none() => {
                ClientError::Connect(io::Error::other(format!(
                    "{error} before answering the first command: is the server expecting TLS? use \
                 rediss:// (or valkeys://)"
                )))
            }
            ClientError::TlsRecord if url.tls.is_none() => ClientError::Connect(io::Error::other(
                format!("{error}: the server expects TLS; use rediss:// (or valkeys://)"),
            )),
            ClientError::Io(io) => match &url.tls {
                Some(settings) => {
                    match tls::explain_io(&io, settings.ca_file.as_deref(), settings.flag_prefix) {
                        Some(text) => ClientError::Connect(io::Error::new(io.kind(), text)),
                        None => ClientError::Io(io),
                    }
                }
                None => ClientError::Io(io),
            },
            other => other,
        }
    }

    async fn authenticate(&mut self, url: &ServerUrl) -> Result<(), ClientError> {
        if let Some(password) = &url.password {
            let secret = password.expose();
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.username {
                args.push(user.as_bytes());
            }
            args.push(secret.as_bytes());
            if let Frame::Error(message) = self.call(&args).await? {
                let text = one_line(&message);
                return Err(ClientError::Auth(text.replace(secret, "***")));
            }
        }
        match self.call(&[b"PING".as_slice()]).await? {
            Frame::Error(message) => {
                let text = one_line(&message);
                if text.starts_with("NOAUTH") || text.starts_with("NOPERM") {
                    Err(ClientError::Auth(text))
                } else {
                    Err(ClientError::Command {
                        command: "PING".into(),
                        message: text,
                    })
                }
            }
            _ => Ok(()),
        }
    }

    /// Sends one command and returns its reply, error replies included.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ClientError> {
        self.call_with_timeout(args, SETUP_TIMEOUT).await
    }

    pub async fn call_with_timeout<A: AsRef<[u8]>>(
        &mut self,
        args: &[A],
        timeout: Duration,
    ) -> Result<Frame, ClientError> {
        self.out.clear();
        encode_command(args, &mut self.out);
        self.write.write_all(&self.out).await?;
        self.reader.read(timeout).await
    }

    /// Like [`Client::call`], with an error reply turned into [`ClientError::Command`].
    pub async fn call_ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ClientError> {
        let reply = self.call(args).await?;
        check(args, reply)
    }

    /// `INFO section` as key/value pairs.
    pub async fn info(&mut self, section: &str) -> Result<Vec<(String, String)>, ClientError> {
        match self.call_ok(&["INFO", section]).await? {
            Frame::Bulk(text) | Frame::Verbatim { text, .. } => Ok(parse_info(&text)),
            other => Err(ClientError::Protocol(format!(
                "INFO answered {}",
                other.describe()
            ))),
        }
    }

    /// How long the pipe that takes this connection over waits for a reply it is owed.
    pub fn set_stall_timeout(&mut self, timeout: Duration) {
        self.reader.stall_timeout = timeout;
    }

    pub fn stall_timeout(&self) -> Duration {
        self.reader.stall_timeout
    }

    pub fn into_split(self) -> (ReplyReader, ClientWriter) {
        (self.reader, self.write)
    }
}

fn check<A: AsRef<[u8]>>(args: &[A], reply: Frame) -> Result<Frame, ClientError> {
    match reply {
        Frame::Error(message) | Frame::BulkError(message) => Err(ClientError::Command {
            command: args
                .first()
                .map(|a| String::from_utf8_lossy(a.as_ref()).to_uppercase())
                .unwrap_or_default(),
            message: one_line(&message),
        }),
        other => Ok(other),
    }
}

/// `key:value` lines; section headers and blank lines are skipped.
pub fn parse_info(text: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub fn info_value<'a>(info: &'a [(String, String)], key: &str) -> Option<&'a str> {
    info.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A `SCAN` reply: the next cursor and the keys.
pub fn parse_scan(reply: Frame) -> Result<(bytes::Bytes, Vec<bytes::Bytes>), ClientError> {
    let bad = |what: &str| ClientError::Protocol(format!("SCAN answered {what}"));
    let Frame::Array(mut parts) = reply else {
        return Err(bad(&reply.describe()));
    };
    if parts.len() != 2 {
        return Err(bad("an array that is not [cursor, keys]"));
    }
    let keys = parts.pop();
    let cursor = parts.pop();
    let (Some(Frame::Bulk(cursor)), Some(Frame::Array(keys))) = (cursor, keys) else {
        return Err(bad("an array that is not [cursor, keys]"));
    };
    let keys = keys
        .into_iter()
        .map(|k| match k {
            Frame::Bulk(key) => Ok(key),
            other => Err(bad(&format!("a key that is {}", other.describe()))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((cursor, keys))
}

/// A server message made printable on one line (the replication crate's rule, shared).
pub use ferry_repl::one_line;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_become_pairs() {
        let info = parse_info(b"# Server\r\nredis_version:7.2.4\r\nvalkey_version:8.1.1\r\n\r\n");
        assert_eq!(info_value(&info, "valkey_version"), Some("8.1.1"));
        assert_eq!(info_value(&info, "redis_version"), Some("7.2.4"));
        assert_eq!(info_value(&info, "nope"), None);
    }
}
