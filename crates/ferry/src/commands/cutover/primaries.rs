//! The servers a cutover pauses: the source itself, or every primary of a cluster source.
//! Each is paused, read, checked and unpaused on its own connection; a cluster's writes
//! are only paused once every primary's are, and the window counts from the first.

use super::server::{Replication, ServerLink};
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

fn line(error: &(dyn std::error::Error + 'static)) -> String {
    one_line(chain(error))
}

impl Primaries {
    /// The server at `url`, or, when it is a cluster node, every primary its cluster
    /// lists (reached with `url`'s credentials and TLS). Each must be a primary.
    pub fn connect(url: &ServerUrl) -> Result<Primaries, String> {
        let address = url.address();
        let mut seed = ServerLink::connect(url)
            .map_err(|e| format!("source {address} is unreachable: {}", line(&*e)))?;
        let cluster = seed
            .is_cluster()
            .map_err(|e| format!("source {address}: {}", line(&e)))?;
        let list = if cluster {
            let map = seed
                .slot_map(&url.host, url.tls.is_some())
                .map_err(|why| format!("source {address}: {why}"))?;
            let mut list = Vec::with_capacity(map.nodes.len());
            for node in &map.nodes {
                let mut node_url = url.clone();
                node_url.host = node.host.clone();
                node_url.port = node.port;
                let node_address = node_url.address();
                let link = ServerLink::connect(&node_url).map_err(|e| {
                    format!(
                        "source primary {node_address} (of the cluster of {address}) is \
                         unreachable: {}",
                        line(&*e)
                    )
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
                return Err(format!(
                    "source {} is a replica (role:{}); pause its primary instead",
                    primary.link.address, replication.role
                ));
            }
        }
        Ok(primaries)
    }

    /// INFO replication of each, in order.
    pub fn replication(&mut self) -> Result<Vec<Replication>, String> {
        self.list
            .iter_mut()
            .map(|p| {
                p.link
                    .replication()
                    .map_err(|e| format!("source {}: {}", p.link.address, line(&e)))
            })
            .collect()
    }

    /// `CLIENT PAUSE … WRITE` on each in turn. The error says whether a pause may be in
    /// force somewhere (then everything must be unpaused).
    pub fn pause_writes(&mut self, timeout: Duration) -> Result<(), (String, bool)> {
        for (index, primary) in self.list.iter_mut().enumerate() {
            if let Err(error) = primary.link.pause_writes(timeout) {
                // A lost connection may have left the pause in force.
                let maybe_paused = index > 0 || error.is_io_error() || error.is_timeout();
                return Err((
                    format!(
                        "CLIENT PAUSE WRITE on {} failed (it needs Redis 6.2+ or Valkey): {}",
                        primary.link.address,
                        line(&error)
                    ),
                    maybe_paused,
                ));
            }
        }
        Ok(())
    }

    /// Closes every client connection on each (see [`ServerLink::kill_clients`]).
    pub fn kill_clients(&mut self) -> Result<u64, String> {
        let mut killed = 0;
        for primary in &mut self.list {
            killed += primary
                .link
                .kill_clients()
                .map_err(|e| format!("{}: {}", primary.link.address, line(&e)))?;
        }
        Ok(killed)
    }

    /// `CLIENT UNPAUSE` on each, on a new connection where the old one broke; tries
    /// every primary whatever fails, and reports the failures.
    pub fn unpause(&mut self) -> Result<(), String> {
        let mut failed = Vec::new();
        for primary in &mut self.list {
            if primary.link.unpause().is_ok() {
                continue;
            }
            let fresh = ServerLink::connect(&primary.url)
                .map_err(|e| line(&*e))
                .and_then(|mut fresh| fresh.unpause().map_err(|e| line(&e)).map(|()| fresh));
            match fresh {
                Ok(fresh) => primary.link = fresh,
                Err(why) => failed.push(format!("{}: {why}", primary.link.address)),
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(failed.join("; ")),
        }
    }

    pub fn addresses(&self) -> Vec<String> {
        self.list.iter().map(|p| p.link.address.clone()).collect()
    }
}
