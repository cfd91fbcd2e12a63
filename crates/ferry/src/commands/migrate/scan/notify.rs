//! The source's `notify-keyspace-events` setting: what scan mode needs, whether the source
//! already has it, and turning it on (and back) when `CONFIG SET` is allowed.
//!
//! ferry subscribes to key-event channels (`__keyevent@<db>__:<event>`, class `E`): the
//! message is the key itself, whatever bytes it holds, and the channel names the
//! database and the event. Every class that reports a change to a key's value or expiry
//! is needed: `A` (`g$lshzxetd`: generic, each type, expired, evicted, stream, module).

use crate::server::client::{Client, ClientError};
use ferry_repl::resp::Frame;

/// The classes ferry needs, as `CONFIG SET` spells them.
pub const NEEDED: &str = "EA";
/// The classes `A` stands for.
const ALL_CLASSES: &str = "g$lshzxetd";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "notify-keyspace-events is \"{current}\" and ferry may not change it ({reason}); \
         scan mode needs the classes E and A: ask the operator to set \
         notify-keyspace-events to \"{wanted}\" (or pass --no-follow for a one-shot copy \
         that misses writes made during it)"
    )]
    Refused {
        current: String,
        wanted: String,
        reason: String,
    },
    #[error(
        "notify-keyspace-events cannot be read or changed ({reason}) and {probe}; scan \
         mode needs the classes E and A: ask the operator \
         to set notify-keyspace-events to \"{NEEDED}\" (or pass --no-follow for a one-shot \
         copy that misses writes made during it)"
    )]
    NotObserved { reason: String, probe: ProbeFailure },
    #[error("cannot read notify-keyspace-events: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Why a probe key did not show that key events arrive (the check left when CONFIG is
/// refused). Named in [`NotifyError::NotObserved`]'s message, so not its source too.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailure {
    #[error("a probe key's changes were not notified")]
    NotNotified,
    #[error("the probe key could not be written ({0})")]
    NotWritten(ClientError),
}

/// Whether `flags` (a `notify-keyspace-events` value) reports every change ferry follows.
pub fn covers(flags: &str) -> bool {
    let expanded = expand(flags);
    expanded.contains('E') && ALL_CLASSES.chars().all(|c| expanded.contains(c))
}

/// `flags` with `A` spelled out.
fn expand(flags: &str) -> String {
    flags.replace('A', ALL_CLASSES)
}

/// `current` plus what ferry needs, keeping the operator's other classes (K, m, n).
pub fn with_needed(current: &str) -> String {
    let mut out = String::from(NEEDED);
    for c in expand(current).chars() {
        if !ALL_CLASSES.contains(c) && !out.contains(c) {
            out.push(c);
        }
    }
    out
}

/// Reads the setting.
pub async fn current(client: &mut Client) -> Result<String, NotifyError> {
    let reply = client
        .call(&["CONFIG", "GET", "notify-keyspace-events"])
        .await?;
    parse_config_get(&reply).ok_or_else(|| NotifyError::Unreadable(describe(&reply)))
}

/// What [`enable`] found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Setting {
    /// Already reports every change ferry follows.
    AlreadyOn,
    /// ferry changed it; the original value, to put back at the end.
    Changed(String),
    /// CONFIG is refused altogether: only a probe can tell whether events come.
    Unknown { reason: String },
}

/// Makes sure the source reports every change.
pub async fn enable(client: &mut Client) -> Result<Setting, NotifyError> {
    let original = match current(client).await {
        Ok(value) => value,
        // A managed service may refuse CONFIG GET too: then SET may still work.
        Err(NotifyError::Unreadable(reason)) => {
            return match set(client, "(unknown)", NEEDED, &reason).await {
                // The value before is unknown; empty is the servers' default.
                Ok(()) => Ok(Setting::Changed(String::new())),
                Err(NotifyError::Refused { reason, .. }) => Ok(Setting::Unknown { reason }),
                Err(other) => Err(other),
            };
        }
        Err(other) => return Err(other),
    };
    if covers(&original) {
        return Ok(Setting::AlreadyOn);
    }
    let wanted = with_needed(&original);
    set(client, &original, &wanted, "").await?;
    Ok(Setting::Changed(original))
}

async fn set(
    client: &mut Client,
    current: &str,
    wanted: &str,
    earlier: &str,
) -> Result<(), NotifyError> {
    let reply = client
        .call(&["CONFIG", "SET", "notify-keyspace-events", wanted])
        .await?;
    match reply {
        Frame::Error(message) | Frame::BulkError(message) => {
            let mut reason = crate::server::client::one_line(&message);
            if !earlier.is_empty() {
                reason = format!("{earlier}; {reason}");
            }
            Err(NotifyError::Refused {
                current: current.to_owned(),
                wanted: wanted.to_owned(),
                reason,
            })
        }
        _ => Ok(()),
    }
}

/// Puts the setting back as it was.
pub async fn restore(client: &mut Client, original: &str) -> Result<(), ClientError> {
    client
        .call_ok(&["CONFIG", "SET", "notify-keyspace-events", original])
        .await
        .map(|_| ())
}

/// `CONFIG GET` answers `[name, value]` (RESP2) or a map (RESP3).
fn parse_config_get(reply: &Frame) -> Option<String> {
    let Frame::Array(items) = reply else {
        return None;
    };
    match items.get(1)? {
        Frame::Bulk(value) | Frame::Simple(value) => {
            Some(String::from_utf8_lossy(value).into_owned())
        }
        _ => None,
    }
}

fn describe(reply: &Frame) -> String {
    match reply {
        Frame::Error(message) | Frame::BulkError(message) => {
            format!(
                "CONFIG GET refused: {}",
                crate::server::client::one_line(message)
            )
        }
        other => format!("CONFIG GET answered {}", other.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_and_key_events_are_needed() {
        assert!(covers("AE"));
        assert!(covers("KEA"));
        assert!(covers("Eg$lshzxetd"));
        assert!(!covers(""));
        assert!(
            !covers("KA"),
            "keyspace channels alone are not what ferry reads"
        );
        assert!(!covers("Eg$lshzetd"), "expired events are needed");
    }

    #[test]
    fn the_operators_other_classes_are_kept() {
        assert_eq!(with_needed(""), "EA");
        assert_eq!(with_needed("Kx"), "EAK");
        assert_eq!(with_needed("Kgm"), "EAKm");
        assert!(covers(&with_needed("Klm")));
    }
}
