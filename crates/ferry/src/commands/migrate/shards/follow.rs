//! Following the source cluster's topology while shards stream: a failover's promoted
//! replica, and primaries that join (whose streams no shard reads).

use super::*;

impl Migration {
    /// Resolves once slots of the source are served, for [`UNFOLLOWED_FOR`], by a primary
    /// no shard follows and that was not among the nodes at start (`known`): a primary
    /// added since. The keys resharding moves to it appear only in its stream, which ferry
    /// does not read, while their origin's DELs are applied: the target would lose them.
    /// A promoted replica is followed by its shard within that time.
    ///
    /// A worker (`--shards`) also records who serves which slot ([`Peers::observe`]).
    pub(super) async fn watch_for_unfollowed_primaries(
        &self,
        board: &Board,
        known: Vec<NodeAddr>,
    ) -> Error {
        let mut since: Option<(tokio::time::Instant, NodeAddr)> = None;
        loop {
            tokio::time::sleep(TOPOLOGY_EVERY).await;
            let Some(shards) =
                cluster::rediscover(&known, &self.source_url, self.connect_timeout).await
            else {
                continue;
            };
            if let Some(peers) = &board.peers {
                peers.observe(&shards);
            }
            let mine = lock(&board.state).shards.clone();
            let followed: Vec<String> = mine.iter().map(|s| s.node.clone()).collect();
            let stranger = shards.iter().find(|shard| {
                !shard.slots.is_empty()
                    && !known.contains(&shard.primary)
                    && !followed.contains(&shard.primary.to_string())
            });
            let Some(stranger) = stranger else {
                since = None;
                continue;
            };
            match &since {
                Some((first, was)) if *was == stranger.primary => {
                    if first.elapsed() >= UNFOLLOWED_FOR {
                        return MigrateError::UnfollowedPrimary {
                            slots: stranger.slots_text(),
                            primary: stranger.primary.to_string(),
                        }
                        .into();
                    }
                }
                _ => since = Some((tokio::time::Instant::now(), stranger.primary.clone())),
            }
        }
    }

    /// After a lost connection: asks the known nodes for the topology and follows this
    /// shard's slots to the node serving them now (a failover promoted a replica).
    pub(in crate::commands::migrate) async fn shard_lost(&mut self) {
        let Some(shard) = self.shard.clone() else {
            return;
        };
        shard.out_of_sync();
        let mut ask = vec![NodeAddr {
            host: self.source_url.host.clone(),
            port: self.source_url.port,
        }];
        ask.extend(lock(&shard.known).iter().cloned());
        let Some(shards) = cluster::rediscover(&ask, &self.source_url, self.connect_timeout).await
        else {
            return;
        };
        {
            let mut known = lock(&shard.known);
            for node in shards.iter().flat_map(|s| s.nodes.iter()) {
                if !known.contains(node) {
                    known.push(node.clone());
                }
            }
        }
        // The shard now serving most of this one's slots (all of them after a failover).
        let overlap = |candidate: &SourceShard| {
            shard
                .slots
                .iter()
                .flat_map(|[a, b]| *a..=*b)
                .filter(|slot| candidate.serves(*slot))
                .count()
        };
        let Some(now) = shards
            .iter()
            .map(|candidate| (overlap(candidate), candidate))
            .filter(|(count, _)| *count > 0)
            .max_by_key(|(count, _)| *count)
            .map(|(_, candidate)| candidate)
        else {
            return;
        };
        if now.primary.host == self.source_url.host && now.primary.port == self.source_url.port {
            return;
        }
        let was = shard.label(&self.source_url);
        shard.followed_failover(&now.primary.to_string());
        self.failover_from = Some(self.source_url.address());
        self.source_url = now.primary.url(&self.source_url);
        self.events.line(format!(
            "{was}: failover: the slots are now served by {}; resuming there by PSYNC",
            now.primary
        ));
    }
}
