//! Acknowledgements to the primary. The caller reports the offset it has *applied* through
//! a cheap [`AckHandle`]; a task sends `REPLCONF ACK <applied>` every interval, and at once
//! when the primary asks with `REPLCONF GETACK`. Acknowledging the applied offset rather
//! than the received one keeps the primary's view (WAIT, INFO) honest.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::ReplError;
use crate::link::write_with_timeout;
use crate::resp::command;

#[derive(Debug, Default)]
struct Shared {
    applied: AtomicI64,
    ack_now: Notify,
    /// Why the ACK task stopped, if it did.
    failure: Mutex<Option<ReplError>>,
}

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

    /// Starts the task. Its first ACK goes out at once: after a diskless transfer the
    /// primary streams nothing until it gets one.
    pub(crate) fn spawn_sender(
        &self,
        mut writer: OwnedWriteHalf,
        interval: Duration,
        write_timeout: Duration,
    ) -> JoinHandle<()> {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = handle.shared.ack_now.notified() => {}
                }
                let offset = handle.applied().to_string();
                let ack = command(&["REPLCONF", "ACK", offset.as_str()]);
                if let Err(error) =
                    write_with_timeout(&mut writer, &ack, write_timeout, "sending REPLCONF ACK")
                        .await
                {
                    handle.record_failure(error);
                    return;
                }
            }
        })
    }
}
