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
/// `saved`: the state file's shards. A restarted worker keeps the primaries it followed
/// (by node, or after a failover while it was stopped by slots): a reshard since may have
/// changed the order the shares are dealt in. Its share's slots must be the same as
/// before, or keys moved across shares meanwhile could not be paired.
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
        let mine: Vec<SourceShard> = shards
            .into_iter()
            .filter(|shard| {
                saved.iter().any(|entry| {
                    entry.node == shard.primary.to_string() || entry.slots == shard.slots
                })
            })
            .collect();
        let before = covered(saved.iter().map(|entry| &entry.slots));
        let now = covered(mine.iter().map(|shard| &shard.slots));
        if let Some((slots, primary)) = first_difference(&before, &now, &mine) {
            return Err(MigrateError::ReshardedAcrossShares {
                share: share.to_string(),
                slots,
                primary,
            });
        }
        mine
    };
    if mine.is_empty() {
        return Err(MigrateError::EmptyShare {
            share: share.to_string(),
            primaries,
        });
    }
    Ok(mine)
}

/// Which of the 16384 slots some range covers.
fn covered<'a>(ranges: impl Iterator<Item = &'a Vec<[u16; 2]>>) -> Vec<bool> {
    let mut slots = vec![false; 16384];
    for [a, b] in ranges.flatten() {
        for slot in *a..=*b {
            if let Some(flag) = slots.get_mut(usize::from(slot)) {
                *flag = true;
            }
        }
    }
    slots
}

/// The slots in one of `before` and `now` only, and the primary serving them now (or
/// `elsewhere`).
fn first_difference(
    before: &[bool],
    now: &[bool],
    mine: &[SourceShard],
) -> Option<(String, String)> {
    let differ: Vec<u16> = (0..16384u16)
        .filter(|&slot| before[usize::from(slot)] != now[usize::from(slot)])
        .collect();
    let first = *differ.first()?;
    let primary = mine
        .iter()
        .find(|shard| shard.serves(first))
        .map_or("another worker's primary".to_owned(), |shard| {
            shard.primary.to_string()
        });
    Some((slots_text(&ranges(&differ)), primary))
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
    fn slots_crossing_the_share_either_way_are_named_but_a_failover_is_not() {
        let mine = vec![ShardState {
            slots: vec![[0, 5460]],
            node: "127.0.0.1:7000".into(),
            replid: None,
            offset: 0,
            origin: None,
            loading: None,
            load_begun: Some(false),
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

    #[test]
    fn a_restarted_worker_keeps_its_primaries_and_refuses_slots_moved_across_shares() {
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
        // Slots moved to the other worker's primary while stopped: dealt afresh the
        // shares would swap; kept, the share lost slots 0-99.
        let now = vec![
            shard(&[[100, 8191]], 7000),
            shard(&[[0, 99], [8192, 16383]], 7001),
        ];
        let err = take_share(now, share, &[saved(&[[0, 8191]], 7000)]).unwrap_err();
        assert!(err.to_string().contains("slots 0-99"), "{err}");
    }
}
