//! The RDB a replica receives in a full sync: the source's snapshot decoded as it
//! arrives, passed through the compatibility transform for the replica's format, encoded
//! and handed on in chunks. Nothing is held whole: at most a few chunks on each side and
//! one key's value in the encoder (bigger values are streamed in parts).

use crate::codec::{EncodeOptions, Encoder};
use crate::error::Error;
use crate::filter::Scope;
use crate::pipeline;
use crate::policy::Policies;
use crate::sinks::{Sink, SinkStats};
use crate::sources::replication::SnapshotSource;
use crate::target::Target;
use crate::transforms::compat::CompatTransform;
use crate::transforms::filter::ScopeTransform;
use bytes::Bytes;
use ferry_codec::Item;
use ferry_repl::ChannelReader;
use std::io::{self, Write};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes gathered before a chunk goes to the socket writer.
const CHUNK_BYTES: usize = 64 << 10;

/// What the producer thread reports when done.
pub struct Produced {
    pub keys: u64,
    pub bytes: u64,
    pub policy_lines: Vec<String>,
}

/// Runs the producer on a blocking thread: snapshot bytes from `reader`, RDB chunks into
/// `chunks`. When the receiver goes away (the replica left), it stops with an error.
pub fn spawn_producer(
    reader: ChannelReader,
    total: Option<u64>,
    target: Target,
    (policies, scope): (Policies, Scope),
    chunks: mpsc::Sender<Bytes>,
) -> tokio::task::JoinHandle<Result<Produced, Error>> {
    tokio::task::spawn_blocking(move || {
        let mut source = SnapshotSource::new(reader, total, Arc::new(AtomicU64::new(0)));
        // An export file (`--vector-set export=PATH`) is rewritten at every full sync.
        let mut compat = CompatTransform::new(target.clone(), policies, true)?;
        // Compressed as servers write it: measured faster end to end than plain (a third
        // of the bytes to write, send, and for the replica to save and read back).
        let options = EncodeOptions::default();
        let writer = ChunkWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            chunks,
            written: 0,
        };
        let mut sink = ReplicaRdbSink {
            encoder: Some(Encoder::new(writer, target.format, options)),
            keys: 0,
            bytes: 0,
        };
        let mut scoped = ScopeTransform::for_scope(scope);
        pipeline::run_scoped(
            &mut source,
            scoped.as_mut(),
            &mut compat,
            &mut sink,
            &mut |_| {},
        )?;
        let mut policy_lines: Vec<String> =
            scoped.iter().map(ScopeTransform::report_line).collect();
        policy_lines.extend(compat.complete()?.lines());
        Ok(Produced {
            keys: sink.keys,
            bytes: sink.bytes,
            policy_lines,
        })
    })
}

/// Sends what the encoder writes as chunks over a bounded channel.
struct ChunkWriter {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Bytes>,
    written: u64,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.written += chunk.len() as u64;
        self.chunks
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the replica left"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The encoder as a sink. The source's `repl-id` and `repl-offset` fields describe the
/// source's history, not the relay's, so they are left out (a replica takes both from
/// `+FULLRESYNC`); `repl-stream-db` is kept.
struct ReplicaRdbSink {
    encoder: Option<Encoder<ChunkWriter>>,
    keys: u64,
    bytes: u64,
}

impl Sink for ReplicaRdbSink {
    fn push(&mut self, item: Item) -> Result<(), Error> {
        if let Item::Aux { key, .. } = &item {
            if &key[..] == b"repl-id" || &key[..] == b"repl-offset" {
                return Ok(());
            }
        }
        if matches!(item, Item::KeyStart(_)) {
            self.keys += 1;
        }
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| Error::Migration("internal: item after the RDB ended".into()))?;
        encoder.write_owned(item).map_err(encode_error)
    }

    fn finish(&mut self) -> Result<SinkStats, Error> {
        let Some(encoder) = self.encoder.take() else {
            return Ok(SinkStats::default());
        };
        let mut writer = encoder.finish().map_err(encode_error)?;
        writer
            .flush()
            .map_err(|e| Error::Migration(format!("cannot send the RDB: {e}")))?;
        self.bytes = writer.written;
        Ok(SinkStats {
            bytes_written: writer.written,
            ..SinkStats::default()
        })
    }
}

fn encode_error(error: ferry_codec::EncodeError) -> Error {
    Error::Migration(format!(
        "cannot encode the RDB for the replica: {}",
        crate::error::one_line(crate::error::chain(&error))
    ))
}
