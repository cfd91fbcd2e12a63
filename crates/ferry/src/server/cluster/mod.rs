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
