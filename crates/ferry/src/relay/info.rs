//! `INFO` as a primary answers it, so that a person, a script or a replica's tooling can
//! read the relay like any primary: `role:master`, the attached replicas and their
//! offsets, `master_replid`/`master_repl_offset`, and `sync_full`/`sync_partial_ok`/
//! `sync_partial_err`. ferry adds the source offset each replica's ACK covers.
//! `slave_priority:0` and `replica_announced:0` say the relay is never a candidate for
//! promotion; Sentinel reads them only from a replica (`role:slave`), so a connection that
//! named itself as a sentinel (`CLIENT SETNAME sentinel-…`) is shown the relay as a
//! replica of its source.

use super::Relay;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// The text of `INFO [section ...]` (CRLF lines, as servers send).
pub fn render(relay: &Relay, sections: &[String], reader: Reader) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "everything" | "default"));
    let wants = |name: &str| all || sections.iter().any(|s| s == name);
    let mut out = String::new();
    if wants("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:7.2.4\r\nferry_version:{}\r\nferry_mode:relay\r\nprocess_id:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
    }
    if wants("replication") {
        replication(relay, &mut out, reader);
    }
    if wants("stats") {
        let counters = &relay.counters;
        let _ = write!(
            out,
            "# Stats\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\n\r\n",
            counters.full.load(Ordering::Relaxed),
            counters.partial_ok.load(Ordering::Relaxed),
            counters.partial_err.load(Ordering::Relaxed),
        );
    }
    out.truncate(out.trim_end().len());
    out
}

/// Who asks for `INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// A person, a script, a replica's tooling: the relay as the primary it is.
    Client,
    /// A sentinel: the relay as a replica of its source that is never promoted.
    Sentinel,
}

fn replication(relay: &Relay, out: &mut String, reader: Reader) {
    let replicas = relay.replicas();
    out.push_str("# Replication\r\n");
    match reader {
        Reader::Client => out.push_str("role:master\r\n"),
        Reader::Sentinel => {
            let source = relay.source_now();
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:up\r\n",
                source.host, source.port
            );
        }
    }
    let _ = write!(
        out,
        "slave_priority:0\r\nreplica_announced:0\r\nconnected_slaves:{}\r\n",
        replicas.len()
    );
    for (index, replica) in replicas.iter().enumerate() {
        let _ = write!(
            out,
            "slave{index}:ip={},port={},state={},offset={},lag={},source_offset={},replid={}\r\n",
            replica.address,
            replica.listening_port.unwrap_or(0),
            replica.state,
            replica.ack_offset,
            replica.last_ack.elapsed().as_secs(),
            replica.source_offset.unwrap_or(-1),
            replica.replid,
        );
    }
    let histories = relay.histories();
    let latest = histories.last().map(|h| h.view());
    match &latest {
        Some(view) => {
            let _ = write!(
                out,
                "master_replid:{}\r\nmaster_repl_offset:{}\r\nrepl_backlog_active:1\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
                view.replid,
                view.offset,
                relay.config.backlog_bytes,
                view.first_offset,
                view.backlog_len,
            );
        }
        None => {
            let _ = write!(
                out,
                "master_replid:{}\r\nmaster_repl_offset:0\r\nrepl_backlog_active:0\r\n",
                "0".repeat(40)
            );
        }
    }
    let _ = write!(
        out,
        "ferry_source:{}\r\nferry_histories:{}\r\n",
        relay.config.source_url,
        histories.len()
    );
    if let Some(view) = &latest {
        let _ = write!(out, "ferry_source_offset:{}\r\n", view.source_offset);
    }
    // What every replica has applied, in the source's offsets: cutover waits on this.
    let acked = replicas.iter().filter_map(|r| r.source_offset).min();
    if let Some(acked) = acked {
        let _ = write!(out, "ferry_acked_source_offset:{acked}\r\n");
    }
    out.push_str("\r\n");
}
