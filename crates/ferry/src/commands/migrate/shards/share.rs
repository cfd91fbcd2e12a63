//! `--shards K/N`: a cluster source split over N worker processes. The primaries are
//! ordered by their first slot and dealt out in turn, so every worker, given the same
//! topology, takes a disjoint share and together they take every primary. A failover
//! keeps a primary's slots (the promoted replica serves them), so its share stays with
//! the same worker. A share is its primaries, not their slots: a reshard moves keys into
//! a primary's stream, where its worker finds them, ordered after the origin's writes by
//! waiting for the origin's worker ([`super::peers`]).

use super::*;
use crate::cli::ShardShare;

/// The primaries this worker follows, in slot order, or all of them without a share.
/// `saved`: the state file's shards. A restarted worker keeps the primaries it followed
/// (by node, or after a failover while it was stopped by slots): a reshard since may have
/// changed the order the shares are dealt in.
pub(super) fn take_share(
    mut shards: Vec<SourceShard>,
    share: Option<ShardShare>,
    saved: &[ShardState],
) -> Result<Vec<SourceShard>, MigrateError> {
    let Some(share) = share else {
        return Ok(shards);
    };
    // Primaries without slots have nothing to copy; the rest in slot order.
    shards.retain(|shard| !shard.slots.is_empty());
    shards.sort_by_key(|shard| shard.slots.first().map(|[first, _]| *first));
    let primaries = shards.len();
    let mine: Vec<SourceShard> = if saved.is_empty() {
        shards
            .into_iter()
            .enumerate()
            .filter(|(position, _)| share.takes(*position))
            .map(|(_, shard)| shard)
            .collect()
    } else {
        shards
            .into_iter()
            .filter(|shard| {
                saved.iter().any(|entry| {
                    entry.node == shard.primary.to_string() || entry.slots == shard.slots
                })
            })
            .collect()
    };
    if mine.is_empty() {
        return Err(MigrateError::EmptyShare {
            share: share.to_string(),
            primaries,
        });
    }
    Ok(mine)
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
            take_share(all.clone(), Some(share.parse().unwrap()), &[])
                .unwrap()
                .iter()
                .map(|s| s.primary.port)
                .collect()
        };
        assert_eq!(ports("0/2"), [7000, 7002]);
        assert_eq!(ports("1/2"), [7001]);
        assert_eq!(ports("2/3"), [7002]);
        let err = take_share(all.clone(), Some("3/4".parse().unwrap()), &[]).unwrap_err();
        assert!(err.to_string().contains("at most 3 workers"), "{err}");
        assert_eq!(take_share(all, None, &[]).unwrap().len(), 4);
    }

    #[test]
    fn a_restarted_worker_keeps_its_primaries_whatever_moved_since() {
        let saved = |slots: &[[u16; 2]], port: u16| ShardState {
            slots: slots.to_vec(),
            node: format!("127.0.0.1:{port}"),
            replid: None,
            offset: 0,
            origin: None,
            loading: None,
            load_begun: Some(false),
        };
        let share = Some("0/2".parse().unwrap());
        // A failover while stopped: the same slots on the promoted node.
        let now = vec![shard(&[[0, 8191]], 7100), shard(&[[8192, 16383]], 7001)];
        let mine = take_share(now, share, &[saved(&[[0, 8191]], 7000)]).unwrap();
        assert_eq!(mine[0].primary.port, 7100);
        // Slots moved to the other worker's primary while stopped: dealt afresh, the
        // shares would swap.
        let now = vec![
            shard(&[[100, 8191]], 7000),
            shard(&[[0, 99], [8192, 16383]], 7001),
        ];
        let mine = take_share(now.clone(), share, &[saved(&[[0, 8191]], 7000)]).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].primary.port, 7000);
        assert_eq!(take_share(now, share, &[]).unwrap()[0].primary.port, 7001);
    }
}
