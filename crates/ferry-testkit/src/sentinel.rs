//! A Sentinel-managed group on loopback: a primary, one replica and three sentinels
//! (quorum 2) with short timeouts, so that killing the primary promotes the replica in a
//! few seconds.

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::tls::{ServerTls, TestPki};
use crate::{Server, ServerKind};

/// The name the sentinels monitor the primary under.
pub const MASTER_NAME: &str = "ferry-group";
/// How long an unanswering primary takes to count as down: short, for fast tests.
const DOWN_AFTER_MS: u32 = 1500;
/// The sentinels' failover timeout (also the pause before a second failover).
const FAILOVER_TIMEOUT_MS: u32 = 10_000;
/// The longest a failover (or the group's start) may take.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one sentinel says about one replica (`SENTINEL REPLICAS`), field by field.
pub type ReplicaFields = BTreeMap<String, String>;

pub struct SentinelGroup {
    kind: ServerKind,
    primary: Server,
    replica: Option<Server>,
    sentinels: Vec<Server>,
    /// Primaries killed by [`SentinelGroup::kill_primary`].
    dead: Vec<Server>,
    /// Every link over TLS (`tls-replication yes`): replication, the sentinels' links,
    /// and the addresses the sentinels name are the TLS ports.
    tls: bool,
}

impl SentinelGroup {
    /// Starts the primary, a replica of it, and three sentinels of the same kind, and
    /// waits until every sentinel knows the replica and the two others.
    pub fn start(kind: ServerKind) -> Result<SentinelGroup> {
        Self::start_with(kind, &[], &[])
    }

    /// [`SentinelGroup::start`] with more configuration for the replica (`replica_args`,
    /// e.g. `["--replica-priority", "200"]`) and more lines in every sentinel's file
    /// (`sentinel known-replica ferry-group 127.0.0.1 <port>`, say).
    pub fn start_with(
        kind: ServerKind,
        replica_args: &[&str],
        sentinel_lines: &[String],
    ) -> Result<SentinelGroup> {
        Self::launch(kind, replica_args, sentinel_lines, None)
    }

    /// A group whose every link is TLS (`tls-replication yes` on the data nodes and the
    /// sentinels, which monitor the primary's TLS port and are reached on theirs): the
    /// form a TLS deployment of Sentinel takes. The test's own clients still use the
    /// plain ports. Client certificates are required everywhere; each node presents
    /// `pki`'s client certificate when it connects to another.
    pub fn start_tls(kind: ServerKind, pki: &TestPki) -> Result<SentinelGroup> {
        let client = |p: &std::path::Path| p.display().to_string();
        let (cert, key) = (client(&pki.client.cert), client(&pki.client.key));
        let lines = [
            format!("tls-client-cert-file {cert}"),
            format!("tls-client-key-file {key}"),
        ];
        let args = [
            "--tls-client-cert-file",
            cert.as_str(),
            "--tls-client-key-file",
            key.as_str(),
        ];
        Self::launch(kind, &args, &lines, Some(&ServerTls::mutual(pki)))
    }

    fn launch(
        kind: ServerKind,
        replica_args: &[&str],
        sentinel_lines: &[String],
        tls: Option<&ServerTls>,
    ) -> Result<SentinelGroup> {
        // A TLS group's nodes all take the replica's TLS arguments (the client
        // certificate they present to each other).
        let start = |args: &[&str]| match tls {
            Some(tls) => {
                let mut args = args.to_vec();
                args.extend_from_slice(&["--tls-replication", "yes"]);
                Server::start_with_tls(kind, tls, &args)
            }
            None => Server::start_with_args(kind, args),
        };
        let primary = match tls {
            Some(_) => start(replica_args)?,
            None => start(&[])?,
        };
        let replicaof = match tls {
            Some(_) => primary.tls_port(),
            None => primary.port(),
        }
        .to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", &replicaof];
        args.extend_from_slice(replica_args);
        let replica = start(&args)?;
        wait_linked(&replica)?;
        let mut config = vec![
            format!("sentinel monitor {MASTER_NAME} 127.0.0.1 {replicaof} 2"),
            format!("sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}"),
            format!("sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}"),
            format!("sentinel parallel-syncs {MASTER_NAME} 1"),
        ];
        config.extend_from_slice(sentinel_lines);
        if tls.is_some() {
            config.push("tls-replication yes".to_owned());
        }
        let sentinels = (0..3)
            .map(|_| match tls {
                Some(tls) => Server::start_sentinel_with_tls(kind, tls, &config),
                None => Server::start_sentinel(kind, &config),
            })
            .collect::<Result<Vec<_>>>()?;
        let group = SentinelGroup {
            kind,
            primary,
            replica: Some(replica),
            sentinels,
            dead: Vec::new(),
            tls: tls.is_some(),
        };
        group.wait_settled()?;
        Ok(group)
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// `redis-sentinel://…#ferry-group` (`valkey-sentinel://` for Valkey;
    /// `rediss-sentinel://` with the sentinels' TLS ports for a TLS group), every
    /// sentinel listed.
    pub fn url(&self) -> String {
        let scheme = match (self.kind.is_valkey(), self.tls) {
            (true, false) => "valkey-sentinel",
            (false, false) => "redis-sentinel",
            (true, true) => "valkeys-sentinel",
            (false, true) => "rediss-sentinel",
        };
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", self.link_port(s)))
            .collect();
        format!("{scheme}://{}#{MASTER_NAME}", nodes.join(","))
    }

    /// The primary now (after [`SentinelGroup::kill_primary`], the promoted replica).
    pub fn primary(&self) -> &Server {
        &self.primary
    }

    /// The replica, while it is one.
    pub fn replica(&self) -> Option<&Server> {
        self.replica.as_ref()
    }

    pub fn sentinels(&self) -> &[Server] {
        &self.sentinels
    }

    /// The port the group's links use on `server` (its TLS port in a TLS group): the
    /// port the sentinels name.
    pub fn link_port(&self, server: &Server) -> u16 {
        if self.tls {
            server.tls_port()
        } else {
            server.port()
        }
    }

    /// Kills the primary (SIGKILL) and waits until every sentinel names the replica as
    /// the primary and it says `role:master`; it is [`SentinelGroup::primary`] from then.
    pub fn kill_primary(&mut self) -> Result<()> {
        let replica = self.replica.take().context("no replica left to promote")?;
        self.primary.kill()?;
        let promoted = self.link_port(&replica);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let named: Vec<Option<u16>> = self.sentinels.iter().map(named_port).collect();
            if named.iter().all(|port| *port == Some(promoted)) && role(&replica)? == "master" {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "no failover to 127.0.0.1:{promoted} within {SETTLE_TIMEOUT:?}: the \
                     sentinels name {named:?}; last sentinel log lines:\n{}",
                    self.sentinels[0].log_tail(20)
                );
            }
            sleep(Duration::from_millis(100));
        }
        let old = std::mem::replace(&mut self.primary, replica);
        self.dead.push(old);
        Ok(())
    }

    /// `SENTINEL REPLICAS` of every sentinel: what each knows of the primary's replicas.
    pub fn replicas_seen(&self) -> Result<Vec<Vec<ReplicaFields>>> {
        self.sentinels
            .iter()
            .map(|sentinel| {
                let mut con = sentinel.try_client()?;
                let replies: Vec<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(MASTER_NAME)
                    .query(&mut con)
                    .context("SENTINEL REPLICAS")?;
                Ok(replies.into_iter().map(pairs).collect())
            })
            .collect()
    }

    /// The primary's address every sentinel names, as ports (`None`: no answer).
    pub fn named_ports(&self) -> Vec<Option<u16>> {
        self.sentinels.iter().map(named_port).collect()
    }

    /// Every sentinel names the primary, sees two other sentinels and knows the replica.
    fn wait_settled(&self) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let replica_port = self.replica.as_ref().map(|r| self.link_port(r).to_string());
        loop {
            let mut settled = true;
            for sentinel in &self.sentinels {
                let mut con = sentinel.try_client()?;
                let fields: Vec<String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(MASTER_NAME)
                    .query(&mut con)
                    .context("SENTINEL MASTER")?;
                let fields = pairs(fields);
                let others = fields.get("num-other-sentinels").map(String::as_str);
                let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(MASTER_NAME)
                    .query(&mut con)?;
                let knows_replica = replicas
                    .into_iter()
                    .map(pairs)
                    .any(|r| r.get("port") == replica_port.as_ref());
                settled &= others == Some("2") && knows_replica;
            }
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the sentinels did not find each other and the replica within \
                     {SETTLE_TIMEOUT:?}; last log lines:\n{}",
                    self.sentinels[0].log_tail(20)
                );
            }
            sleep(Duration::from_millis(200));
        }
    }
}

/// A flat `[name, value, name, value…]` reply as a map.
fn pairs(flat: Vec<String>) -> ReplicaFields {
    flat.chunks(2)
        .filter_map(|pair| match pair {
            [name, value] => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

fn named_port(sentinel: &Server) -> Option<u16> {
    let mut con = sentinel.try_client().ok()?;
    let address: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER_NAME)
        .query(&mut con)
        .ok()?;
    address.map(|(_, port)| port)
}

fn role(server: &Server) -> Result<String> {
    let mut con = server.try_client()?;
    let reply: redis::Value = redis::cmd("ROLE").query(&mut con)?;
    match reply {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::BulkString(role)) => Ok(String::from_utf8_lossy(role).into()),
            other => bail!("ROLE: {other:?}"),
        },
        other => bail!("ROLE: {other:?}"),
    }
}

fn wait_linked(replica: &Server) -> Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.try_client()?)?;
        if info.lines().any(|l| l.trim() == "master_link_status:up") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the replica did not link to its primary:\n{info}");
        }
        sleep(Duration::from_millis(50));
    }
}
