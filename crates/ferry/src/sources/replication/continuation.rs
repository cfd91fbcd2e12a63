//! A `+CONTINUE` checked against what the source says of itself. A primary continues a
//! replica only from an offset it has reached, and only a history it holds as its own
//! replication ID or as its previous one (up to the failover that made it primary), in
//! which case `+CONTINUE` names its new ID. `INFO replication` read just after shows
//! both: a `+CONTINUE` they contradict came from a peer that does not have the data, and
//! streaming from it would claim "in sync" for what the target never received.

use crate::server::client::{Client, ClientError};
use crate::url::ServerUrl;
use ferry_repl::resp::Frame;
use std::time::Duration;

/// The fields of `INFO replication` that decide whether a continue can be true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHistory {
    pub replid: String,
    /// The history it continued before its last promotion (all zeros when none).
    pub replid2: String,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContinueRefused {
    #[error(
        "the source answered +CONTINUE from offset {asked} but its INFO shows \
         master_repl_offset {reached}: it cannot hold what it claims to continue"
    )]
    OffsetNotReached { asked: i64, reached: i64 },
    #[error(
        "the source answered +CONTINUE {continued} to PSYNC {asked}, but its INFO shows \
         replication ID {replid} (previous {replid2}): it does not hold that history"
    )]
    UnknownHistory {
        asked: String,
        continued: String,
        replid: String,
        replid2: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Refused(#[from] ContinueRefused),
    #[error("cannot read INFO replication to check its +CONTINUE: {0}")]
    Info(String),
}

/// Parses `INFO replication`; `None` without the three fields.
pub fn parse(text: &str) -> Option<SourceHistory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some(SourceHistory {
        replid: field("master_replid")?.to_owned(),
        replid2: field("master_replid2").unwrap_or_default().to_owned(),
        offset: field("master_repl_offset")?.parse().ok()?,
    })
}

/// Whether `+CONTINUE <continued>`, answering `PSYNC <asked> <offset + 1>`, can be true of
/// a source in state `info` (read after the reply: offsets only grow).
pub fn check(
    asked: &str,
    offset: i64,
    continued: &str,
    info: &SourceHistory,
) -> Result<(), ContinueRefused> {
    if info.offset < offset {
        return Err(ContinueRefused::OffsetNotReached {
            asked: offset,
            reached: info.offset,
        });
    }
    let holds = |id: &str| id == info.replid || id == info.replid2;
    if !holds(continued) || !(asked == continued || holds(asked)) {
        return Err(ContinueRefused::UnknownHistory {
            asked: asked.to_owned(),
            continued: continued.to_owned(),
            replid: info.replid.clone(),
            replid2: info.replid2.clone(),
        });
    }
    Ok(())
}

/// Connects to the source at `url` (within `connect_timeout`) and checks the continue.
pub async fn verify_at(
    url: &ServerUrl,
    connect_timeout: Duration,
    asked: &str,
    offset: i64,
    continued: &str,
) -> Result<(), CheckError> {
    let mut client = Client::connect(url, connect_timeout)
        .await
        .map_err(|e| CheckError::Info(e.to_string()))?;
    verify(&mut client, asked, offset, continued).await
}

/// Reads the source's `INFO replication` through `client` and checks the continue.
pub async fn verify(
    client: &mut Client,
    asked: &str,
    offset: i64,
    continued: &str,
) -> Result<(), CheckError> {
    let info_error = |e: ClientError| CheckError::Info(e.to_string());
    let reply = client
        .call(&["INFO", "replication"])
        .await
        .map_err(info_error)?;
    let text = match &reply {
        Frame::Bulk(bytes) | Frame::Verbatim { text: bytes, .. } => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        other => {
            return Err(CheckError::Info(format!(
                "it answered {}",
                other.describe()
            )))
        }
    };
    let info = parse(&text).ok_or_else(|| {
        CheckError::Info("it lacks master_replid or master_repl_offset".to_owned())
    })?;
    Ok(check(asked, offset, continued, &info)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";
    const NONE: &str = "0000000000000000000000000000000000000000";

    fn info(replid: &str, replid2: &str, offset: i64) -> SourceHistory {
        SourceHistory {
            replid: replid.into(),
            replid2: replid2.into(),
            offset,
        }
    }

    #[test]
    fn the_same_history_at_a_reached_offset_continues() {
        assert_eq!(check(OLD, 100, OLD, &info(OLD, NONE, 100)), Ok(()));
        assert_eq!(check(OLD, 100, OLD, &info(OLD, NONE, 5000)), Ok(()));
    }

    #[test]
    fn a_promoted_replica_continues_its_previous_history_under_its_new_id() {
        assert_eq!(check(OLD, 100, NEW, &info(NEW, OLD, 200)), Ok(()));
    }

    #[test]
    fn an_offset_beyond_the_source_is_refused() {
        assert_eq!(
            check(OLD, 100, OLD, &info(OLD, NONE, 99)),
            Err(ContinueRefused::OffsetNotReached {
                asked: 100,
                reached: 99
            })
        );
    }

    #[test]
    fn a_history_the_source_does_not_hold_is_refused() {
        // The continued ID is not the source's.
        assert!(check(OLD, 1, NEW, &info(OLD, NONE, 10)).is_err());
        // The source's own ID, but the asked history is not its previous one.
        assert!(check(OLD, 1, NEW, &info(NEW, NONE, 10)).is_err());
        // Same ID claimed, yet the source is on another history altogether.
        assert!(check(OLD, 1, OLD, &info(NEW, NONE, 10)).is_err());
    }

    #[test]
    fn info_replication_is_parsed() {
        let text = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\
                    master_replid:2222222222222222222222222222222222222222\r\n\
                    master_replid2:1111111111111111111111111111111111111111\r\n\
                    master_repl_offset:1234\r\nsecond_repl_offset:1000\r\n";
        assert_eq!(parse(text), Some(info(NEW, OLD, 1234)));
        assert_eq!(parse("role:master\r\n"), None);
    }
}
