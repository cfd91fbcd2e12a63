//! What is wrong with a `CLUSTER SLOTS` or `CLUSTER SHARDS` reply ferry cannot read: one
//! type for both readers ([`super::topology`], the writer's slot map, and
//! [`super::shards`], a cluster source's shards), since they read the same replies.

/// A cluster reply that is not the shape its command documents. Where a variant holds
/// `Option<String>`, it is the offending part as the reader printed it (the slot map's
/// reader shows it, the shards' reader does not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReply {
    #[error("expected an array, got {0}")]
    NotAnArray(String),
    #[error("expected a map, got {0}")]
    NotAMap(String),
    #[error("a map key is not text")]
    MapKeyNotText,
    #[error("a map has an odd number of items")]
    OddMap,
    #[error("a slot range is not an array{}", shown(.0))]
    RangeNotAnArray(Option<String>),
    #[error("a slot range lacks its bounds or primary{}", shown(.0))]
    RangeIncomplete(Option<String>),
    #[error("slot range {first}-{last} is out of bounds")]
    OutOfBounds { first: i64, last: i64 },
    #[error("slot bounds are not pairs of integers")]
    BoundsNotPairs,
    #[error("odd slot bounds in a shard: {0}")]
    OddShardBounds(String),
    #[error("a shard is not a map")]
    ShardNotAMap,
    #[error("a shard lacks its slots")]
    NoSlots,
    #[error("a shard lacks its nodes")]
    NoNodes,
    #[error("a shard with slots has no primary")]
    NoPrimary,
    /// Every primary of the shard is marked failed.
    #[error("slots {0} have no healthy primary")]
    NoHealthyPrimary(String),
    #[error("a node is not an array{}", shown(.0))]
    NodeNotAnArray(Option<String>),
    #[error("a node's IP is not text{}", shown(.0))]
    IpNotText(Option<String>),
    #[error("a node lacks its IP or port{}", shown(.0))]
    NoIpOrPort(Option<String>),
    #[error("a node lacks its port")]
    NoPort,
    #[error("the primary at {0} has no port")]
    PrimaryWithoutPort(String),
    #[error("bad node port {0}")]
    BadPort(i64),
    #[error("no node serves any slot")]
    NoSlotServed,
}

/// `: <part>` when the reader kept the offending part.
fn shown(part: &Option<String>) -> String {
    part.as_ref()
        .map(|part| format!(": {part}"))
        .unwrap_or_default()
}
