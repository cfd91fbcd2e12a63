//! A cluster as a client sees it: key slots ([`slot`]), the slot map of the primaries
//! ([`topology`], and [`blocking`] over redis-rs), and the shards with their replicas
//! ([`shards`], what a cluster source is read by); what is wrong with a reply they cannot
//! read ([`malformed`]).

pub mod blocking;
pub mod malformed;
pub mod shards;
pub mod slot;
pub mod topology;

use crate::server::client::{Client, ClientError};
use ferry_repl::resp::Frame;

/// What a cluster of `databases` databases (`cluster-databases`) holds, for messages:
/// "database 0 only" or "databases 0 to 15".
pub fn databases_held(databases: u64) -> String {
    match databases {
        0 | 1 => "database 0 only".to_owned(),
        n => format!("databases 0 to {}", n - 1),
    }
}

/// How many databases a cluster node has: `cluster-databases` (Valkey 9.0+). 1, database 0
/// alone, where the setting does not exist (Redis, Valkey before 9.0) or CONFIG is refused.
pub async fn databases(client: &mut Client) -> Result<u64, ClientError> {
    let reply = client.call(&["CONFIG", "GET", "cluster-databases"]).await?;
    Ok(config_number(&reply).unwrap_or(1).max(1))
}

/// The value of a one-setting `CONFIG GET` reply, `[name, value]`: `None` for an empty
/// reply (no such setting) or an error.
fn config_number(reply: &Frame) -> Option<u64> {
    let Frame::Array(items) = reply else {
        return None;
    };
    match items.get(1)? {
        Frame::Bulk(value) | Frame::Simple(value) => std::str::from_utf8(value).ok()?.parse().ok(),
        _ => None,
    }
}

/// A hash tag whose keys the node behind `client` serves (for keys ferry writes through
/// that one connection, such as the DUMP probe's).
pub async fn probe_tag(client: &mut Client, asked_host: &str) -> Result<String, ClientError> {
    let id = match client.call_ok(&["CLUSTER", "MYID"]).await? {
        Frame::Bulk(id) | Frame::Simple(id) => String::from_utf8_lossy(&id).into_owned(),
        other => {
            return Err(ClientError::Protocol(format!(
                "CLUSTER MYID answered {}",
                other.describe()
            )))
        }
    };
    let map = topology::discover(client, asked_host).await?;
    map.tag_served_by(&id).ok_or_else(|| ClientError::Command {
        command: "CLUSTER SLOTS".into(),
        message: format!(
            "the node ferry connected to ({id}) serves no slot; point --target at a primary"
        ),
    })
}
