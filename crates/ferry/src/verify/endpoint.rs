//! One side of the comparison, a standalone server or a cluster: its connections, what it
//! can do, and paced commands. Commands about a key go through [`Endpoint::query`] and
//! [`Endpoint::pipeline`], which on a cluster send each to the primary serving the key's
//! slot ([`super::cluster`]); commands about a server's keyspace (SCAN, DBSIZE,
//! RANDOMKEY, INFO) name the node they are for ([`Endpoint::nodes`]).

use super::error::{Role, VerifyError};
use super::limiter::Limiter;
use super::node::Node;
use super::reply;
use crate::server::client::{info_value, parse_info};
use crate::server::cluster::topology::SlotMap;
use crate::url::ServerUrl;
use redis::{Cmd, FromRedisValue, Pipeline, Value};
use std::collections::BTreeMap;

/// Optional commands, detected once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Abilities {
    /// Absolute key expiry (Redis 7.0+, Valkey); else derived from PTTL.
    pub pexpiretime: bool,
    /// Hash field TTLs (Redis 7.4+, Valkey 9.0+).
    pub hash_field_ttl: bool,
    /// Built-in vector sets (Redis 8).
    pub vector_sets: bool,
    /// Whether XREADGROUP's effect on a consumer group's entries-read reaches replicas.
    /// Redis before 7.4 propagates reads as XCLAIMs without it (fixed by redis/redis#12898,
    /// which Valkey has from its fork); its replicas keep a stale or unknown counter.
    pub group_counters_replicated: bool,
}

pub struct Endpoint {
    pub role: Role,
    /// The URL's host:port, safe to print.
    pub server: String,
    pub abilities: Abilities,
    pub(super) limiter: Limiter,
    /// Credentials and TLS for connecting to the other nodes of a cluster.
    pub(super) url: ServerUrl,
    /// Open connections by host:port: the one server, or the cluster nodes used so far.
    pub(super) connections: BTreeMap<String, Node>,
    /// Slot → primary; `Some` when this side is a cluster.
    pub(super) slots: Option<SlotMap>,
    /// A cluster's databases (`cluster-databases`; 1 before Valkey 9.0).
    pub(super) cluster_databases: u32,
    /// The database commands are for: selected on each cluster connection as it is used.
    db: u32,
    /// The node the last command went to, for naming it in a reply error.
    pub(super) last_node: String,
}

impl Endpoint {
    pub fn connect(
        role: Role,
        url: &ServerUrl,
        max_ops_per_sec: Option<u32>,
    ) -> Result<Self, VerifyError> {
        let server = url.address();
        let first = Node::connect(role, url)?;
        let mut endpoint = Self {
            role,
            server: server.clone(),
            abilities: Abilities::default(),
            limiter: Limiter::new(max_ops_per_sec),
            url: url.clone(),
            connections: BTreeMap::from([(server.clone(), first)]),
            slots: None,
            cluster_databases: 1,
            db: 0,
            last_node: server.clone(),
        };
        endpoint.detect_cluster()?;
        endpoint.abilities = Abilities {
            pexpiretime: endpoint.has_command("PEXPIRETIME")?,
            hash_field_ttl: endpoint.has_command("HPEXPIRETIME")?,
            vector_sets: endpoint.has_command("VCARD")?,
            group_counters_replicated: endpoint.replicates_group_counters()?,
        };
        Ok(endpoint)
    }

    fn replicates_group_counters(&mut self) -> Result<bool, VerifyError> {
        let server = self.server.clone();
        let info: String = self.node_query(&server, redis::cmd("INFO").arg("server"))?;
        let info = parse_info(info.as_bytes());
        Ok(match info_value(&info, "valkey_version") {
            Some(_) => true,
            None => {
                let version = info_value(&info, "redis_version").unwrap_or("0");
                let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
                let series = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
                series >= (7, 4)
            }
        })
    }

    fn has_command(&mut self, name: &str) -> Result<bool, VerifyError> {
        let server = self.server.clone();
        let info: Value = self.node_query(&server, redis::cmd("COMMAND").arg("INFO").arg(name))?;
        Ok(reply::items(&info)
            .and_then(|items| items.first())
            .is_some_and(|first| !matches!(first, Value::Nil)))
    }

    pub fn is_cluster(&self) -> bool {
        self.slots.is_some()
    }

    /// Whether this side can hold keys in `db`: a cluster only in its
    /// `cluster-databases`.
    pub fn has_database(&self, db: u32) -> bool {
        !self.is_cluster() || db < self.cluster_databases
    }

    /// The servers holding this side's keys: the one server, or every primary.
    pub fn nodes(&self) -> Vec<String> {
        match &self.slots {
            None => vec![self.server.clone()],
            Some(map) => map.nodes.iter().map(node_address).collect(),
        }
    }

    /// "standalone host:port" or "cluster of N primaries (host:port, …)".
    pub fn describe(&self) -> String {
        match &self.slots {
            None => format!("standalone {}", self.server),
            Some(map) => format!(
                "cluster of {} primaries ({})",
                map.nodes.len(),
                self.nodes().join(", ")
            ),
        }
    }

    /// Sends one command about a key (its first argument; XINFO's second).
    pub fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, VerifyError> {
        if self.is_cluster() {
            self.limiter.take(1);
            let value = self.routed(cmd)?;
            return T::from_redis_value(value)
                .map_err(|e| self.command_error(cmd_name(cmd), e.into()));
        }
        let server = self.server.clone();
        self.node_query(&server, cmd)
    }

    /// Sends a pipeline of `commands` commands, each about the key in its first argument;
    /// `what` names it in errors.
    pub fn pipeline<T: FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
        commands: usize,
        what: &str,
    ) -> Result<T, VerifyError> {
        if self.is_cluster() {
            self.limiter.take(commands as u64);
            let values = self.routed_pipeline(pipe, what)?;
            return T::from_redis_value(Value::Array(values))
                .map_err(|e| self.command_error(what.to_owned(), e.into()));
        }
        let server = self.server.clone();
        self.node_pipeline(&server, pipe, commands, what)
    }

    /// Sends one command to the node at `address` (one of [`Endpoint::nodes`]).
    pub fn node_query<T: FromRedisValue>(
        &mut self,
        address: &str,
        cmd: &Cmd,
    ) -> Result<T, VerifyError> {
        self.limiter.take(1);
        self.connection(address)?
            .query(cmd)
            .map_err(|source| self.command_error(cmd_name(cmd), source))
    }

    /// Sends a pipeline to the node at `address`.
    pub fn node_pipeline<T: FromRedisValue>(
        &mut self,
        address: &str,
        pipe: &Pipeline,
        commands: usize,
        what: &str,
    ) -> Result<T, VerifyError> {
        self.limiter.take(commands as u64);
        self.connection(address)?
            .pipeline(pipe)
            .map_err(|source| self.command_error(what.to_owned(), source))
    }

    /// The connection to `address`, opened on first use; later errors name this node.
    pub(super) fn connection(&mut self, address: &str) -> Result<&mut Node, VerifyError> {
        if self.last_node != address {
            address.clone_into(&mut self.last_node);
        }
        if !self.connections.contains_key(address) {
            let url = node_url(&self.url, address)
                .ok_or_else(|| self.reply_error("cluster node address"))?;
            let mut node = Node::connect(self.role, &url)?;
            // Another node's URL names no database: the connection starts in 0.
            node.selected(0);
            self.connections.insert(address.to_owned(), node);
        }
        // A cluster's connections take the database as they are used, the ones opened
        // for a redirect included.
        let db = self.db;
        let role = self.role;
        let several = self.is_cluster() && self.cluster_databases > 1;
        match self.connections.get_mut(address) {
            Some(node) if several => {
                if node.needs_select(db) {
                    node.query::<()>(redis::cmd("SELECT").arg(db))
                        .map_err(|source| VerifyError::Command {
                            role,
                            server: address.to_owned(),
                            command: "SELECT".to_owned(),
                            source,
                        })?;
                    node.selected(db);
                }
                Ok(node)
            }
            Some(node) => Ok(node),
            None => Err(VerifyError::Reply {
                role: self.role,
                server: address.to_owned(),
                command: "connect".to_owned(),
            }),
        }
    }

    /// Selects `db` on every connection (a cluster's as each is used).
    pub fn select(&mut self, db: u32) -> Result<(), VerifyError> {
        if self.is_cluster() {
            if !self.has_database(db) {
                return Err(self.reply_error(&format!(
                    "SELECT {db} (the cluster has {})",
                    crate::server::cluster::databases_held(u64::from(self.cluster_databases))
                )));
            }
            self.db = db;
            return Ok(());
        }
        let server = self.server.clone();
        if self.connection(&server)?.needs_select(db) {
            self.node_query::<()>(&server, redis::cmd("SELECT").arg(db))?;
            self.connection(&server)?.selected(db);
        }
        Ok(())
    }

    pub fn command_error(&self, command: String, source: redis::RedisError) -> VerifyError {
        VerifyError::Command {
            role: self.role,
            server: self.last_node.clone(),
            command,
            source,
        }
    }

    pub fn reply_error(&self, command: &str) -> VerifyError {
        VerifyError::Reply {
            role: self.role,
            server: self.last_node.clone(),
            command: command.to_owned(),
        }
    }

    /// Database numbers that hold keys on any node, from INFO keyspace ("db3:keys=12,…").
    pub fn databases(&mut self) -> Result<Vec<u32>, VerifyError> {
        let mut dbs = Vec::new();
        for node in self.nodes() {
            let info: String = self.node_query(&node, redis::cmd("INFO").arg("keyspace"))?;
            dbs.extend(info.lines().filter_map(|line| {
                line.strip_prefix("db")?
                    .split(':')
                    .next()?
                    .parse::<u32>()
                    .ok()
            }));
        }
        dbs.sort_unstable();
        dbs.dedup();
        Ok(dbs)
    }
}

/// The URL of another node of `base`'s cluster at `address` (host:port; an empty host
/// is `base`'s): the same credentials and TLS, no database.
fn node_url(base: &ServerUrl, address: &str) -> Option<ServerUrl> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(ServerUrl {
        host: if host.is_empty() {
            base.host.clone()
        } else {
            host.to_owned()
        },
        port,
        db: None,
        ..base.clone()
    })
}

/// host:port of a cluster node (IPv6 hosts in brackets).
pub fn node_address(node: &crate::server::cluster::topology::Node) -> String {
    if node.host.contains(':') {
        format!("[{}]:{}", node.host, node.port)
    } else {
        format!("{}:{}", node.host, node.port)
    }
}

/// The command's name (its first word) for messages; arguments may be user data.
pub fn cmd_name(cmd: &Cmd) -> String {
    cmd.args_iter()
        .next()
        .and_then(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).to_uppercase()),
            _ => None,
        })
        .unwrap_or_else(|| "command".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_nodes_keep_the_credentials_and_drop_the_database() {
        let base = ServerUrl::parse("rediss://user:pw@seed:7000/3").unwrap();
        let url = node_url(&base, "10.0.0.2:7001").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.db),
            ("10.0.0.2", 7001, None)
        );
        assert_eq!(url.username.as_deref(), Some("user"));
        assert_eq!(url.password, base.password);
        assert!(url.tls.is_some());
        assert_eq!(node_url(&base, "[::1]:7002").unwrap().host, "::1");
        assert_eq!(node_url(&base, ":7003").unwrap().host, "seed");
        assert!(node_url(&base, "no-port").is_none());
    }
}
