//! The servers a cutover pauses: the source itself, or every primary of a cluster source.
//! Each is paused, read, checked and unpaused on its own connection; a cluster's writes
//! are only paused once every primary's are, and the window counts from the first.

use super::server::{Replication, ServerLink, SlotMapError};
use crate::error::{chain, one_line};
use crate::url::ServerUrl;
use std::time::Duration;

/// One primary: where it is and the connection to it.
pub struct Primary {
    pub url: ServerUrl,
    pub link: ServerLink,
}

pub struct Primaries {
    pub list: Vec<Primary>,
    /// Whether these are a cluster's primaries (found through the node in `--source`).
    pub cluster: bool,
}

/// A connection that could not be made, as [`ServerLink::connect`] reports it.
type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// Why the source's primaries could not be reached, read or handled. Each names the
/// server; the server's own words follow as the source.
#[derive(Debug, thiserror::Error)]
pub enum PrimaryError {
    #[error("source {address} is unreachable")]
    Unreachable {
        address: String,
        #[source]
        source: ConnectError,
    },
    /// An INFO the source (or one of its primaries) did not answer.
    #[error("source {address}")]
    Info {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("source {address}")]
    SlotMap {
        address: String,
        #[source]
        source: SlotMapError,
    },
    #[error("source primary {node} (of the cluster of {address}) is unreachable")]
    NodeUnreachable {
        node: String,
        address: String,
        #[source]
        source: ConnectError,
    },
    #[error("source {address} is a replica (role:{role}); pause its primary instead")]
    Replica { address: String, role: String },
    #[error("{address}")]
    KillClients {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    /// Every primary that stayed paused, and why (none of them is a cause of the others).
    #[error("{}", unpause_failures(.0))]
    Unpause(Vec<UnpauseFailure>),
}

/// `CLIENT PAUSE … WRITE` failed on one primary.
#[derive(Debug, thiserror::Error)]
#[error("CLIENT PAUSE WRITE on {address} failed (it needs Redis 6.2+ or Valkey)")]
pub struct PauseError {
    address: String,
    /// Whether a pause may be in force somewhere, so that every primary must be unpaused.
    pub maybe_paused: bool,
    #[source]
    source: redis::RedisError,
}

/// One primary that could not be unpaused, on its connection or on a new one.
#[derive(Debug)]
pub struct UnpauseFailure {
    address: String,
    cause: UnpauseCause,
}

#[derive(Debug, thiserror::Error)]
enum UnpauseCause {
    #[error(transparent)]
    Connect(ConnectError),
    #[error(transparent)]
    Unpause(redis::RedisError),
}

/// `127.0.0.1:7000: why; 127.0.0.1:7001: why`.
fn unpause_failures(failures: &[UnpauseFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.address, one_line(chain(&f.cause))))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Primaries {
    /// The server at `url`, or, when it is a cluster node, every primary its cluster
    /// lists (reached with `url`'s credentials and TLS). Each must be a primary.
    pub fn connect(url: &ServerUrl) -> Result<Primaries, PrimaryError> {
        let address = url.address();
        let mut seed = ServerLink::connect(url).map_err(|source| PrimaryError::Unreachable {
            address: address.clone(),
            source,
        })?;
        let cluster = seed.is_cluster().map_err(|source| PrimaryError::Info {
            address: address.clone(),
            source,
        })?;
        let list = if cluster {
            let map = seed
                .slot_map(&url.host, url.tls.is_some())
                .map_err(|source| PrimaryError::SlotMap {
                    address: address.clone(),
                    source,
                })?;
            let mut list = Vec::with_capacity(map.nodes.len());
            for node in &map.nodes {
                let mut node_url = url.clone();
                node_url.host = node.host.clone();
                node_url.port = node.port;
                let link = ServerLink::connect(&node_url).map_err(|source| {
                    PrimaryError::NodeUnreachable {
                        node: node_url.address(),
                        address: address.clone(),
                        source,
                    }
                })?;
                list.push(Primary {
                    url: node_url,
                    link,
                });
            }
            list
        } else {
            vec![Primary {
                url: url.clone(),
                link: seed,
            }]
        };
        let mut primaries = Primaries { list, cluster };
        let roles = primaries.replication()?;
        for (primary, replication) in primaries.list.iter().zip(roles) {
            if replication.role != "master" {
                return Err(PrimaryError::Replica {
                    address: primary.link.address.clone(),
                    role: replication.role,
                });
            }
        }
        Ok(primaries)
    }

    /// INFO replication of each, in order.
    pub fn replication(&mut self) -> Result<Vec<Replication>, PrimaryError> {
        self.list
            .iter_mut()
            .map(|p| {
                p.link.replication().map_err(|source| PrimaryError::Info {
                    address: p.link.address.clone(),
                    source,
                })
            })
            .collect()
    }

    /// `CLIENT PAUSE … WRITE` on each in turn.
    pub fn pause_writes(&mut self, timeout: Duration) -> Result<(), PauseError> {
        for (index, primary) in self.list.iter_mut().enumerate() {
            if let Err(source) = primary.link.pause_writes(timeout) {
                // A lost connection may have left the pause in force.
                let maybe_paused = index > 0 || source.is_io_error() || source.is_timeout();
                return Err(PauseError {
                    address: primary.link.address.clone(),
                    maybe_paused,
                    source,
                });
            }
        }
        Ok(())
    }

    /// Closes every client connection on each (see [`ServerLink::kill_clients`]).
    pub fn kill_clients(&mut self) -> Result<u64, PrimaryError> {
        let mut killed = 0;
        for primary in &mut self.list {
            killed += primary
                .link
                .kill_clients()
                .map_err(|source| PrimaryError::KillClients {
                    address: primary.link.address.clone(),
                    source,
                })?;
        }
        Ok(killed)
    }

    /// `CLIENT UNPAUSE` on each, on a new connection where the old one broke; tries
    /// every primary whatever fails, and reports the failures.
    pub fn unpause(&mut self) -> Result<(), PrimaryError> {
        let mut failed = Vec::new();
        for primary in &mut self.list {
            if primary.link.unpause().is_ok() {
                continue;
            }
            let fresh = ServerLink::connect(&primary.url)
                .map_err(UnpauseCause::Connect)
                .and_then(|mut fresh| {
                    fresh
                        .unpause()
                        .map_err(UnpauseCause::Unpause)
                        .map(|()| fresh)
                });
            match fresh {
                Ok(fresh) => primary.link = fresh,
                Err(cause) => failed.push(UnpauseFailure {
                    address: primary.link.address.clone(),
                    cause,
                }),
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(PrimaryError::Unpause(failed)),
        }
    }

    pub fn addresses(&self) -> Vec<String> {
        self.list.iter().map(|p| p.link.address.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_primary_left_paused_is_named_with_its_reason() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let failures = vec![
            UnpauseFailure {
                address: "a:1".into(),
                cause: UnpauseCause::Connect(Box::new(refused)),
            },
            UnpauseFailure {
                address: "b:2".into(),
                cause: UnpauseCause::Unpause(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "broken pipe",
                ))),
            },
        ];
        let error = PrimaryError::Unpause(failures);
        assert_eq!(
            one_line(chain(&error)),
            "a:1: refused; b:2: broken pipe - Io"
        );
    }
}
