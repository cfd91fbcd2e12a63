//! Which primary serves which slot, read from a node with `CLUSTER SLOTS` (migrate's
//! writer) or `CLUSTER SHARDS` (verify, falling back to `CLUSTER SLOTS` before 7.0).

use super::malformed::MalformedReply;
use super::slot::{key_slot, SLOTS};
use crate::server::client::{Client, ClientError};
use ferry_repl::resp::Frame;

/// A primary of the cluster, by the address its peers announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
    /// The node ID, when the reply gives it.
    pub id: Option<String>,
}

/// Slot → primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    pub nodes: Vec<Node>,
    /// For each slot, the index in `nodes` of its owner.
    owners: Vec<Option<usize>>,
}

impl SlotMap {
    /// The index (in [`SlotMap::nodes`]) of the primary serving `slot`.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        self.owners.get(slot as usize).copied().flatten()
    }

    /// A hash tag whose slot the node `id` serves: keys carrying it go to that node.
    pub fn tag_served_by(&self, id: &str) -> Option<String> {
        let node = self
            .nodes
            .iter()
            .position(|node| node.id.as_deref() == Some(id))?;
        // Each candidate lands on a given node with its share of the slots: a few
        // thousand tries find any node serving at least one slot in a thousand.
        (0..20_000u32)
            .map(|i| format!("ferry{i}"))
            .find(|tag| self.owner(key_slot(tag.as_bytes())) == Some(node))
    }

    /// Adds a primary serving no slot yet (one a redirect named); returns its index.
    pub fn add_node(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// `slot` is served by node `index` from now on (a `MOVED` said so).
    pub fn assign(&mut self, slot: u16, index: usize) {
        if let (Some(owner), true) = (self.owners.get_mut(slot as usize), index < self.nodes.len())
        {
            *owner = Some(index);
        }
    }

    /// The first slot nobody serves, if any.
    pub fn first_unserved(&self) -> Option<u16> {
        self.owners
            .iter()
            .position(Option::is_none)
            .map(|slot| slot as u16)
    }
}

/// Reads the slot map through `client`. `asked_host` stands in for a node that announces
/// no address of its own (an empty IP or `?`: "the host you asked").
pub async fn discover(client: &mut Client, asked_host: &str) -> Result<SlotMap, ClientError> {
    let reply = client.call_ok(&["CLUSTER", "SLOTS"]).await?;
    parse_cluster_slots(&reply, asked_host).map_err(|source| ClientError::ClusterReply {
        command: "CLUSTER SLOTS",
        source,
    })
}

/// `CLUSTER SLOTS`: `[[first, last, [ip, port, id, …], replica…], …]`.
pub fn parse_cluster_slots(reply: &Frame, asked_host: &str) -> Result<SlotMap, MalformedReply> {
    let Frame::Array(ranges) = reply else {
        return Err(MalformedReply::NotAnArray(format!("{reply:?}")));
    };
    let mut map = SlotMap {
        nodes: Vec::new(),
        owners: vec![None; SLOTS as usize],
    };
    for range in ranges {
        let Frame::Array(fields) = range else {
            return Err(MalformedReply::RangeNotAnArray(Some(format!("{range:?}"))));
        };
        let (first, last, primary) = match fields.as_slice() {
            [Frame::Integer(first), Frame::Integer(last), primary, ..] => (*first, *last, primary),
            _ => return Err(MalformedReply::RangeIncomplete(Some(format!("{fields:?}")))),
        };
        if !(0..SLOTS as i64).contains(&first) || !(first..SLOTS as i64).contains(&last) {
            return Err(MalformedReply::OutOfBounds { first, last });
        }
        let node = parse_node(primary, asked_host)?;
        let index = match map.nodes.iter().position(|known| *known == node) {
            Some(index) => index,
            None => {
                map.nodes.push(node);
                map.nodes.len() - 1
            }
        };
        for slot in first..=last {
            map.owners[slot as usize] = Some(index);
        }
    }
    Ok(map)
}

/// `CLUSTER SHARDS` (Redis 7.0+, Valkey): one entry per shard, each a map (RESP3) or a
/// flat name/value array (RESP2) with `slots` (`[first, last, first, last, …]`) and
/// `nodes` (maps with `id`, `endpoint`, `ip`, `port`, `tls-port`, `role`). A shard
/// without slots is left out; `tls` picks the `tls-port` when the node has one.
pub fn parse_cluster_shards(
    reply: &Frame,
    asked_host: &str,
    tls: bool,
) -> Result<SlotMap, MalformedReply> {
    let Frame::Array(shards) = reply else {
        return Err(MalformedReply::NotAnArray(reply.describe()));
    };
    let mut map = SlotMap {
        nodes: Vec::new(),
        owners: vec![None; SLOTS as usize],
    };
    for shard in shards {
        let shard = named_fields(shard).ok_or(MalformedReply::ShardNotAMap)?;
        let slots = match field(&shard, "slots") {
            Some(Frame::Array(bounds)) => bounds,
            _ => return Err(MalformedReply::NoSlots),
        };
        if slots.is_empty() {
            continue;
        }
        let nodes = match field(&shard, "nodes") {
            Some(Frame::Array(nodes)) => nodes,
            _ => return Err(MalformedReply::NoNodes),
        };
        let primary = nodes
            .iter()
            .filter_map(named_fields)
            .find(|node| field(node, "role").and_then(frame_text).as_deref() == Some("master"))
            .ok_or(MalformedReply::NoPrimary)?;
        let node = shard_node(&primary, asked_host, tls)?;
        let index = match map.nodes.iter().position(|known| *known == node) {
            Some(index) => index,
            None => {
                map.nodes.push(node);
                map.nodes.len() - 1
            }
        };
        for range in slots.chunks(2) {
            let (first, last) = match range {
                [Frame::Integer(first), Frame::Integer(last)] => (*first, *last),
                _ => return Err(MalformedReply::OddShardBounds(format!("{range:?}"))),
            };
            if !(0..SLOTS as i64).contains(&first) || !(first..SLOTS as i64).contains(&last) {
                return Err(MalformedReply::OutOfBounds { first, last });
            }
            for slot in first..=last {
                map.owners[slot as usize] = Some(index);
            }
        }
    }
    Ok(map)
}

/// A primary of `CLUSTER SHARDS`: its preferred `endpoint`, else its `ip`, else the host
/// that was asked (`?` or empty mean "unknown").
fn shard_node(
    fields: &[(String, &Frame)],
    asked_host: &str,
    tls: bool,
) -> Result<Node, MalformedReply> {
    let known = |name: &str| {
        field(fields, name)
            .and_then(frame_text)
            .filter(|text| !text.is_empty() && text != "?")
    };
    let host = known("endpoint")
        .or_else(|| known("ip"))
        .unwrap_or_else(|| asked_host.to_owned());
    let port = |name: &str| match field(fields, name) {
        Some(Frame::Integer(port)) => u16::try_from(*port).ok().filter(|p| *p != 0),
        _ => None,
    };
    let port = (if tls { port("tls-port") } else { None })
        .or_else(|| port("port"))
        .ok_or_else(|| MalformedReply::PrimaryWithoutPort(host.clone()))?;
    Ok(Node {
        host,
        port,
        id: known("id"),
    })
}

/// The name/value pairs of a RESP3 map or a RESP2 flat array.
fn named_fields(frame: &Frame) -> Option<Vec<(String, &Frame)>> {
    match frame {
        Frame::Map(pairs) => pairs
            .iter()
            .map(|(name, value)| Some((frame_text(name)?, value)))
            .collect(),
        Frame::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|pair| Some((frame_text(&pair[0])?, &pair[1])))
            .collect(),
        _ => None,
    }
}

fn field<'a>(fields: &[(String, &'a Frame)], name: &str) -> Option<&'a Frame> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

fn frame_text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn parse_node(frame: &Frame, asked_host: &str) -> Result<Node, MalformedReply> {
    let text = |frame: &Frame| match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    match frame {
        Frame::Array(parts) => match parts.as_slice() {
            [ip, Frame::Integer(port), rest @ ..] => {
                let id = rest.first().and_then(text);
                let ip =
                    text(ip).ok_or_else(|| MalformedReply::IpNotText(Some(format!("{ip:?}"))))?;
                let port = u16::try_from(*port).map_err(|_| MalformedReply::BadPort(*port))?;
                let host = if ip.is_empty() || ip == "?" {
                    asked_host.to_string()
                } else {
                    ip
                };
                Ok(Node { host, port, id })
            }
            _ => Err(MalformedReply::NoIpOrPort(Some(format!("{parts:?}")))),
        },
        _ => Err(MalformedReply::NodeNotAnArray(Some(format!("{frame:?}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn node(ip: &str, port: i64) -> Frame {
        let id = format!("id{}", port % 1000);
        Frame::Array(vec![
            Frame::Bulk(Bytes::copy_from_slice(ip.as_bytes())),
            Frame::Integer(port),
            Frame::Bulk(Bytes::from(id)),
        ])
    }

    #[test]
    fn each_slot_gets_the_primary_of_its_range() {
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(0),
                Frame::Integer(99),
                node("10.0.0.1", 7000),
                node("10.0.0.9", 7009),
            ]),
            Frame::Array(vec![
                Frame::Integer(100),
                Frame::Integer(16383),
                node("", 7001),
            ]),
            Frame::Array(vec![
                Frame::Integer(200),
                Frame::Integer(200),
                node("10.0.0.1", 7000),
            ]),
        ]);
        let map = parse_cluster_slots(&reply, "asked").unwrap();
        assert_eq!(map.nodes.len(), 2);
        assert_eq!(map.nodes[1].host, "asked");
        assert_eq!(map.owner(0), Some(0));
        assert_eq!(map.owner(99), Some(0));
        assert_eq!(map.owner(100), Some(1));
        assert_eq!(map.owner(200), Some(0));
        assert_eq!(map.owner(16383), Some(1));
        assert_eq!(map.first_unserved(), None);
        let tag = map.tag_served_by("id1").unwrap();
        assert_eq!(map.owner(key_slot(tag.as_bytes())), Some(1));
        assert_eq!(map.tag_served_by("nobody"), None);
    }

    fn bulk(text: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    fn shard_node(ip: &str, port: i64, role: &str) -> Frame {
        Frame::Array(vec![
            bulk("id"),
            bulk(&format!("id{port}")),
            bulk("port"),
            Frame::Integer(port),
            bulk("tls-port"),
            Frame::Integer(port + 1000),
            bulk("ip"),
            bulk(ip),
            bulk("endpoint"),
            bulk(ip),
            bulk("role"),
            bulk(role),
        ])
    }

    #[test]
    fn shards_give_each_slot_the_primary_of_its_shard() {
        let slots =
            |bounds: &[i64]| Frame::Array(bounds.iter().map(|b| Frame::Integer(*b)).collect());
        let reply = Frame::Array(vec![
            // RESP2: flat name/value arrays; the replica is listed first.
            Frame::Array(vec![
                bulk("slots"),
                slots(&[0, 99, 200, 200]),
                bulk("nodes"),
                Frame::Array(vec![
                    shard_node("10.0.0.9", 7009, "replica"),
                    shard_node("10.0.0.1", 7000, "master"),
                ]),
            ]),
            // RESP3: a map; the primary announces no address.
            Frame::Map(vec![
                (bulk("slots"), slots(&[100, 199, 201, 16383])),
                (
                    bulk("nodes"),
                    Frame::Array(vec![shard_node("?", 7001, "master")]),
                ),
            ]),
            // A shard without slots (a new node) is no owner.
            Frame::Map(vec![
                (bulk("slots"), slots(&[])),
                (
                    bulk("nodes"),
                    Frame::Array(vec![shard_node("10.0.0.5", 7005, "master")]),
                ),
            ]),
        ]);
        let map = parse_cluster_shards(&reply, "asked", false).unwrap();
        assert_eq!(map.nodes.len(), 2);
        assert_eq!(
            (map.nodes[0].host.as_str(), map.nodes[0].port),
            ("10.0.0.1", 7000)
        );
        assert_eq!(
            (map.nodes[1].host.as_str(), map.nodes[1].port),
            ("asked", 7001)
        );
        assert_eq!(map.nodes[1].id.as_deref(), Some("id7001"));
        assert_eq!(map.owner(0), Some(0));
        assert_eq!(map.owner(150), Some(1));
        assert_eq!(map.owner(200), Some(0));
        assert_eq!(map.owner(16383), Some(1));
        assert_eq!(map.first_unserved(), None);
        let over_tls = parse_cluster_shards(&reply, "asked", true).unwrap();
        assert_eq!(over_tls.nodes[0].port, 8000);
        assert!(parse_cluster_shards(&Frame::Integer(1), "h", false).is_err());
        let odd = Frame::Array(vec![Frame::Map(vec![
            (bulk("slots"), slots(&[0])),
            (
                bulk("nodes"),
                Frame::Array(vec![shard_node("h", 1, "master")]),
            ),
        ])]);
        assert!(parse_cluster_shards(&odd, "h", false).is_err());
    }

    #[test]
    fn unserved_slots_and_bad_replies_are_reported() {
        let reply = Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(10),
            node("h", 1),
        ])]);
        assert_eq!(
            parse_cluster_slots(&reply, "h").unwrap().first_unserved(),
            Some(11)
        );
        let out_of_range = Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(5),
            Frame::Integer(16384),
            node("h", 1),
        ])]);
        assert_eq!(
            parse_cluster_slots(&out_of_range, "h")
                .unwrap_err()
                .to_string(),
            "slot range 5-16384 is out of bounds"
        );
        let not_a_range = Frame::Array(vec![Frame::Integer(1)]);
        assert_eq!(
            parse_cluster_slots(&not_a_range, "h")
                .unwrap_err()
                .to_string(),
            "a slot range is not an array: Integer(1)"
        );
        assert!(parse_cluster_slots(&Frame::Integer(1), "h").is_err());
    }
}
