//! What the target is, asked of the target itself: product and version (INFO server), its
//! role, which databases hold keys, the DUMP format it writes (the footer of a DUMP of a
//! probe key: the truth about what RESTORE accepts) and whether RESTORE is allowed.

use super::client::{info_value, one_line, Client, ClientError};
use bytes::Bytes;
use ferry_codec::{Format, RdbVersion};
use ferry_repl::resp::Frame;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `redis` or `valkey`.
    pub product: String,
    /// e.g. `8.1.1`.
    pub version: String,
    /// `INFO replication` says `role:slave`.
    pub is_replica: bool,
    /// Keys per database, from `INFO keyspace`.
    pub keys_per_db: BTreeMap<u64, u64>,
}

impl ServerInfo {
    /// `valkey 8.1.1`
    pub fn name(&self) -> String {
        format!("{} {}", self.product, self.version)
    }

    pub fn total_keys(&self) -> u64 {
        self.keys_per_db.values().sum()
    }

    /// (major, minor) of the product's own version.
    pub fn series(&self) -> (u32, u32) {
        let mut numbers = self
            .version
            .split('.')
            .map(|n| n.parse::<u32>().unwrap_or(0));
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
    }

    /// The DUMP format a server of this product and version writes, from its version alone.
    pub fn expected_format(&self) -> Format {
        let (major, minor) = self.series();
        let version = if self.product == "valkey" {
            if major >= 9 {
                RdbVersion::valkey(80)
            } else {
                RdbVersion::redis(11)
            }
        } else {
            match (major, minor) {
                (m, _) if m >= 8 => RdbVersion::redis(12),
                (7, n) if n >= 4 => RdbVersion::redis(12),
                (7, n) if n >= 2 => RdbVersion::redis(11),
                (7, _) => RdbVersion::redis(10),
                _ => RdbVersion::redis(9),
            }
        };
        Format::new(version)
    }
}

pub async fn server_info(client: &mut Client) -> Result<ServerInfo, ClientError> {
    let server = client.info("server").await?;
    let (product, version) = match (
        info_value(&server, "valkey_version"),
        info_value(&server, "redis_version"),
    ) {
        (Some(v), _) => ("valkey", v),
        (None, Some(v)) => ("redis", v),
        (None, None) => {
            return Err(ClientError::Protocol(
                "INFO server names no redis_version or valkey_version".into(),
            ))
        }
    };
    let replication = client.info("replication").await?;
    let keyspace = client.info("keyspace").await?;
    let keys_per_db = keyspace
        .iter()
        .filter_map(|(name, value)| {
            let db = name.strip_prefix("db")?.parse::<u64>().ok()?;
            let keys = value
                .split(',')
                .find_map(|field| field.strip_prefix("keys="))?
                .parse::<u64>()
                .ok()?;
            Some((db, keys))
        })
        .filter(|(_, keys)| *keys > 0)
        .collect();
    Ok(ServerInfo {
        product: product.to_owned(),
        version: version.to_owned(),
        is_replica: info_value(&replication, "role") == Some("slave"),
        keys_per_db,
    })
}

/// Whether the server runs in cluster mode (`INFO cluster` says `cluster_enabled:1`).
pub async fn is_cluster(client: &mut Client) -> Result<bool, ClientError> {
    let cluster = client.info("cluster").await?;
    Ok(info_value(&cluster, "cluster_enabled") == Some("1"))
}

/// The names of every command the server has (`COMMAND LIST`); `None` when it cannot
/// tell (an old server, an ACL without COMMAND).
pub async fn command_names(client: &mut Client) -> Result<Option<Vec<Bytes>>, ClientError> {
    match client.call(&["COMMAND", "LIST"]).await? {
        Frame::Array(items) => Ok(Some(
            items
                .into_iter()
                .filter_map(|item| match item {
                    Frame::Bulk(name) | Frame::Simple(name) => Some(name),
                    _ => None,
                })
                .collect(),
        )),
        _ => Ok(None),
    }
}

/// What the DUMP probe found.
#[derive(Debug, Clone)]
pub struct DumpProbe {
    /// The footer version of the target's own DUMP; `None` if DUMP was refused.
    pub dump_version: Option<u16>,
    /// `None` when RESTORE works; else the target's refusal.
    pub restore_refused: Option<String>,
}

/// SETs a probe key, DUMPs it, RESTOREs the payload under a second probe key, deletes
/// both. The keys live in db 0 for a moment only. `tag`, for a cluster node, is a hash
/// tag of a slot that node serves: both keys carry it.
pub async fn dump_probe(client: &mut Client, tag: Option<&str>) -> Result<DumpProbe, ClientError> {
    let unique = format!(
        "{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tag = tag.map(|tag| format!("{{{tag}}}")).unwrap_or_default();
    let key = format!("ferry:probe:{tag}{unique}");
    let copy = format!("ferry:probe:{tag}{unique}:restored");
    client.call_ok(&["SELECT", "0"]).await?;
    client.call_ok(&["SET", key.as_str(), "ferry"]).await?;
    let dump = client.call(&["DUMP", key.as_str()]).await;
    let result = match dump {
        Ok(Frame::Bulk(payload)) => {
            let dump_version = footer_version(&payload);
            let restore = client
                .call(&[
                    b"RESTORE".as_slice(),
                    copy.as_bytes(),
                    b"0",
                    &payload,
                    b"REPLACE",
                ])
                .await?;
            let restore_refused = match restore {
                Frame::Error(message) => Some(one_line(&message)),
                _ => None,
            };
            Ok(DumpProbe {
                dump_version,
                restore_refused,
            })
        }
        Ok(Frame::Error(message)) => Ok(DumpProbe {
            dump_version: None,
            restore_refused: Some(format!("DUMP refused: {}", one_line(&message))),
        }),
        Ok(other) => Err(ClientError::Protocol(format!(
            "DUMP answered {}",
            other.describe()
        ))),
        Err(e) => Err(e),
    };
    client.call(&["DEL", key.as_str(), copy.as_str()]).await?;
    result
}

/// The RDB version in a DUMP payload's footer: two bytes LE before the 8-byte CRC.
pub fn footer_version(payload: &Bytes) -> Option<u16> {
    let at = payload.len().checked_sub(10)?;
    let bytes = payload.get(at..at + 2)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// The format to encode RESTORE payloads in: the DUMP footer's when it is one we can write
/// (capped at the newest we know for that flavour), else the version's expectation.
pub fn format_from_dump(dump_version: u16) -> Option<Format> {
    match dump_version {
        9..=12 => Format::from_rdb_version(dump_version),
        13..=79 => Format::from_rdb_version(12),
        80.. => Format::from_rdb_version(80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(product: &str, version: &str) -> ServerInfo {
        ServerInfo {
            product: product.into(),
            version: version.into(),
            is_replica: false,
            keys_per_db: BTreeMap::new(),
        }
    }

    #[test]
    fn versions_map_to_the_formats_the_servers_dump() {
        assert_eq!(
            info("valkey", "8.1.1").expected_format().version,
            RdbVersion::redis(11)
        );
        assert_eq!(
            info("valkey", "9.1.2").expected_format().version,
            RdbVersion::valkey(80)
        );
        assert_eq!(
            info("redis", "8.0.2").expected_format().version,
            RdbVersion::redis(12)
        );
        assert_eq!(
            info("redis", "6.0.16").expected_format().version,
            RdbVersion::redis(9)
        );
    }

    #[test]
    fn footer_version_reads_the_two_bytes_before_the_crc() {
        let mut payload = vec![0u8, 1, b'x'];
        payload.extend_from_slice(&80u16.to_le_bytes());
        payload.extend_from_slice(&[0; 8]);
        assert_eq!(footer_version(&Bytes::from(payload)), Some(80));
        assert_eq!(footer_version(&Bytes::from_static(b"short")), None);
        assert_eq!(
            format_from_dump(81).unwrap().version,
            RdbVersion::valkey(80)
        );
        assert_eq!(format_from_dump(11).unwrap().version, RdbVersion::redis(11));
        assert!(format_from_dump(5).is_none());
    }
}

/// What [`enter_import_mode`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// The target has no import mode (before Valkey 8.1, Redis).
    Absent,
    /// Now on; `was_on` tells whether it already was (an earlier run's, or set by hand).
    Entered { was_on: bool },
}

/// Puts the target in import mode (Valkey 8.1+ `import-mode`): it keeps keys past their
/// expiry, deletes none on its own and evicts none, and the connection marked
/// `CLIENT IMPORT-SOURCE ON` sees such keys as live — a replica's view of expiry, on a
/// primary. `Err` with the server's reason when it has it but refuses (e.g. an ACL
/// without CONFIG).
pub async fn enter_import_mode(client: &mut Client) -> Result<ImportMode, ImportModeRefused> {
    let refused = |step: &str, message: String| ImportModeRefused {
        step: step.to_string(),
        message,
    };
    let was_on = match client.call(&["CONFIG", "GET", "import-mode"]).await {
        // Servers without the setting answer an empty list.
        Ok(Frame::Array(items)) if items.is_empty() => return Ok(ImportMode::Absent),
        Ok(Frame::Array(items)) => {
            matches!(items.get(1), Some(Frame::Bulk(value)) if value.eq_ignore_ascii_case(b"yes"))
        }
        Ok(Frame::Error(message) | Frame::BulkError(message)) => {
            return Err(refused("CONFIG GET import-mode", one_line(&message)))
        }
        Ok(other) => return Err(refused("CONFIG GET import-mode", other.describe())),
        Err(error) => return Err(refused("CONFIG GET import-mode", error.to_string())),
    };
    for step in [
        &["CONFIG", "SET", "import-mode", "yes"][..],
        &["CLIENT", "IMPORT-SOURCE", "ON"][..],
    ] {
        match client.call(step).await {
            Ok(Frame::Simple(_)) => {}
            Ok(Frame::Error(message) | Frame::BulkError(message)) => {
                return Err(refused(&step.join(" "), one_line(&message)))
            }
            Ok(other) => return Err(refused(&step.join(" "), other.describe())),
            Err(error) => return Err(refused(&step.join(" "), error.to_string())),
        }
    }
    Ok(ImportMode::Entered { was_on })
}

/// The target has import mode but would not enter it.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct ImportModeRefused {
    pub step: String,
    pub message: String,
}
