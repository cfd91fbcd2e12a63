//! The reply task: reads the replies of each batch in flight, follows a cluster node's
//! redirects, stops the pipe at the first refusal, and only then counts the batch (and
//! its mark) as applied, so that a mark never runs ahead of what the target holds.

use super::error::PipeError;
use super::node::{InFlight, Shared};
use super::refusal::{nth_command, refusal};
use crate::server::client::ReplyReader;
use crate::sinks::writer::redirect;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) async fn reply_task(
    mut reader: ReplyReader,
    mut flight: mpsc::Receiver<InFlight>,
    shared: Arc<Shared>,
) {
    while let Some(batch) = flight.recv().await {
        // Replies redirected (`MOVED`/`ASK`) and transactions aborted because of them.
        let mut redirected: Vec<(u32, redirect::Redirection)> = Vec::new();
        let mut aborted: Vec<u32> = Vec::new();
        for index in 0..batch.replies {
            let reply = match reader.read(reader.stall_timeout()).await {
                Ok(reply) => reply,
                Err(e) => {
                    shared.fail(PipeError::reading(e));
                    return;
                }
            };
            if shared.redirect.is_some() {
                if let Some(redirection) = redirect::redirection(&reply) {
                    redirected.push((index, redirection));
                    continue;
                }
                if !redirected.is_empty() && redirect::is_exec_abort(&reply) {
                    aborted.push(index);
                    continue;
                }
                if redirect::is_try_again(&reply) {
                    shared.fail(redirect::half_moved(&batch.payload, index).into());
                    return;
                }
            }
            if let Some(refused) = refusal(&reply, index, |n| nth_command(&batch.payload, n)) {
                shared.fail(refused);
                return;
            }
        }
        // The batch counts as applied once what it had redirected is applied elsewhere.
        if let (Some(follower), false) = (&shared.redirect, redirected.is_empty()) {
            let followed = match redirect::collect(&batch.payload, &redirected, &aborted) {
                Ok(commands) => follower.follow(commands).await,
                Err(error) => Err(error.into()),
            };
            if let Err(error) = followed {
                shared.fail(error);
                return;
            }
        }
        let counters = &shared.counters;
        counters.replies.fetch_add(
            batch.replies.saturating_sub(batch.framing) as u64,
            Ordering::Relaxed,
        );
        counters
            .bytes
            .fetch_add(batch.payload.len() as u64, Ordering::Relaxed);
        if let Some(mark) = batch.mark {
            if let Ok(mut applied) = shared.applied.lock() {
                *applied = Some(mark);
            }
            if let Some(ack) = shared.ack.lock().ok().as_ref().and_then(|a| a.as_ref()) {
                ack.set_applied(mark.offset);
            }
        }
        if let Some(done) = batch.done {
            let _ = done.send(());
        }
    }
}
