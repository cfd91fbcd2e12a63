//! The writer task: takes queued batches, writes them to the socket, and hands each to
//! the reply task once it is on the wire. A target that takes no bytes for the stall
//! timeout counts as gone, so a stuck target stops the pipe instead of hanging it.

use super::error::PipeError;
use super::node::{InFlight, Op, Shared};
use crate::server::client::ClientWriter;
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

pub(super) async fn write_task(
    mut rx: mpsc::Receiver<Op>,
    writer: ClientWriter,
    flight: mpsc::Sender<InFlight>,
    shared: Arc<Shared>,
) {
    let mut out = BufWriter::with_capacity(256 * 1024, writer);
    while let Some(op) = rx.recv().await {
        let in_flight = match op {
            Op::Batch {
                replies,
                framing,
                payload,
                mark,
                permit,
            } => {
                if let Err(error) = write_or_fail(&mut out, &payload, &shared).await {
                    shared.fail(error);
                    return;
                }
                InFlight {
                    replies,
                    framing,
                    payload,
                    mark,
                    _permit: Some(permit),
                    done: None,
                }
            }
            Op::Barrier(done) => InFlight {
                replies: 0,
                framing: 0,
                payload: Bytes::new(),
                mark: None,
                _permit: None,
                done: Some(done),
            },
        };
        // Whatever waits for replies must be on the wire before we can wait for room.
        if rx.is_empty() || flight.capacity() == 0 || in_flight.done.is_some() {
            if let Err(error) = flush_or_fail(&mut out, &shared).await {
                shared.fail(error);
                return;
            }
        }
        if flight.send(in_flight).await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
}

/// Writes all of `bytes`; an error when the target takes none of them for the stall
/// timeout, or when the pipe fails meanwhile (the reply task gave up).
async fn write_or_fail(
    out: &mut BufWriter<ClientWriter>,
    mut bytes: &[u8],
    shared: &Shared,
) -> Result<(), PipeError> {
    while !bytes.is_empty() {
        let written = tokio::select! {
            written = tokio::time::timeout(shared.stall_timeout, out.write(bytes)) => written,
            _ = shared.failed.notified() => return Err(shared.stopped()),
        };
        match written {
            Ok(Ok(0)) => return Err(PipeError::WriteClosed),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(PipeError::WriteFailed(Arc::new(e))),
            Err(_) => return Err(PipeError::WriteStalled(shared.stall_timeout)),
        }
    }
    Ok(())
}

/// [`write_or_fail`] for what the buffer holds (at most its capacity, 256 KiB).
async fn flush_or_fail(
    out: &mut BufWriter<ClientWriter>,
    shared: &Shared,
) -> Result<(), PipeError> {
    tokio::select! {
        flushed = tokio::time::timeout(shared.stall_timeout, out.flush()) => match flushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PipeError::WriteFailed(Arc::new(e))),
            Err(_) => Err(PipeError::WriteStalled(shared.stall_timeout)),
        },
        _ = shared.failed.notified() => Err(shared.stopped()),
    }
}
