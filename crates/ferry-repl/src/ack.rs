//! Acknowledgements to the primary. The caller reports the offset it has *applied* through
//! a cheap [`AckHandle`]; a task sends `REPLCONF ACK <applied>` every interval, and at once
//! when the primary asks with `REPLCONF GETACK`. Acknowledging the applied offset rather
//! than the received one keeps the primary's view (WAIT, INFO) honest. After a full resync
//! the applied offset is 0 until the caller reports the snapshot applied.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::ReplError;
use crate::link::write_with_timeout;
use crate::resp::command;
use crate::stream::StreamWriter;

#[derive(Debug, Default)]
struct Shared {
    applied: AtomicI64,
    ack_now: Notify,
    /// Why the ACK task stopped, if it did.
    failure: Mutex<Option<ReplError>>,
    /// Set once a command arrived after the snapshot.
    stream_flowing: AtomicBool,
}

/// ACK spacing while waiting for the stream to start after a snapshot.
pub const WARM_UP_INTERVAL: Duration = Duration::from_millis(100);
/// The longest warm-up; an idle primary sends its first PING within 10 s anyway.
pub const WARM_UP_LIMIT: Duration = Duration::from_secs(5);

/// Reports the applied replication offset. Clone freely; all clones share one value.
#[derive(Debug, Clone, Default)]
pub struct AckHandle {
    shared: Arc<Shared>,
}

impl AckHandle {
    /// Records that everything up to `offset` (a [`crate::ReplCommand::offset_after`]) is
    /// applied. Offsets only move forward; a smaller value is ignored.
    pub fn set_applied(&self, offset: i64) {
        self.shared.applied.fetch_max(offset, Ordering::AcqRel);
    }

    /// The offset the next ACK will carry.
    pub fn applied(&self) -> i64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    /// Asks for an ACK to be sent now rather than at the next tick.
    pub(crate) fn request_ack(&self) {
        self.shared.ack_now.notify_one();
    }

    pub(crate) fn take_failure(&self) -> Option<ReplError> {
        self.shared.failure.lock().ok()?.take()
    }

    fn record_failure(&self, error: ReplError) {
        if let Ok(mut slot) = self.shared.failure.lock() {
            slot.get_or_insert(error);
        }
    }

    /// Tells the task the command stream is flowing, which ends the warm-up.
    pub(crate) fn mark_stream_flowing(&self) {
        self.shared.stream_flowing.store(true, Ordering::Release);
    }

    /// Starts the task. Its first ACK goes out at once: after a diskless transfer the
    /// primary streams nothing until it gets one. With `warm_up`, ACKs repeat every
    /// [`WARM_UP_INTERVAL`] until the first command arrives (for at most
    /// [`WARM_UP_LIMIT`]): a primary that has not yet reaped its snapshot child ignores an
    /// early ACK for starting the stream, and would otherwise wait a whole interval.
    pub(crate) fn spawn_sender(
        &self,
        mut writer: StreamWriter,
        interval: Duration,
        write_timeout: Duration,
        warm_up: bool,
    ) -> JoinHandle<()> {
        let handle = self.clone();
        let warm_up_until = Instant::now()
            + if warm_up {
                WARM_UP_LIMIT
            } else {
                Duration::ZERO
            };
        tokio::spawn(async move {
            loop {
                let offset = handle.applied().to_string();
                let ack = command(&["REPLCONF", "ACK", offset.as_str()]);
                if let Err(error) =
                    write_with_timeout(&mut writer, &ack, write_timeout, "sending REPLCONF ACK")
                        .await
                {
                    handle.record_failure(error);
                    return;
                }
                let warming = Instant::now() < warm_up_until
                    && !handle.shared.stream_flowing.load(Ordering::Acquire);
                let pause = if warming {
                    WARM_UP_INTERVAL.min(interval)
                } else {
                    interval
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = handle.shared.ack_now.notified() => {}
                }
            }
        })
    }
}
