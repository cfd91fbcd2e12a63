//! What a client of a primary asks, read from one command: the handshake a replica sends
//! (PING, AUTH, REPLCONF, PSYNC/SYNC), its ACKs afterwards, and the few commands a
//! person or a script checking the primary sends (INFO, QUIT).

use bytes::Bytes;

/// One command a client of the primary sent, as far as a primary needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `PING`.
    Ping,
    /// `AUTH password` or `AUTH username password`.
    Auth {
        /// The ACL user; `None` for the `default` user.
        username: Option<Bytes>,
        /// The password as sent.
        password: Bytes,
    },
    /// `REPLCONF` with its options.
    ReplConf(Vec<ReplConf>),
    /// `PSYNC <replid> <offset>`: `offset` is the next byte the replica needs; `?` and
    /// `-1` ask for a full copy.
    Psync {
        /// The replication ID the replica last followed, `?` for none.
        replid: String,
        /// The next byte it needs.
        offset: i64,
    },
    /// The pre-PSYNC `SYNC`: a full copy without replication ID.
    Sync,
    /// `INFO [section ...]`.
    Info {
        /// The sections asked for (lower-cased); none for the default ones.
        sections: Vec<String>,
    },
    /// `QUIT`.
    Quit,
    /// Anything else: the name, for the error reply.
    Other {
        /// The command's name, upper-cased.
        name: String,
    },
}

/// One `REPLCONF` option (a command may carry several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplConf {
    /// `listening-port <port>`: where the replica says it listens.
    ListeningPort(u16),
    /// `ip-address <ip>`: the address the replica announces.
    IpAddress(String),
    /// `capa eof`, `capa psync2`, ...
    Capa(String),
    /// `version 8.1.1`: the replica's release (Valkey replicas send it).
    Version(String),
    /// `ACK <offset>` (any `FACK <offset>` after it is ignored).
    Ack(i64),
    /// `GETACK *`: asks the replica to send its `ACK` now.
    GetAck,
    /// An option this side does not use; accepted, as primaries do for forward
    /// compatibility.
    Other(String),
}

/// Why a command could not be read as a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {reason}")]
pub struct BadRequest {
    /// The command's name (upper-cased).
    pub command: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Request {
    /// Reads one command (`args[0]` is its name, any case).
    pub fn parse(args: &[Bytes]) -> Result<Request, BadRequest> {
        let Some(name) = args.first() else {
            return Err(bad("(empty)", "an empty command"));
        };
        let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
        let bad_here = |reason| bad(&upper, reason);
        let text = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
        match upper.as_str() {
            "PING" => Ok(Request::Ping),
            "QUIT" => Ok(Request::Quit),
            "SYNC" => Ok(Request::Sync),
            "INFO" => Ok(Request::Info {
                sections: args[1..]
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                    .collect(),
            }),
            "AUTH" => match args.len() {
                2 => Ok(Request::Auth {
                    username: None,
                    password: args[1].clone(),
                }),
                3 => Ok(Request::Auth {
                    username: Some(args[1].clone()),
                    password: args[2].clone(),
                }),
                _ => Err(bad_here("wrong number of arguments")),
            },
            "PSYNC" => {
                if args.len() < 3 {
                    return Err(bad_here("wrong number of arguments"));
                }
                let replid = text(1).unwrap_or_default();
                let offset = text(2)
                    .and_then(|o| o.parse::<i64>().ok())
                    .ok_or_else(|| bad_here("the offset is not a number"))?;
                Ok(Request::Psync { replid, offset })
            }
            "REPLCONF" => {
                if args.len().is_multiple_of(2) {
                    return Err(bad_here("options come in name/value pairs"));
                }
                let mut options = Vec::new();
                let mut i = 1;
                while i + 1 < args.len() {
                    let option = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
                    let value = String::from_utf8_lossy(&args[i + 1]).into_owned();
                    options.push(match option.as_str() {
                        "listening-port" => ReplConf::ListeningPort(
                            value
                                .parse()
                                .map_err(|_| bad_here("listening-port is not a port"))?,
                        ),
                        "ip-address" => ReplConf::IpAddress(value),
                        "capa" => ReplConf::Capa(value.to_ascii_lowercase()),
                        "version" => ReplConf::Version(value),
                        "ack" => {
                            let offset = value
                                .parse()
                                .map_err(|_| bad_here("the ACK offset is not a number"))?;
                            // FACK and anything after it describe the replica's own
                            // persistence; the ACK is all a primary needs.
                            options.push(ReplConf::Ack(offset));
                            break;
                        }
                        "getack" => ReplConf::GetAck,
                        _ => ReplConf::Other(option),
                    });
                    i += 2;
                }
                Ok(Request::ReplConf(options))
            }
            _ => Ok(Request::Other { name: upper }),
        }
    }
}

fn bad(command: &str, reason: &'static str) -> BadRequest {
    BadRequest {
        command: command.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn a_valkey_handshake_reads() {
        assert_eq!(Request::parse(&args("ping")), Ok(Request::Ping));
        assert_eq!(
            Request::parse(&args("REPLCONF listening-port 6380")),
            Ok(Request::ReplConf(vec![ReplConf::ListeningPort(6380)]))
        );
        assert_eq!(
            Request::parse(&args("REPLCONF capa eof capa psync2")),
            Ok(Request::ReplConf(vec![
                ReplConf::Capa("eof".into()),
                ReplConf::Capa("psync2".into())
            ]))
        );
        assert_eq!(
            Request::parse(&args("REPLCONF version 9.1.2")),
            Ok(Request::ReplConf(vec![ReplConf::Version("9.1.2".into())]))
        );
        assert_eq!(
            Request::parse(&args("PSYNC ? -1")),
            Ok(Request::Psync {
                replid: "?".into(),
                offset: -1
            })
        );
        assert_eq!(
            Request::parse(&args("REPLCONF ACK 1234 FACK 1200")),
            Ok(Request::ReplConf(vec![ReplConf::Ack(1234)]))
        );
        assert_eq!(
            Request::parse(&args("AUTH user secret")),
            Ok(Request::Auth {
                username: Some(Bytes::from_static(b"user")),
                password: Bytes::from_static(b"secret")
            })
        );
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        assert!(Request::parse(&[]).is_err());
        assert!(Request::parse(&args("PSYNC abc")).is_err());
        assert!(Request::parse(&args("PSYNC abc x")).is_err());
        assert!(Request::parse(&args("REPLCONF ack")).is_err());
        assert!(Request::parse(&args("REPLCONF ack nope")).is_err());
        assert!(Request::parse(&args("REPLCONF listening-port 99999")).is_err());
        assert_eq!(
            Request::parse(&args("flushall")),
            Ok(Request::Other {
                name: "FLUSHALL".into()
            })
        );
    }
}
