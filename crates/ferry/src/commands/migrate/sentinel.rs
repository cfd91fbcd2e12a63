//! A source or target behind Sentinel: the primary its sentinels name is found at the
//! start; after a lost source the sentinels are asked again and the promoted primary is
//! continued by PSYNC with the old replication ID (it keeps it as its second ID); after a
//! target failover the run starts again from ferry's marker on the promoted target.

use super::*;
use crate::server::reconnect::{RECONNECT_FOR, RECONNECT_PAUSE};
use crate::server::sentinel::{self, SentinelError};

/// `url` pointed at the primary its sentinels name (unchanged for a plain URL), with a
/// line saying which one.
pub(super) async fn locate(
    url: &ServerUrl,
    side: &str,
    connect_timeout: Duration,
    events: &Observer,
) -> Result<ServerUrl, Error> {
    let located = sentinel::locate(url, connect_timeout)
        .await
        .map_err(|e| sentinel_error(url, side, e))?;
    if let Some(sentinels) = &url.sentinel {
        events.line(format!(
            "{side} {url}: the sentinels of {:?} name {} as the primary",
            sentinels.master_name,
            located.address()
        ));
    }
    Ok(located)
}

fn sentinel_error(url: &ServerUrl, side: &str, error: SentinelError) -> Error {
    let url = url.to_string();
    let source = Box::new(error);
    match side {
        "source" => Error::Source { url, source },
        _ => Error::Target { url, source },
    }
}

impl Migration {
    /// After a lost source connection: the primary the sentinels name now, if it changed
    /// (a failover promoted a replica). Nothing for a plain URL.
    pub(super) async fn follow_sentinel_source(&mut self) {
        if self.source_url.sentinel.is_none() {
            return;
        }
        let now = match sentinel::locate(&self.source_url, self.connect_timeout).await {
            Ok(now) => now,
            Err(error) => {
                self.say(format!(
                    "asking the source's sentinels: {}",
                    error_line(&error)
                ));
                return;
            }
        };
        if now.address() == self.source_url.address() {
            return;
        }
        self.failover_from = Some(self.source_url.address());
        self.say(format!(
            "failover: the sentinels of the source name {} as the primary now (was {}); \
             resuming there by PSYNC",
            now.address(),
            self.source_url.address()
        ));
        self.events.stats().set_source(&now.address());
        self.source_url = now;
    }

    /// After a run ended with `failure`: whether the target's sentinels moved its primary
    /// (a failover), in which case the URL points at the new one and the run may start
    /// again from ferry's marker there. Waits while the old primary cannot be reached and
    /// the sentinels still name it, up to [`RECONNECT_FOR`].
    pub(super) async fn target_failed_over(&mut self) -> bool {
        if self.target_url.sentinel.is_none() {
            return false;
        }
        let was = self.target_url.address();
        let started = Instant::now();
        while started.elapsed() < RECONNECT_FOR {
            match sentinel::locate(&self.target_url, self.connect_timeout).await {
                Ok(now) if now.address() != was => {
                    self.say(format!(
                        "failover: the sentinels of the target name {} as the primary now \
                         (was {was}); resuming from ferry's marker there",
                        now.address()
                    ));
                    self.target_url = now;
                    return true;
                }
                // Still the primary, and it answers: the failure was not a failover.
                Ok(_) => return false,
                Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
            }
        }
        false
    }
}
