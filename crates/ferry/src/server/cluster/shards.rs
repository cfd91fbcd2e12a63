//! A cluster source's shards: which primary serves which slots, and which nodes (replicas
//! included) hold each shard. Read with `CLUSTER SHARDS` (Redis 7.0+, Valkey), or
//! `CLUSTER SLOTS` where that command is unknown.

use super::malformed::MalformedReply;
use crate::server::client::{Client, ClientError};
use crate::url::ServerUrl;
use ferry_repl::resp::Frame;
use std::fmt;
use std::time::Duration;

/// Slots in a cluster.
const SLOTS: i64 = 16384;

/// A node by the address its peers announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    /// `template` (credentials, TLS settings) pointed at this node.
    pub fn url(&self, template: &ServerUrl) -> ServerUrl {
        let mut url = template.clone();
        url.host = self.host.clone();
        url.port = self.port;
        url
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One primary's slots and every node of its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceShard {
    /// Inclusive `[first, last]` ranges, sorted.
    pub slots: Vec<[u16; 2]>,
    pub primary: NodeAddr,
    /// The primary and its replicas.
    pub nodes: Vec<NodeAddr>,
}

impl SourceShard {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|[a, b]| (*a..=*b).contains(&slot))
    }

    /// `0-5460` or `0-100,200-300`.
    pub fn slots_text(&self) -> String {
        slots_text(&self.slots)
    }
}

pub fn slots_text(slots: &[[u16; 2]]) -> String {
    let parts: Vec<String> = slots
        .iter()
        .map(|[a, b]| match a == b {
            true => a.to_string(),
            false => format!("{a}-{b}"),
        })
        .collect();
    parts.join(",")
}

/// The shards serving slots, ordered by their first slot. `asked_host` stands in for a
/// node announcing no address of its own.
pub async fn discover(
    client: &mut Client,
    asked_host: &str,
) -> Result<Vec<SourceShard>, ClientError> {
    let shards = match client.call(&["CLUSTER", "SHARDS"]).await? {
        Frame::Error(message) if is_unknown_command(&message) => {
            let reply = client.call_ok(&["CLUSTER", "SLOTS"]).await?;
            parse_cluster_slots(&reply, asked_host).map_err(malformed("CLUSTER SLOTS"))?
        }
        Frame::Error(message) => {
            return Err(ClientError::Command {
                command: "CLUSTER SHARDS".into(),
                message: String::from_utf8_lossy(&message).into_owned(),
            })
        }
        reply => parse_cluster_shards(&reply, asked_host).map_err(malformed("CLUSTER SHARDS"))?,
    };
    if shards.is_empty() {
        return Err(malformed("CLUSTER SHARDS")(MalformedReply::NoSlotServed));
    }
    Ok(shards)
}

/// Asks each of `nodes` in turn (any may be down after a failover) and returns the first
/// answer; `None` when none answered.
pub async fn rediscover(
    nodes: &[NodeAddr],
    template: &ServerUrl,
    connect_timeout: Duration,
) -> Option<Vec<SourceShard>> {
    for node in nodes {
        let url = node.url(template);
        let Ok(mut client) = Client::connect(&url, connect_timeout).await else {
            continue;
        };
        if let Ok(shards) = discover(&mut client, &node.host).await {
            return Some(shards);
        }
    }
    None
}

/// The error for a reply to `command` that ferry cannot read.
fn malformed(command: &'static str) -> impl Fn(MalformedReply) -> ClientError {
    move |source| ClientError::ClusterReply { command, source }
}

fn is_unknown_command(message: &[u8]) -> bool {
    let text = String::from_utf8_lossy(message).to_ascii_lowercase();
    text.contains("unknown subcommand") || text.contains("unknown command")
}

fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// `CLUSTER SHARDS`: `[["slots", [a, b, …], "nodes", [[name, value, …], …]], …]`
/// (RESP2 flat maps).
pub fn parse_cluster_shards(
    reply: &Frame,
    asked_host: &str,
) -> Result<Vec<SourceShard>, MalformedReply> {
    let Frame::Array(entries) = reply else {
        return Err(MalformedReply::NotAnArray(reply.describe()));
    };
    let mut shards = Vec::new();
    for entry in entries {
        let fields = flat_map(entry)?;
        let slots = match fields.iter().find(|(name, _)| name == "slots") {
            Some((_, Frame::Array(bounds))) => slot_pairs(bounds)?,
            _ => return Err(MalformedReply::NoSlots),
        };
        if slots.is_empty() {
            continue;
        }
        let Some((_, Frame::Array(node_entries))) = fields.iter().find(|(name, _)| name == "nodes")
        else {
            return Err(MalformedReply::NoNodes);
        };
        let mut nodes = Vec::new();
        let mut primary = None;
        for node in node_entries {
            let node = flat_map(node)?;
            let get = |key: &str| node.iter().find(|(name, _)| name == key).map(|(_, v)| *v);
            let port = match get("port").or_else(|| get("tls-port")) {
                Some(Frame::Integer(port)) => {
                    u16::try_from(*port).map_err(|_| MalformedReply::BadPort(*port))?
                }
                _ => return Err(MalformedReply::NoPort),
            };
            let ip = get("ip").and_then(text).unwrap_or_default();
            let host = match ip.as_str() {
                "" | "?" => asked_host.to_owned(),
                _ => ip,
            };
            let addr = NodeAddr { host, port };
            let role = get("role").and_then(text).unwrap_or_default();
            let health = get("health").and_then(text).unwrap_or_default();
            if role == "master" && health != "fail" && primary.is_none() {
                primary = Some(addr.clone());
            }
            nodes.push(addr);
        }
        let Some(primary) = primary else {
            return Err(MalformedReply::NoHealthyPrimary(slots_text(&slots)));
        };
        shards.push(SourceShard {
            slots,
            primary,
            nodes,
        });
    }
    shards.sort_by_key(|shard| shard.slots.first().map(|[a, _]| *a));
    Ok(shards)
}

/// `CLUSTER SLOTS`: `[[first, last, [ip, port, id, …], replica…], …]`, grouped by primary.
pub fn parse_cluster_slots(
    reply: &Frame,
    asked_host: &str,
) -> Result<Vec<SourceShard>, MalformedReply> {
    let Frame::Array(ranges) = reply else {
        return Err(MalformedReply::NotAnArray(reply.describe()));
    };
    let mut shards: Vec<SourceShard> = Vec::new();
    for range in ranges {
        let Frame::Array(fields) = range else {
            return Err(MalformedReply::RangeNotAnArray(None));
        };
        let (first, last, members) = match fields.as_slice() {
            [Frame::Integer(first), Frame::Integer(last), members @ ..] if !members.is_empty() => {
                (*first, *last, members)
            }
            _ => return Err(MalformedReply::RangeIncomplete(None)),
        };
        let bounds = checked_range(first, last)?;
        let nodes = members
            .iter()
            .map(|member| slots_node(member, asked_host))
            .collect::<Result<Vec<_>, _>>()?;
        let primary = nodes[0].clone();
        match shards.iter_mut().find(|shard| shard.primary == primary) {
            Some(shard) => {
                shard.slots.push(bounds);
                for node in nodes {
                    if !shard.nodes.contains(&node) {
                        shard.nodes.push(node);
                    }
                }
            }
            None => shards.push(SourceShard {
                slots: vec![bounds],
                primary,
                nodes,
            }),
        }
    }
    for shard in &mut shards {
        shard.slots.sort_unstable();
    }
    shards.sort_by_key(|shard| shard.slots.first().map(|[a, _]| *a));
    Ok(shards)
}

fn slots_node(frame: &Frame, asked_host: &str) -> Result<NodeAddr, MalformedReply> {
    let Frame::Array(parts) = frame else {
        return Err(MalformedReply::NodeNotAnArray(None));
    };
    match parts.as_slice() {
        [ip, Frame::Integer(port), ..] => {
            let ip = text(ip).ok_or(MalformedReply::IpNotText(None))?;
            let port = u16::try_from(*port).map_err(|_| MalformedReply::BadPort(*port))?;
            let host = match ip.as_str() {
                "" | "?" => asked_host.to_owned(),
                _ => ip,
            };
            Ok(NodeAddr { host, port })
        }
        _ => Err(MalformedReply::NoIpOrPort(None)),
    }
}

/// A RESP2 flat map (`[name, value, name, value, …]`) or a RESP3 map as pairs.
fn flat_map(frame: &Frame) -> Result<Vec<(String, &Frame)>, MalformedReply> {
    let items: &[Frame] = match frame {
        Frame::Array(items) => items,
        other => return Err(MalformedReply::NotAMap(other.describe())),
    };
    items
        .chunks(2)
        .map(|pair| match pair {
            [name, value] => text(name)
                .map(|name| (name, value))
                .ok_or(MalformedReply::MapKeyNotText),
            _ => Err(MalformedReply::OddMap),
        })
        .collect()
}

fn slot_pairs(bounds: &[Frame]) -> Result<Vec<[u16; 2]>, MalformedReply> {
    let mut slots = Vec::new();
    for pair in bounds.chunks(2) {
        match pair {
            [Frame::Integer(a), Frame::Integer(b)] => slots.push(checked_range(*a, *b)?),
            _ => return Err(MalformedReply::BoundsNotPairs),
        }
    }
    slots.sort_unstable();
    Ok(slots)
}

fn checked_range(first: i64, last: i64) -> Result<[u16; 2], MalformedReply> {
    if !(0..SLOTS).contains(&first) || !(first..SLOTS).contains(&last) {
        return Err(MalformedReply::OutOfBounds { first, last });
    }
    Ok([first as u16, last as u16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bulk(text: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    fn node(ip: &str, port: i64, role: &str, health: &str) -> Frame {
        Frame::Array(vec![
            bulk("id"),
            bulk("abc"),
            bulk("port"),
            Frame::Integer(port),
            bulk("ip"),
            bulk(ip),
            bulk("role"),
            bulk(role),
            bulk("health"),
            bulk(health),
        ])
    }

    fn shard(slots: &[i64], nodes: Vec<Frame>) -> Frame {
        Frame::Array(vec![
            bulk("slots"),
            Frame::Array(slots.iter().map(|s| Frame::Integer(*s)).collect()),
            bulk("nodes"),
            Frame::Array(nodes),
        ])
    }

    #[test]
    fn cluster_shards_give_each_primary_its_slots_and_nodes() {
        let reply = Frame::Array(vec![
            shard(
                &[8192, 16383],
                vec![
                    node("127.0.0.1", 7001, "replica", "online"),
                    node("", 7002, "master", "online"),
                ],
            ),
            shard(
                &[0, 10, 20, 8191],
                vec![node("127.0.0.1", 7000, "master", "online")],
            ),
            // A primary without slots is no shard to follow.
            shard(&[], vec![node("127.0.0.1", 7009, "master", "online")]),
        ]);
        let shards = parse_cluster_shards(&reply, "seed").unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].slots_text(), "0-10,20-8191");
        assert_eq!(shards[0].primary.to_string(), "127.0.0.1:7000");
        assert_eq!(shards[1].primary.to_string(), "seed:7002");
        assert_eq!(shards[1].nodes.len(), 2);
        assert!(shards[1].serves(16383) && !shards[1].serves(8191));
    }

    #[test]
    fn a_failed_primary_is_not_followed_and_bad_replies_are_errors() {
        let reply = Frame::Array(vec![shard(
            &[0, 16383],
            vec![node("127.0.0.1", 7000, "master", "fail")],
        )]);
        let err = parse_cluster_shards(&reply, "h").unwrap_err();
        assert_eq!(err.to_string(), "slots 0-16383 have no healthy primary");
        let reply = Frame::Array(vec![shard(&[0, 20000], vec![])]);
        assert!(parse_cluster_shards(&reply, "h").is_err());
        assert!(parse_cluster_shards(&Frame::Integer(1), "h").is_err());
        let not_a_range = Frame::Array(vec![Frame::Integer(1)]);
        assert_eq!(
            parse_cluster_slots(&not_a_range, "h")
                .unwrap_err()
                .to_string(),
            "a slot range is not an array"
        );
    }

    #[test]
    fn cluster_slots_ranges_are_grouped_by_primary() {
        let addr = |port| Frame::Array(vec![bulk("127.0.0.1"), Frame::Integer(port), bulk("id")]);
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(100),
                Frame::Integer(200),
                addr(7000),
                addr(7003),
            ]),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(99), addr(7001)]),
            Frame::Array(vec![Frame::Integer(201), Frame::Integer(16383), addr(7000)]),
        ]);
        let shards = parse_cluster_slots(&reply, "h").unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].primary.port, 7001);
        assert_eq!(shards[1].slots, vec![[100, 200], [201, 16383]]);
        assert_eq!(shards[1].nodes.len(), 2);
    }
}
