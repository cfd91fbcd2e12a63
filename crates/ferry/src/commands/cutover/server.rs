//! The few commands cutover sends to the two servers, over one blocking connection each.

use crate::url::ServerUrl;
use redis::Connection;
use std::time::Duration;

/// Every command here is answered at once by a healthy server.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one server, named for messages by host:port (never the password).
pub struct ServerLink {
    pub address: String,
    connection: Connection,
}

/// The node would not give its cluster's slot map: the command and why, as
/// `server::cluster::blocking` words it (e.g. `CLUSTER SHARDS: …`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SlotMapError(crate::server::cluster::blocking::PrimariesError);

/// What INFO replication says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub role: String,
    pub replid: String,
    /// Every write the server accepted so far is at or below this offset.
    pub offset: i64,
    /// For a replica: its primary.
    pub primary: Option<(String, u16)>,
}

impl ServerLink {
    /// Connects (TLS and password as the URL says) and checks the login with PING.
    pub fn connect(url: &ServerUrl) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let connection = crate::tls::redis_connection(url, TIMEOUT, TIMEOUT)?;
        Ok(Self {
            address: url.address(),
            connection,
        })
    }

    pub fn ping(&mut self) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query(&mut self.connection)
    }

    /// Whether the server runs in cluster mode (`cluster_enabled:1`).
    pub fn is_cluster(&mut self) -> Result<bool, redis::RedisError> {
        let text: String = redis::cmd("INFO")
            .arg("cluster")
            .query(&mut self.connection)?;
        Ok(text.lines().any(|line| line.trim() == "cluster_enabled:1"))
    }

    /// The primaries of this node's cluster, as it sees them.
    pub fn slot_map(
        &mut self,
        asked_host: &str,
        tls: bool,
    ) -> Result<crate::server::cluster::topology::SlotMap, SlotMapError> {
        crate::server::cluster::blocking::primaries(&mut self.connection, asked_host, tls)
            .map_err(SlotMapError)
    }

    pub fn replication(&mut self) -> Result<Replication, redis::RedisError> {
        let text: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.connection)?;
        parse_replication(&text).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "INFO replication lacks role, master_replid or master_repl_offset",
            ))
        })
    }

    /// Pauses every client's writes (reads go on) for at most `timeout`.
    pub fn pause_writes(&mut self, timeout: Duration) -> Result<(), redis::RedisError> {
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(timeout.as_millis() as u64)
            .arg("WRITE")
            .query(&mut self.connection)
    }

    pub fn unpause(&mut self) -> Result<(), redis::RedisError> {
        redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query(&mut self.connection)
    }

    /// Closes every client connection but this one and replicas' (normal clients and
    /// Pub/Sub subscribers, who would otherwise wait for messages now published on the
    /// target); returns how many.
    pub fn kill_clients(&mut self) -> Result<u64, redis::RedisError> {
        let (normal, subscribers): (u64, u64) = redis::pipe()
            .cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .arg("SKIPME")
            .arg("yes")
            .query(&mut self.connection)?;
        Ok(normal + subscribers)
    }

    /// Ends what only a migration target needs, now that the migration is stopped:
    /// ferry's resume marker (a key of ours among the user's) and Valkey's import mode (in
    /// which the server deletes no key on its own expiry). Says what it did.
    pub fn leave_migration(&mut self) -> Result<Vec<String>, redis::RedisError> {
        use crate::state::marker;
        let mut done = Vec::new();
        redis::cmd("SELECT")
            .arg(marker::DB)
            .query::<()>(&mut self.connection)?;
        // The marker, and the per-shard or per-slot ones (`ferry:migrate:applied:…`), as
        // SCAN finds them: a cluster node lists its own keys and answers MOVED for others.
        // A large COUNT: this runs inside the write pause, and the user's keyspace may be big.
        let options = redis::ScanOptions::default()
            .with_pattern(format!("{}*", marker::KEY))
            .with_count(1000);
        let found: Vec<Vec<u8>> =
            redis::Commands::scan_options::<Vec<u8>>(&mut self.connection, options)?
                .collect::<Result<_, _>>()?;
        let keys: Vec<Vec<u8>> = found
            .into_iter()
            .filter(|key| marker::is_marker(key))
            .collect();
        let mut deleted: u64 = 0;
        // One key per DEL: on a cluster node, keys of several slots cannot share one.
        for key in &keys {
            deleted += redis::cmd("DEL")
                .arg(key)
                .query::<u64>(&mut self.connection)?;
        }
        match deleted {
            0 => {}
            1 if keys == [marker::KEY.as_bytes()] => done.push(format!("deleted {}", marker::KEY)),
            n => done.push(format!("deleted {n} ferry marker keys ({}…)", marker::KEY)),
        }
        // Servers without the setting answer an empty list.
        let setting: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("import-mode")
            .query(&mut self.connection)?;
        if setting.get(1).is_some_and(|value| value == "yes") {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("import-mode")
                .arg("no")
                .query::<()>(&mut self.connection)?;
            done.push("import mode off".to_owned());
        }
        Ok(done)
    }

    /// REPLICAOF NO ONE, or back to `primary` (undoing a promotion).
    pub fn replicate_from(
        &mut self,
        primary: Option<&(String, u16)>,
    ) -> Result<(), redis::RedisError> {
        let mut cmd = redis::cmd("REPLICAOF");
        match primary {
            Some((host, port)) => cmd.arg(host).arg(*port),
            None => cmd.arg("NO").arg("ONE"),
        };
        cmd.query(&mut self.connection)
    }
}

fn parse_replication(text: &str) -> Option<Replication> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let primary = match (field("master_host"), field("master_port")) {
        (Some(host), Some(port)) => Some((host.to_owned(), port.parse().ok()?)),
        _ => None,
    };
    Some(Replication {
        role: field("role")?.to_owned(),
        replid: field("master_replid")?.to_owned(),
        offset: field("master_repl_offset")?.parse().ok()?,
        primary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_replication_of_a_primary_and_a_replica() {
        let primary = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_replid:abc\r\nmaster_replid2:0000\r\nmaster_repl_offset:1234\r\n";
        let parsed = parse_replication(primary).unwrap();
        assert_eq!(
            parsed,
            Replication {
                role: "master".into(),
                replid: "abc".into(),
                offset: 1234,
                primary: None
            }
        );
        let replica = "role:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:7000\r\nmaster_replid:d\r\nmaster_repl_offset:9\r\n";
        assert_eq!(
            parse_replication(replica).unwrap().primary,
            Some(("10.0.0.1".into(), 7000))
        );
        assert_eq!(parse_replication("role:master\r\n"), None);
    }
}
