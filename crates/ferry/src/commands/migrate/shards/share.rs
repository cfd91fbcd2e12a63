//! `--shards K/N`: a cluster source split over N worker processes. The primaries are
//! ordered by their first slot and dealt out in turn, so every worker, given the same
//! topology, takes a disjoint share and together they take every primary. A failover
//! keeps a primary's slots (the promoted replica serves them), so its share stays with
//! the same worker; a reshard across shares would need the two workers' streams paired
//! (see [`crate::transforms::shards::moves`]), which only one process can do: a worker
//! stops when slots of its share are served by a primary of another share.

use super::*;
use crate::cli::ShardShare;

/// The primaries this worker follows, in slot order, or all of them without a share.
pub(super) fn take_share(
    mut shards: Vec<SourceShard>,
    share: Option<ShardShare>,
) -> Result<Vec<SourceShard>, MigrateError> {
    let Some(share) = share else {
        return Ok(shards);
    };
    // Primaries without slots have nothing to copy; the rest in slot order.
    shards.retain(|shard| !shard.slots.is_empty());
    shards.sort_by_key(|shard| shard.slots.first().map(|[first, _]| *first));
    let primaries = shards.len();
    let mine: Vec<SourceShard> = shards
        .into_iter()
        .enumerate()
        .filter(|(position, _)| share.takes(*position))
        .map(|(_, shard)| shard)
        .collect();
    if mine.is_empty() {
        return Err(MigrateError::EmptyShare {
            share: share.to_string(),
            primaries,
        });
    }
    Ok(mine)
}

/// Slots that crossed this worker's share since it started: slots of its share served
/// now by a primary outside it (nor a replica of it, which a failover promotes and its
/// shard follows), or slots from outside served now by one of its primaries.
/// `(slots, primary serving them)`.
pub(super) fn resharded_across(
    mine: &[ShardState],
    own_nodes: &[NodeAddr],
    now: &[SourceShard],
) -> Option<(String, String)> {
    let in_share = |slot: u16| {
        mine.iter()
            .any(|s| s.slots.iter().any(|[a, b]| (*a..=*b).contains(&slot)))
    };
    for shard in now {
        let own = own_nodes.contains(&shard.primary)
            || mine.iter().any(|s| s.node == shard.primary.to_string());
        let crossed: Vec<u16> = shard
            .slots
            .iter()
            .flat_map(|&[a, b]| a..=b)
            .filter(|&slot| in_share(slot) != own)
            .collect();
        if !crossed.is_empty() {
            return Some((slots_text(&ranges(&crossed)), shard.primary.to_string()));
        }
    }
    None
}

/// Sorted slots as inclusive ranges.
fn ranges(slots: &[u16]) -> Vec<[u16; 2]> {
    let mut out: Vec<[u16; 2]> = Vec::new();
    for &slot in slots {
        match out.last_mut() {
            Some(last) if last[1] + 1 == slot => last[1] = slot,
            _ => out.push([slot, slot]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn shard(slots: &[[u16; 2]], port: u16) -> SourceShard {
        SourceShard {
            slots: slots.to_vec(),
            primary: node(port),
            nodes: vec![node(port), node(port + 100)],
        }
    }

    #[test]
    fn workers_take_disjoint_shares_that_cover_every_primary() {
        // Listed out of slot order, with an empty primary: the order is the slots'.
        let all = vec![
            shard(&[[10923, 16383]], 7002),
            shard(&[], 7003),
            shard(&[[0, 5460]], 7000),
            shard(&[[5461, 10922]], 7001),
        ];
        let ports = |share: &str| -> Vec<u16> {
            take_share(all.clone(), Some(share.parse().unwrap()))
                .unwrap()
                .iter()
                .map(|s| s.primary.port)
                .collect()
        };
        assert_eq!(ports("0/2"), [7000, 7002]);
        assert_eq!(ports("1/2"), [7001]);
        assert_eq!(ports("2/3"), [7002]);
        let err = take_share(all.clone(), Some("3/4".parse().unwrap())).unwrap_err();
        assert!(err.to_string().contains("at most 3 workers"), "{err}");
        assert_eq!(take_share(all, None).unwrap().len(), 4);
    }

    #[test]
    fn slots_crossing_the_share_either_way_are_named_but_a_failover_is_not() {
        let mine = vec![ShardState {
            slots: vec![[0, 5460]],
            node: "127.0.0.1:7000".into(),
            replid: None,
            offset: 0,
            origin: None,
            loading: None,
        }];
        let own = vec![node(7000), node(7100)];
        let same = [shard(&[[0, 5460]], 7000), shard(&[[5461, 16383]], 7001)];
        assert_eq!(resharded_across(&mine, &own, &same), None);
        let failed_over = [shard(&[[0, 5460]], 7100), shard(&[[5461, 16383]], 7001)];
        assert_eq!(resharded_across(&mine, &own, &failed_over), None);
        let resharded = [
            shard(&[[100, 5460]], 7000),
            shard(&[[0, 99], [5461, 16383]], 7001),
        ];
        assert_eq!(
            resharded_across(&mine, &own, &resharded),
            Some(("0-99".to_owned(), "127.0.0.1:7001".to_owned()))
        );
        let received = [
            shard(&[[0, 5460], [6000, 6001], [6003, 6003]], 7000),
            shard(&[[5461, 5999], [6002, 6002], [6004, 16383]], 7001),
        ];
        assert_eq!(
            resharded_across(&mine, &own, &received),
            Some(("6000-6001,6003".to_owned(), "127.0.0.1:7000".to_owned()))
        );
    }
}
