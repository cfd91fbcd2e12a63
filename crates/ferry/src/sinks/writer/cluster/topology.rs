//! Which primary serves which slot, read from the target with `CLUSTER SLOTS`.

use super::slot::{key_slot, SLOTS};
use crate::sinks::writer::client::{Client, ClientError};
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
    parse_cluster_slots(&reply, asked_host).map_err(|message| ClientError::Command {
        command: "CLUSTER SLOTS".into(),
        message,
    })
}

/// `CLUSTER SLOTS`: `[[first, last, [ip, port, id, …], replica…], …]`.
pub fn parse_cluster_slots(reply: &Frame, asked_host: &str) -> Result<SlotMap, String> {
    let Frame::Array(ranges) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    let mut map = SlotMap {
        nodes: Vec::new(),
        owners: vec![None; SLOTS as usize],
    };
    for range in ranges {
        let Frame::Array(fields) = range else {
            return Err(format!("a slot range is not an array: {range:?}"));
        };
        let (first, last, primary) = match fields.as_slice() {
            [Frame::Integer(first), Frame::Integer(last), primary, ..] => (*first, *last, primary),
            _ => {
                return Err(format!(
                    "a slot range lacks its bounds or primary: {fields:?}"
                ))
            }
        };
        if !(0..SLOTS as i64).contains(&first) || !(first..SLOTS as i64).contains(&last) {
            return Err(format!("slot range {first}-{last} is out of bounds"));
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

fn parse_node(frame: &Frame, asked_host: &str) -> Result<Node, String> {
    let text = |frame: &Frame| match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    match frame {
        Frame::Array(parts) => match parts.as_slice() {
            [ip, Frame::Integer(port), rest @ ..] => {
                let id = rest.first().and_then(text);
                let ip = text(ip).ok_or_else(|| format!("a node's IP is not text: {ip:?}"))?;
                let port = u16::try_from(*port).map_err(|_| format!("bad node port {port}"))?;
                let host = if ip.is_empty() || ip == "?" {
                    asked_host.to_string()
                } else {
                    ip
                };
                Ok(Node { host, port, id })
            }
            _ => Err(format!("a node lacks its IP or port: {parts:?}")),
        },
        _ => Err(format!("a node is not an array: {frame:?}")),
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
        assert!(parse_cluster_slots(&out_of_range, "h").is_err());
        assert!(parse_cluster_slots(&Frame::Integer(1), "h").is_err());
    }
}
