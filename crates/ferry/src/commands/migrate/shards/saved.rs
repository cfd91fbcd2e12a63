//! A restart of a cluster source's run: the state file's shards matched with the shards
//! the source has now, and each shard's marker on a standalone target.

use super::*;

impl Migration {
    /// On a standalone target: each shard's marker field, written with its data, says
    /// where its stream resumes (the state file trails by up to a second). A shard with
    /// no field resumes from the state file.
    pub(super) async fn resume_shards_from_target(
        &self,
        client: &mut Client,
        entries: &mut [ShardState],
    ) -> Result<(), Error> {
        let markers = marker::read_shards(client)
            .await
            .map_err(|e| self.target_error(e))?;
        for entry in entries.iter_mut() {
            let Some(stream) = entry.origin.clone().or_else(|| entry.replid.clone()) else {
                continue;
            };
            let label = format!("shard {} ({})", slots_text(&entry.slots), entry.node);
            let Some(found) = markers.get(&stream) else {
                self.events.line(format!(
                    "{label}: no marker of this shard on the target; resuming from the state \
                     file's offset {}",
                    entry.offset
                ));
                continue;
            };
            if found.offset != entry.offset || entry.replid.as_deref() != Some(&found.replid) {
                self.events.line(format!(
                    "{label}: the target holds offset {} by its marker (the state file: {}); \
                     resuming from the target's",
                    found.offset, entry.offset
                ));
                entry.replid = Some(found.replid.clone());
                entry.offset = found.offset;
                entry.origin = Some(stream);
            }
        }
        Ok(())
    }

    /// A state file of a cluster source has shards, one of a standalone source has none:
    /// given with the other kind of source it is refused. One without any position (only
    /// naming a target ferry owns, as cutover writes for its reverse run) fits either.
    pub(in crate::commands::migrate) fn check_state_kind(
        &self,
        saved: &MigrationState,
        cluster_source: bool,
    ) -> Result<(), Error> {
        let no_position = saved.replid.is_none() && saved.shards.is_empty();
        if no_position || saved.shards.is_empty() != cluster_source {
            return Ok(());
        }
        let (written_for, now) = match cluster_source {
            true => ("a standalone", "a cluster"),
            false => ("a cluster", "not a cluster"),
        };
        Err(MigrateError::StateOfAnotherKind {
            path: self
                .state_path
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
                .to_string(),
            written_for,
            source_url: self.source_url.to_string(),
            now,
        }
        .into())
    }

    /// The saved shards in the order of `shards`, each with the slots it serves now.
    ///
    /// A shard is its primary's replication history, not its slots: after a resharding
    /// each primary's stream goes on where the state file left it, and the keys moved
    /// meanwhile are in those streams (`RESTORE-ASKING` in one, `DEL` in the other, paired
    /// as during a run). So a saved shard is found by the node it followed, or, when that
    /// node no longer leads a shard (a failover while ferry was stopped), by its slots.
    /// A primary the state file does not know (it joined since), or a saved position no
    /// shard continues, would lose writes: refused.
    pub(super) fn match_saved(
        &self,
        shards: &[SourceShard],
        saved: Vec<ShardState>,
    ) -> Result<Vec<ShardState>, Error> {
        let mut unclaimed: Vec<Option<ShardState>> = saved.into_iter().map(Some).collect();
        let mut claim = |found: &dyn Fn(&ShardState) -> bool| {
            let at = unclaimed
                .iter()
                .position(|e| e.as_ref().is_some_and(found))?;
            unclaimed[at].take()
        };
        let by_node: Vec<Option<ShardState>> = shards
            .iter()
            .map(|shard| claim(&|entry| entry.node == shard.primary.to_string()))
            .collect();
        let mut matched = Vec::with_capacity(shards.len());
        for (shard, entry) in shards.iter().zip(by_node) {
            let entry = entry.or_else(|| claim(&|entry| entry.slots == shard.slots));
            let Some(entry) = entry else {
                return Err(MigrateError::ShardNotSaved {
                    slots: shard.slots_text(),
                    primary: shard.primary.to_string(),
                }
                .into());
            };
            matched.push(ShardState {
                slots: shard.slots.clone(),
                ..entry
            });
        }
        if let Some(left) = unclaimed.into_iter().flatten().next() {
            return Err(MigrateError::SavedShardGone {
                slots: slots_text(&left.slots),
                node: left.node,
            }
            .into());
        }
        Ok(matched)
    }
}
