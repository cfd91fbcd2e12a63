//! Walks a server's keyspace with `SCAN`, a database at a time, paced to a rate.
//!
//! SCAN guarantees every key present for the whole walk is returned (some maybe twice);
//! keys created or changed during it are covered by their notifications instead.

use super::conn::{refused, SourceConn};
use crate::server::client::{parse_info, ClientError};
use bytes::Bytes;
use ferry_repl::resp::Frame;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Keys asked of each SCAN call.
pub const SCAN_COUNT: usize = 200;

/// Where a walk over every database is.
#[derive(Debug, Clone)]
pub struct Walk {
    dbs: Vec<u64>,
    /// Index into `dbs` and SCAN cursor there.
    at: usize,
    cursor: Bytes,
    count: usize,
    /// Only keys of this type (`SCAN … TYPE`).
    only: Option<&'static str>,
    /// A database whose SCAN goes on from this cursor (a resumed walk).
    resume_at: Option<(u64, Bytes)>,
}

impl Walk {
    pub fn new(dbs: BTreeSet<u64>) -> Self {
        Self {
            dbs: dbs.into_iter().collect(),
            at: 0,
            cursor: Bytes::from_static(b"0"),
            count: SCAN_COUNT,
            only: None,
            resume_at: None,
        }
    }

    /// A walk that goes on from an earlier one: the databases in `done` left out, and
    /// `at`'s database (walked even if it holds no keys now) from its cursor on.
    pub fn resume(mut dbs: BTreeSet<u64>, done: &BTreeSet<u64>, at: Option<(u64, Bytes)>) -> Self {
        if let Some((db, _)) = &at {
            dbs.insert(*db);
        }
        dbs.retain(|db| !done.contains(db));
        Self {
            resume_at: at,
            ..Self::new(dbs)
        }
    }

    /// The cursor `db`'s SCAN goes on from, or `None` once it is done (call it with the
    /// database the last step returned).
    pub fn cursor_in(&self, db: u64) -> Option<&Bytes> {
        (self.dbs.get(self.at) == Some(&db)).then_some(&self.cursor)
    }

    /// A walk returning only keys of type `name`, `count` keys examined per step.
    pub fn of_type(dbs: BTreeSet<u64>, name: &'static str, count: usize) -> Self {
        Self {
            count: count.max(1),
            only: Some(name),
            ..Self::new(dbs)
        }
    }

    pub fn done(&self) -> bool {
        self.at >= self.dbs.len()
    }

    /// The next keys of the walk (possibly none while a database has more), with their
    /// database.
    pub async fn step(&mut self, conn: &mut SourceConn) -> Result<(u64, Vec<Bytes>), ClientError> {
        let Some(&db) = self.dbs.get(self.at) else {
            return Ok((0, Vec::new()));
        };
        if let Some((_, cursor)) = self.resume_at.take_if(|(first, _)| *first == db) {
            self.cursor = cursor;
        }
        let selected = conn.select(db);
        let count = self.count.to_string();
        let mut args: Vec<&[u8]> = vec![b"SCAN", &self.cursor, b"COUNT", count.as_bytes()];
        if let Some(name) = self.only {
            args.extend([b"TYPE".as_slice(), name.as_bytes()]);
        }
        conn.push(&args);
        let mut replies = conn.replies(1 + usize::from(selected)).await?.into_iter();
        if selected {
            let reply = replies.next().unwrap_or(Frame::Null);
            if let Some(error) = refused("SELECT", &reply) {
                return Err(error);
            }
        }
        let reply = replies.next().unwrap_or(Frame::Null);
        if let Some(error) = refused("SCAN", &reply) {
            return Err(error);
        }
        let (cursor, keys) = crate::server::client::parse_scan(reply)?;
        if cursor.as_ref() == b"0" {
            self.at += 1;
            self.cursor = Bytes::from_static(b"0");
        } else {
            self.cursor = cursor;
        }
        Ok((db, keys))
    }
}

/// Whether a walk whose SCAN returned `cursor` has covered every bucket before `stop`,
/// another cursor of the same server. SCAN visits buckets in the order of their index's
/// bits reversed (so that a table resized meanwhile loses no bucket): a cursor's place in
/// the walk is its bits reversed. A cursor that is not a number is never taken as reached.
pub fn cursor_reached(cursor: &[u8], stop: &[u8]) -> bool {
    let number = |text: &[u8]| std::str::from_utf8(text).ok()?.parse::<u64>().ok();
    match (number(cursor), number(stop)) {
        (Some(cursor), Some(stop)) => cursor.reverse_bits() >= stop.reverse_bits(),
        _ => false,
    }
}

/// The databases `INFO keyspace` lists (those holding keys).
pub async fn databases(conn: &mut SourceConn) -> Result<BTreeSet<u64>, ClientError> {
    conn.push(&["INFO", "keyspace"]);
    let reply = conn.replies(1).await?.pop().unwrap_or(Frame::Null);
    if let Some(error) = refused("INFO", &reply) {
        return Err(error);
    }
    let text = match reply {
        Frame::Bulk(text) | Frame::Verbatim { text, .. } => text,
        other => {
            return Err(ClientError::Protocol(format!(
                "INFO answered {}",
                other.describe()
            )))
        }
    };
    Ok(parse_info(&text)
        .into_iter()
        .filter_map(|(name, _)| name.strip_prefix("db")?.parse().ok())
        .collect())
}

/// Paces work to `per_sec` units a second, measured from its start.
#[derive(Debug)]
pub struct Pace {
    per_sec: f64,
    started: Instant,
    done: u64,
}

impl Pace {
    pub fn new(per_sec: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec.max(1)),
            started: Instant::now(),
            done: 0,
        }
    }

    /// Counts `units` done and waits until the rate allows more.
    pub async fn take(&mut self, units: u64) {
        self.done += units;
        let due = Duration::from_secs_f64(self.done as f64 / self.per_sec);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::client::parse_scan;

    #[test]
    fn a_cursor_is_placed_by_its_bits_reversed() {
        // A table of 8 buckets is walked 0, 4, 2, 6, 1, 5, 3, 7.
        let order = [0u64, 4, 2, 6, 1, 5, 3, 7];
        let text = |n: u64| n.to_string().into_bytes();
        for (i, stop) in order.iter().enumerate() {
            for (j, cursor) in order.iter().enumerate().skip(1) {
                assert_eq!(
                    cursor_reached(&text(*cursor), &text(*stop)),
                    j >= i,
                    "cursor {cursor} stop {stop}"
                );
            }
        }
        // The table grew to 16 buckets: 12 lies between 4 and 2 of the small one.
        assert!(cursor_reached(b"12", b"4"));
        assert!(!cursor_reached(b"12", b"2"));
        assert!(!cursor_reached(b"x", b"4"));
    }

    #[test]
    fn a_scan_reply_is_a_cursor_and_keys() {
        let reply = Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"17")),
            Frame::Array(vec![Frame::Bulk(Bytes::from_static(b"a\r\nb"))]),
        ]);
        let (cursor, keys) = parse_scan(reply).unwrap();
        assert_eq!(cursor, "17");
        assert_eq!(keys, vec![Bytes::from_static(b"a\r\nb")]);
        assert!(parse_scan(Frame::Array(vec![])).is_err());
        assert!(parse_scan(Frame::Integer(3)).is_err());
    }
}

/// Commands that change keys without naming any in a notification.
const UNNOTIFIED: [&str; 3] = ["flushdb", "flushall", "swapdb"];

/// How many times the source has run FLUSHDB, FLUSHALL and SWAPDB (`INFO commandstats`,
/// scripts and transactions included); `None` when INFO commandstats is refused. Any
/// change since the last look means keys changed unseen.
pub async fn unnotified_calls(conn: &mut SourceConn) -> Result<Option<u64>, ClientError> {
    conn.push(&["INFO", "commandstats"]);
    let reply = conn.replies(1).await?.pop().unwrap_or(Frame::Null);
    let text = match reply {
        Frame::Bulk(text) | Frame::Verbatim { text, .. } => text,
        _ => return Ok(None),
    };
    Ok(Some(count_unnotified(&text)))
}

fn count_unnotified(info: &[u8]) -> u64 {
    parse_info(info)
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix("cmdstat_")
                .is_some_and(|command| UNNOTIFIED.contains(&command))
        })
        .filter_map(|(_, fields)| {
            fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|calls| calls.parse::<u64>().ok())
        })
        .sum()
}

#[cfg(test)]
mod commandstats_tests {
    use super::*;

    #[test]
    fn flushes_and_swaps_are_counted() {
        let info = b"# Commandstats\r\ncmdstat_set:calls=90,usec=5\r\n\
            cmdstat_flushdb:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_swapdb:calls=3,usec=1\r\ncmdstat_flushall:calls=1,usec=1\r\n";
        assert_eq!(count_unnotified(info), 6);
        assert_eq!(count_unnotified(b"cmdstat_get:calls=4,usec=1\r\n"), 0);
    }
}
