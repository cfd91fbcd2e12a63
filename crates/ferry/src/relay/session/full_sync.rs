//! A full sync into a new history: the source's snapshot, decoded, put through the
//! policies and encoded in this replica's format ([`rdb`]), streamed to the replica as it
//! comes (`$EOF:` framing: the size is not known ahead). The history then follows the
//! source's stream, and other replicas may continue it.

use super::KEEPALIVE_EVERY;
use super::{closed_is_end, write_flushed, Reader, Session, SessionError, Writer};
use crate::display::size;
use crate::relay::history::{self, short, History};
use crate::relay::offsets::OffsetPair;
use crate::relay::rdb;
use crate::relay::stream::StreamTranslator;
use crate::server::probe::ServerInfo;
use crate::target::Target;
use crate::transforms::commands::CommandTranslator;
use bytes::{Bytes, BytesMut};
use ferry_repl::primary::{full_resync_line, new_replid, EofMark};
use ferry_repl::{snapshot_channel, PsyncOutcome, SnapshotFraming};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

impl Session {
    /// The format this replica loads: from its `REPLCONF version` (Valkey 9 and later
    /// read RDB 80, earlier ones and replicas that do not say RDB 11), unless overridden.
    fn replica_target(&self) -> Target {
        if let Some(target) = &self.relay.config.replica_format {
            return target.clone();
        }
        let info = ServerInfo {
            product: "valkey".into(),
            version: self.version.clone().unwrap_or_else(|| "8.0.0".into()),
            is_replica: true,
            keys_per_db: Default::default(),
        };
        let format = info.expected_format();
        let name = match &self.version {
            Some(version) => format!("valkey {version} replica"),
            None => "a replica".into(),
        };
        Target { format, name }
    }

    /// A new history: the source's snapshot, translated for this replica, then its stream.
    /// Returns the history and the offset the replica holds after the snapshot.
    pub(super) async fn full_sync(&mut self) -> Result<(Arc<History>, i64), SessionError> {
        let relay = self.relay.clone();
        let config = &relay.config;
        let target = self.replica_target();
        relay.log(format!(
            "{}: full sync for {} ({}); asking the source {} for a snapshot",
            self.name(),
            target.name,
            target.format.version,
            config.source_url
        ));
        let mut repl = self
            .keepalive(history::connect_source(&relay))
            .await?
            .map_err(SessionError::Source)?;
        let outcome = self
            .keepalive(repl.psync(None, 0))
            .await?
            .map_err(SessionError::Source)?;
        let PsyncOutcome::FullResync {
            replid: source_replid,
            offset: start,
        } = outcome
        else {
            return Err(SessionError::UnaskedContinue);
        };
        let history = History::new(
            new_replid(),
            target.clone(),
            source_replid,
            OffsetPair {
                relay: start,
                source: start,
            },
            config.backlog_bytes,
            repl.ack_handle(),
        );
        self.reply(full_resync_line(&history.replid, start)).await?;

        let started = Instant::now();
        let stream = {
            let snapshot = repl.snapshot();
            // The borrow of `repl` ends with the stream; keep-alives need only the writer.
            tokio::pin!(snapshot);
            let start_at = tokio::time::Instant::now() + KEEPALIVE_EVERY;
            let mut ticker = tokio::time::interval_at(start_at, KEEPALIVE_EVERY);
            loop {
                tokio::select! {
                    stream = &mut snapshot => break stream.map_err(SessionError::Source)?,
                    _ = ticker.tick() => write_flushed(&mut self.writer, b"\n").await.map_err(SessionError::Write)?,
                }
            }
        };
        let total = match stream.framing() {
            SnapshotFraming::Sized(len) => Some(len),
            SnapshotFraming::EndMark => None,
        };
        let (sender, reader) = snapshot_channel(config.chunks);
        let (chunk_sender, chunk_receiver) = mpsc::channel::<Bytes>(config.chunks);
        let translator = CommandTranslator::new(&config.policies, &target);
        let producer = rdb::spawn_producer(
            reader,
            total,
            target,
            (config.policies.clone(), config.scope.clone()),
            chunk_sender,
        );
        let forward = stream.forward(sender);
        let mark = EofMark::new();
        let write = send_rdb(
            &mut self.writer,
            (&mut self.reader, &mut self.buffer),
            chunk_receiver,
            &mark,
        );
        let (forwarded, written) = tokio::join!(forward, write);
        let produced = producer.await.map_err(SessionError::ProducerStopped)?;
        if let Err(error) = written {
            return Err(SessionError::LeftDuringFullSync(error));
        }
        let produced = produced.map_err(|e| SessionError::NotRelayed(Box::new(e)))?;
        forwarded.map_err(SessionError::Source)?;
        // Only now, with the whole RDB produced, does the replica see its end.
        self.reply(mark.trailer()).await?;
        let seconds = started.elapsed().as_secs_f64();
        relay.log(format!(
            "{}: full sync sent: {} keys, {} RDB in {seconds:.1} s ({:.0} keys/s); streaming as {} from offset {start}",
            self.name(),
            produced.keys,
            size(produced.bytes),
            produced.keys as f64 / seconds.max(1e-3),
            short(&history.replid),
        ));
        // Replicas of different versions are treated differently: each line says which.
        for line in &produced.policy_lines {
            relay.log(format!("{}: {line}", self.name()));
        }
        history.set_policies(produced.policy_lines);
        relay.add_history(history.clone());
        tokio::spawn(history::follow(
            relay.clone(),
            history.clone(),
            repl,
            StreamTranslator::new(translator, &config.scope),
        ));
        Ok((history, start))
    }
}

/// Writes the RDB's header and bytes as chunks come; newlines until the first one. The
/// end mark is the caller's to send, once the producer succeeded. Owns the receiver, so
/// that on a failure the producer sees the replica gone at once. Also watches the
/// replica's side: one that closes is noticed even while its socket still takes bytes.
async fn send_rdb(
    writer: &mut Writer,
    (reader, received): (&mut Reader, &mut BytesMut),
    mut chunks: mpsc::Receiver<Bytes>,
    mark: &EofMark,
) -> Result<(), std::io::Error> {
    let mut started = false;
    let start_at = tokio::time::Instant::now() + KEEPALIVE_EVERY;
    let mut ticker = tokio::time::interval_at(start_at, KEEPALIVE_EVERY);
    loop {
        tokio::select! {
            chunk = chunks.recv() => match chunk {
                Some(chunk) => {
                    if !started {
                        writer.write_all(&mark.header()).await?;
                        started = true;
                    }
                    write_flushed(writer, &chunk).await?;
                }
                None => break,
            },
            _ = ticker.tick(), if !started => write_flushed(writer, b"\n").await?,
            read = reader.read_buf(received) => {
                if closed_is_end(read)? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "the replica closed the connection",
                    ));
                }
                // A replica sends nothing while it receives; kept for after, bounded.
                if received.len() > 1 << 20 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the replica sent over 1 MiB during its full sync",
                    ));
                }
            }
        }
    }
    if !started {
        // An empty snapshot still needs its header before the end mark.
        write_flushed(writer, &mark.header()).await?;
    }
    Ok(())
}
