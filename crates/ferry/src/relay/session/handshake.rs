//! The handshake, until PSYNC: requests read within the gate's limits, AUTH, REPLCONF
//! (what the replica announces decides the format it gets), INFO and PING answered as a
//! primary would. A client that breaks a rule is refused ([`Refusal`]).

use super::{closed_is_end, Refusal, Session, SessionError};
use crate::relay::{gate, info};
use bytes::Bytes;
use ferry_repl::primary::{ReplConf, Request};
use ferry_repl::resp::Limits;
use tokio::io::AsyncReadExt;

/// A replica's requests are short; anything bigger is garbage.
pub(super) fn request_limits() -> Limits {
    Limits {
        max_bulk_len: 1 << 20,
        max_line_len: 64 << 10,
        max_depth: 2,
    }
}

impl Session {
    pub(super) async fn run(&mut self) -> Result<(), SessionError> {
        loop {
            let Some(args) = self.next_command().await? else {
                return Ok(());
            };
            let request = match Request::parse(&args) {
                Ok(request) => request,
                Err(bad) => {
                    self.reply(format!("-ERR {bad}\r\n")).await?;
                    return Err(Refusal::Malformed(bad).into());
                }
            };
            // Replication and INFO need AUTH: refused, logged and closed. Anything else
            // before AUTH gets the error alone, as from a server.
            let needs_auth = matches!(
                request,
                Request::ReplConf(_) | Request::Psync { .. } | Request::Sync | Request::Info { .. }
            );
            if !self.authenticated && needs_auth {
                self.reply("-NOAUTH Authentication required.\r\n").await?;
                return Err(Refusal::Unauthenticated {
                    command: command_name(&args),
                }
                .into());
            }
            match request {
                // A replica pings before it authenticates and accepts this answer; client
                // libraries send CLIENT SETINFO and the like before AUTH.
                Request::Ping | Request::Other { .. } if !self.authenticated => {
                    self.reply("-NOAUTH Authentication required.\r\n").await?
                }
                Request::Ping => self.reply("+PONG\r\n").await?,
                Request::Auth { password, .. } => self.auth(&password).await?,
                Request::ReplConf(options) => self.replconf(options).await?,
                Request::Psync { replid, offset } => {
                    // Replicating now: the place goes to the next connection.
                    self.slot = None;
                    return self.psync(&replid, offset).await;
                }
                Request::Sync => {
                    self.reply("-ERR ferry relay serves PSYNC replicas only\r\n")
                        .await?;
                    return Err(SessionError::Sync);
                }
                Request::Info { sections } => {
                    let reader = if self.sentinel {
                        info::Reader::Sentinel
                    } else {
                        info::Reader::Client
                    };
                    let text = info::render(&self.relay, &sections, reader);
                    self.reply(format!("${}\r\n{text}\r\n", text.len())).await?
                }
                Request::Quit => {
                    self.reply("+OK\r\n").await?;
                    return Ok(());
                }
                Request::Other { name } if name == "CLIENT" && sets_name(&args) => {
                    // Sentinel names its links `sentinel-<id>-cmd|pubsub` first thing.
                    self.sentinel |= args
                        .get(2)
                        .is_some_and(|client_name| client_name.starts_with(b"sentinel-"));
                    self.reply("+OK\r\n").await?
                }
                Request::Other { name } if reconfigures(&name) => {
                    // A sentinel that learnt this address may send SLAVEOF (with CONFIG
                    // REWRITE) to re-point it: ferry relays its source, nothing else.
                    self.reply(format!(
                        "-ERR ferry relay refuses '{name}': it relays its source and is never \
                         a replica to re-point or promote\r\n"
                    ))
                    .await?
                }
                Request::Other { name } => {
                    self.reply(format!(
                        "-ERR unknown command '{name}': ferry relay answers the replication \
                         handshake, INFO and PING\r\n"
                    ))
                    .await?
                }
            }
        }
    }

    /// The next command; `None` when the peer closed between commands. Within the
    /// handshake limits: each command complete within [`gate::HANDSHAKE_TIMEOUT`] (a
    /// client dripping bytes never completes one), AUTH within it of connecting, and no
    /// request over [`gate::MAX_REQUEST_BYTES`].
    async fn next_command(&mut self) -> Result<Option<Vec<Bytes>>, SessionError> {
        let idle_until = tokio::time::Instant::now() + gate::HANDSHAKE_TIMEOUT;
        let auth_due = !self.authenticated && self.auth_deadline < idle_until;
        let deadline = if auth_due {
            self.auth_deadline
        } else {
            idle_until
        };
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some((frame, _))) => {
                    if frame.is_keepalive() {
                        continue;
                    }
                    return match frame.command_args() {
                        Some(args) => Ok(Some(args)),
                        None => Err(Refusal::NotACommand {
                            what: frame.describe(),
                        }
                        .into()),
                    };
                }
                Ok(None) => {}
                Err(error) => {
                    let _ = self.reply("-ERR Protocol error: invalid request\r\n").await;
                    return Err(Refusal::InvalidResp(error).into());
                }
            }
            if self.buffer.len() > gate::MAX_REQUEST_BYTES {
                let _ = self.reply("-ERR Protocol error: request too big\r\n").await;
                return Err(Refusal::Oversized {
                    sent: self.buffer.len(),
                    limit: gate::MAX_REQUEST_BYTES,
                }
                .into());
            }
            let read =
                match tokio::time::timeout_at(deadline, self.reader.read_buf(&mut self.buffer))
                    .await
                {
                    Ok(read) => read,
                    Err(_) if auth_due => {
                        return Err(Refusal::NoAuth(gate::HANDSHAKE_TIMEOUT).into())
                    }
                    Err(_) => return Err(Refusal::Idle(gate::HANDSHAKE_TIMEOUT).into()),
                };
            let read = closed_is_end(read).map_err(SessionError::Read)?;
            if read == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(SessionError::ClosedMidCommand)
                };
            }
        }
    }

    async fn auth(&mut self, password: &[u8]) -> Result<(), SessionError> {
        match &self.relay.config.password {
            None => {
                self.reply("-ERR AUTH called without any password configured (ferry relay has no --requirepass-file)\r\n")
                    .await
            }
            Some(expected) if expected.as_bytes() == password => {
                self.authenticated = true;
                self.reply("+OK\r\n").await
            }
            Some(_) => {
                self.reply("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                    .await?;
                Err(Refusal::WrongPassword.into())
            }
        }
    }

    async fn replconf(&mut self, options: Vec<ReplConf>) -> Result<(), SessionError> {
        let mut answer = true;
        for option in options {
            match option {
                ReplConf::ListeningPort(port) => self.listening_port = Some(port),
                ReplConf::Capa(capa) if capa == "eof" => self.capa_eof = true,
                ReplConf::Version(version) => self.version = Some(version),
                // Not answered, as by a primary.
                ReplConf::Ack(_) | ReplConf::GetAck => answer = false,
                _ => {}
            }
        }
        if answer {
            self.reply("+OK\r\n").await?;
        }
        Ok(())
    }
}

/// The command's name as a log line shows it: upper case, at most 32 bytes.
fn command_name(args: &[Bytes]) -> String {
    args.first()
        .map(|name| String::from_utf8_lossy(&name[..name.len().min(32)]).to_ascii_uppercase())
        .unwrap_or_default()
}

/// The commands that would make a server another's replica, a primary by failover, or
/// change its configuration (Sentinel's reconfiguration sends the first and `CONFIG`).
fn reconfigures(name: &str) -> bool {
    ["REPLICAOF", "SLAVEOF", "FAILOVER", "CONFIG"]
        .iter()
        .any(|refused| name.eq_ignore_ascii_case(refused))
}

/// `CLIENT SETNAME <name>`.
fn sets_name(args: &[Bytes]) -> bool {
    args.len() == 3 && args[1].eq_ignore_ascii_case(b"SETNAME")
}
