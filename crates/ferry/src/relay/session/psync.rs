//! PSYNC: a replica continues where it is when a history can serve its offset, from the
//! backlog of a live history or from one a restarted ferry saved ([`Session::revive`]);
//! else it gets a full sync into a new history. Then it streams.

use super::{Session, SessionError, ORDER};
use crate::display::size;
use crate::relay::history::{self, short, History};
use crate::relay::offsets::OffsetPair;
use crate::relay::saved::SavedHistory;
use crate::relay::stream::StreamTranslator;
use crate::sources::replication::continuation;
use crate::target::Target;
use crate::transforms::commands::CommandTranslator;
use ferry_repl::primary::continue_line;
use ferry_repl::PsyncOutcome;
use std::sync::Arc;
use std::time::Duration;

/// How long a restarted ferry waits for the rebuilt stream to reach a replica's offset.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(15);

impl Session {
    pub(super) async fn psync(&mut self, replid: &str, offset: i64) -> Result<(), SessionError> {
        if !self.capa_eof {
            self.reply(
                "-ERR ferry relay sends diskless snapshots; the replica must announce capa eof\r\n",
            )
            .await?;
            return Err(SessionError::NoCapaEof);
        }
        if let Some(history) = self.relay.history(replid) {
            if history.can_serve(offset) {
                self.relay.counters.partial_ok.fetch_add(1, ORDER);
                let backlog = history.offset() - (offset - 1);
                self.reply(continue_line(&history.replid)).await?;
                self.relay.log(format!(
                    "{}: partial resync accepted (+CONTINUE {} at offset {}), {} from the backlog",
                    self.name(),
                    short(&history.replid),
                    offset - 1,
                    size(backlog.max(0) as u64),
                ));
                return self.stream(history, offset - 1, false).await;
            }
        }
        if let Some(saved) = self.relay.take_dormant(replid) {
            if let Some(history) = self.revive(&saved, offset).await? {
                self.relay.counters.partial_ok.fetch_add(1, ORDER);
                self.reply(continue_line(&history.replid)).await?;
                self.relay.log(format!(
                    "{}: partial resync accepted (+CONTINUE {} at offset {}) after ferry's restart",
                    self.name(),
                    short(&history.replid),
                    offset - 1,
                ));
                return self.stream(history, offset - 1, false).await;
            }
        }
        if replid != "?" {
            self.relay.counters.partial_err.fetch_add(1, ORDER);
        }
        // A replica new to this relay asks with `?` or with its own ID (a server turned
        // replica offers its own history): a first attach, not a failed continue.
        if self.relay.issued(replid) {
            self.relay.log(format!(
                "{}: cannot continue {} at offset {} (its history ended or the offset is out \
                 of the backlog); full sync",
                self.name(),
                short(replid),
                offset - 1
            ));
        } else {
            self.relay.log(format!(
                "{}: first attach to this relay; full sync",
                self.name()
            ));
        }
        self.relay.counters.full.fetch_add(1, ORDER);
        let (history, start) = self.full_sync().await?;
        // After an `$EOF:` snapshot the replica finds the end mark only as the last bytes
        // of a read: the stream waits for its first ACK (sent once it loaded), as a
        // primary does.
        self.stream(history, start, true).await
    }

    /// Picks up a history saved by an earlier run: the source continues from the saved
    /// source offset and the relay's stream is rebuilt from the saved relay offset, the
    /// same bytes as before, until it reaches what the replica holds. `None` when that
    /// cannot be (the source refused, or the replica is not at a point of the rebuilt
    /// stream): the replica gets a full sync.
    async fn revive(
        &mut self,
        saved: &SavedHistory,
        offset: i64,
    ) -> Result<Option<Arc<History>>, SessionError> {
        let relay = self.relay.clone();
        let have = offset - 1;
        let Ok(target) = Target::from_rdb_version(saved.rdb_version) else {
            return Ok(None);
        };
        if have < saved.relay_offset {
            relay.log(format!(
                "{}: holds offset {have} of {}, before the saved point {}; full sync",
                self.name(),
                short(&saved.replid),
                saved.relay_offset
            ));
            return Ok(None);
        }
        relay.log(format!(
            "{}: picking up history {} saved at offset {} (source offset {})",
            self.name(),
            short(&saved.replid),
            saved.relay_offset,
            saved.source_offset
        ));
        let connected = self.keepalive(history::connect_source(&relay)).await?;
        let mut repl = match connected {
            Ok(repl) => repl,
            Err(error) => {
                // Keep the saved point for the replica's next attempt.
                relay.put_back_dormant(saved.clone());
                return Err(SessionError::Source(error));
            }
        };
        let outcome = self
            .keepalive(repl.psync(Some(&saved.source_replid), saved.source_offset))
            .await?
            .map_err(SessionError::Source)?;
        let PsyncOutcome::Continue {
            replid: source_replid,
        } = outcome
        else {
            relay.log(format!(
                "history {}: the source refused to continue from offset {}; full sync",
                short(&saved.replid),
                saved.source_offset
            ));
            return Ok(None);
        };
        let checked = continuation::verify_at(
            &relay.source_now(),
            relay.config.connect_timeout,
            &saved.source_replid,
            saved.source_offset,
            &source_replid,
        )
        .await;
        if let Err(error) = checked {
            // Unchecked (INFO unreadable) is not taken on trust either.
            relay.log(format!(
                "history {}: not continued: {error}; full sync",
                short(&saved.replid)
            ));
            return Ok(None);
        }
        let history = History::new(
            saved.replid.clone(),
            target.clone(),
            source_replid,
            OffsetPair {
                relay: saved.relay_offset,
                source: saved.source_offset,
            },
            relay.config.backlog_bytes,
            repl.ack_handle(),
        );
        repl.ack_handle().set_applied(saved.source_offset);
        relay.add_history(history.clone());
        let translator = CommandTranslator::new(&relay.config.policies, &target);
        tokio::spawn(history::follow(
            relay.clone(),
            history.clone(),
            repl,
            StreamTranslator::new(translator, &relay.config.scope),
        ));
        let mut changes = history.subscribe();
        let caught_up = async {
            while history.offset() < have && !history.is_ended() {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        };
        let waited = self
            .keepalive(tokio::time::timeout(REBUILD_TIMEOUT, caught_up))
            .await?;
        // A point inside a command would hand the replica half of it: the replica's
        // offset must fall between two commands of the rebuilt stream.
        let at_command = history.is_command_boundary(saved.relay_offset, have);
        if waited.is_ok() && at_command {
            return Ok(Some(history));
        }
        relay.log(format!(
            "{}: offset {have} is not a point of the rebuilt stream of {} (it reached {}); full sync",
            self.name(),
            short(&saved.replid),
            history.offset()
        ));
        history.end("not resumable");
        Ok(None)
    }
}
