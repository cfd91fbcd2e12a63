//! Connecting to a server and reading its replies as plain strings and numbers.

use super::error::ProbeError;
use crate::error::Error;
use crate::tls;
use crate::url::ServerUrl;
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects (and authenticates, when the URL carries credentials), then checks with PING.
pub fn connect(url: &ServerUrl) -> Result<Connection, Error> {
    let fail = |source| Error::Connect {
        url: url.to_string(),
        source,
    };
    tls::redis_connection(url, CONNECT_TIMEOUT, REPLY_TIMEOUT).map_err(fail)
}

/// A command's reply, or the server's refusal (for the report's unchecked list).
pub fn query(con: &mut Connection, args: &[&str]) -> Result<Value, ProbeError> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    Ok(cmd.query::<Value>(con)?)
}

pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.trim().parse().ok(),
    }
}

pub fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// A flat `[k1, v1, k2, v2, …]` reply (or a RESP3 map) as pairs of strings.
pub fn pairs(value: &Value) -> Vec<(String, &Value)> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        other => items(other)
            .chunks_exact(2)
            .filter_map(|pair| Some((text(&pair[0])?, &pair[1])))
            .collect(),
    }
}

/// An `INFO` section as `field → value`.
pub fn info(con: &mut Connection, section: &str) -> Result<BTreeMap<String, String>, ProbeError> {
    let reply = query(con, &["INFO", section])?;
    let body = text(&reply).unwrap_or_default();
    Ok(body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// `valkey 8.1.4` or `redis 7.0.15` from `INFO server`.
pub fn product(server: &BTreeMap<String, String>) -> (String, String) {
    match server.get("valkey_version") {
        Some(version) => ("valkey".into(), version.clone()),
        None => (
            server
                .get("server_name")
                .cloned()
                .unwrap_or_else(|| "redis".into()),
            server.get("redis_version").cloned().unwrap_or_default(),
        ),
    }
}

/// The RDB version in a DUMP payload's footer: 2 bytes little-endian before the 8-byte CRC.
pub fn dump_rdb_version(payload: &[u8]) -> Option<u16> {
    let at = payload.len().checked_sub(10)?;
    let bytes = payload.get(at..at + 2)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_footer_gives_the_version() {
        let payload = [0u8, 1, b'a', 11, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(dump_rdb_version(&payload), Some(11));
        assert_eq!(dump_rdb_version(&[1, 2]), None);
    }
}
