//! One direction of one proxied connection: a reader that takes chunks off one socket and
//! a deliverer that writes them to the other, after the delay, at the rate, and not while
//! the proxy is stalled.

use super::{abort, Shared};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most read at once.
const CHUNK: usize = 64 * 1024;
/// Chunks read but not delivered, per direction: bounds the proxy's memory, and with a
/// delay the throughput (`QUEUED_CHUNKS * CHUNK` per delay).
const QUEUED_CHUNKS: usize = 64;
/// Under a rate limit, the most written at once: a twentieth of a second's worth, so the
/// flow is even rather than bursts.
const RATE_SLICES_PER_SEC: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    ToUpstream,
    ToClient,
}

/// Held by the four threads of a connection; the last one out takes it off the proxy's
/// list of open connections.
pub(super) struct Connection {
    id: u64,
    shared: Arc<Shared>,
}

impl Connection {
    pub(super) fn new(id: u64, shared: Arc<Shared>) -> Self {
        Connection { id, shared }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

struct Chunk {
    bytes: Vec<u8>,
    /// When it may be delivered (arrival plus the delay then set).
    due: Instant,
}

/// Starts the reader and the deliverer of `from` → `to`.
pub(super) fn spawn(
    from: TcpStream,
    to: TcpStream,
    direction: Direction,
    connection: Arc<Connection>,
) -> Result<[JoinHandle<()>; 2]> {
    let (queue, chunks) = sync_channel(QUEUED_CHUNKS);
    let reader = {
        let from = from.try_clone()?;
        let connection = connection.clone();
        std::thread::Builder::new()
            .name(format!("proxy-read-{}", connection.id))
            .spawn(move || read_loop(from, queue, &connection))
            .context("cannot start a proxy thread")?
    };
    let deliverer = std::thread::Builder::new()
        .name(format!("proxy-deliver-{}", connection.id))
        .spawn(move || {
            if !deliver_loop(&chunks, &to, direction, &connection) {
                // The receiving side failed: the connection is over for both.
                abort(&from);
                abort(&to);
            }
        })
        .context("cannot start a proxy thread")?;
    Ok([reader, deliverer])
}

fn read_loop(mut from: TcpStream, queue: SyncSender<Chunk>, connection: &Connection) {
    let shared = &connection.shared;
    let mut buf = vec![0u8; CHUNK];
    // Ends at the sender's end, a cut, the deliverer's failure or the proxy's end.
    while shared.wait_flowing() {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = Chunk {
            bytes: buf[..n].to_vec(),
            due: Instant::now() + shared.faults().delay,
        };
        if queue.send(chunk).is_err() {
            break;
        }
    }
}

/// Delivers until the reader ends (then passes the end on) or the proxy closes; `false`
/// when writing failed.
fn deliver_loop(
    chunks: &Receiver<Chunk>,
    mut to: &TcpStream,
    direction: Direction,
    connection: &Connection,
) -> bool {
    let shared = &connection.shared;
    let counter = match direction {
        Direction::ToUpstream => &shared.counters.to_upstream,
        Direction::ToClient => &shared.counters.to_client,
    };
    let mut pace = Pace::default();
    while let Ok(chunk) = chunks.recv() {
        if !shared.sleep_until(chunk.due) {
            return true;
        }
        let mut rest = &chunk.bytes[..];
        while !rest.is_empty() {
            if !shared.wait_flowing() {
                return true;
            }
            let rate = shared.faults().rate;
            let len = slice_len(rate).min(rest.len());
            if !shared.sleep_until(pace.reserve(rate, len)) {
                return true;
            }
            // Counted before the write: a reader that got the bytes must see them counted
            // (after a failed write the connection is gone and the count no longer matters).
            counter.fetch_add(len as u64, Ordering::Relaxed);
            if to.write_all(&rest[..len]).is_err() {
                return false;
            }
            rest = &rest[len..];
        }
    }
    // The sender ended its side: so does the proxy, towards the receiver.
    let _ = to.shutdown(Shutdown::Write);
    true
}

fn slice_len(rate: Option<u64>) -> usize {
    match rate {
        Some(rate) => ((rate / RATE_SLICES_PER_SEC) as usize).clamp(1, CHUNK),
        None => CHUNK,
    }
}

/// When each write may start so that the bytes written keep to the rate.
#[derive(Default)]
struct Pace {
    next: Option<Instant>,
}

impl Pace {
    fn reserve(&mut self, rate: Option<u64>, len: usize) -> Instant {
        let now = Instant::now();
        let Some(rate) = rate else {
            self.next = None;
            return now;
        };
        let start = self.next.map_or(now, |next| next.max(now));
        self.next = Some(start + Duration::from_secs_f64(len as f64 / rate as f64));
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_spaces_writes_by_their_size() {
        let mut pace = Pace::default();
        let first = pace.reserve(Some(1000), 100);
        let second = pace.reserve(Some(1000), 100);
        assert_eq!(second - first, Duration::from_millis(100));
        // Without a rate, nothing waits and the schedule is forgotten.
        assert!(pace.reserve(None, 100) <= Instant::now());
        assert!(pace.next.is_none());
    }

    #[test]
    fn a_rate_writes_a_twentieth_of_a_second_at_once() {
        assert_eq!(slice_len(Some(200_000)), 10_000);
        assert_eq!(slice_len(Some(5)), 1);
        assert_eq!(slice_len(None), CHUNK);
    }
}
