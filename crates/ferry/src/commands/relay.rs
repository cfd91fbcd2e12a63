//! `ferry relay --source URL --listen HOST:PORT`: ferry stands in for the source as a
//! primary that Valkey replicas attach to with `REPLICAOF`; see `relay/` and
//! docs/relay.md.

use crate::cli::RelayArgs;
use crate::error::Error;
use crate::policy::Policies;
use crate::relay::saved::{self, RelayState};
use crate::relay::{listener, Relay, RelayConfig};
use crate::server::client::Client;
use crate::server::probe;
use crate::target::Target;
use crate::url::ServerUrl;
use std::io::Write;
use std::time::Duration;

pub fn run(args: RelayArgs, out: &mut dyn Write) -> Result<(), Error> {
    let _ = out;
    super::run_async(relay(args))
}

async fn relay(args: RelayArgs) -> Result<(), Error> {
    let source_url = args.source_connection.settings().apply(
        ServerUrl::parse(&args.source).map_err(|e| Error::Usage(format!("--source: {e}")))?,
    )?;
    if source_url.db.is_some_and(|db| db != 0) {
        return Err(Error::Usage(
            "--source: a relay carries every database; leave the /db part out of the URL".into(),
        ));
    }
    let password = match &args.requirepass_file {
        Some(path) => Some(read_password(path)?),
        None => None,
    };
    let control = args.control.token()?;
    let replica_format = args
        .replica_format
        .as_deref()
        .map(Target::from_profile)
        .transpose()?;
    let connect_timeout = Duration::from_secs(args.connect_timeout);
    // A Sentinel source: the primary named now; every later connect asks again
    // (`relay::history::connect_source`), so a failover is followed.
    let source_url = crate::server::sentinel::locate(&source_url, connect_timeout)
        .await
        .map_err(|e| Error::Source {
            url: source_url.to_string(),
            source: Box::new(e),
        })?;
    let source_upgrade = crate::tls::TlsConnector::for_url(&source_url, connect_timeout)
        .map_err(|e| Error::Source {
            url: source_url.to_string(),
            source: Box::new(e),
        })?
        .map(|tls| std::sync::Arc::new(tls) as std::sync::Arc<dyn ferry_repl::StreamUpgrade>);
    // The listener's files are checked before anything connects.
    let acceptor = listener_tls(&args)?
        .map(|files| crate::tls::TlsAcceptor::new(&files, connect_timeout))
        .transpose()
        .map_err(|e| Error::Usage(format!("cannot serve TLS to replicas: {e}")))?;
    let source_error = |e: Box<dyn std::error::Error + Send + Sync>| Error::Source {
        url: source_url.to_string(),
        source: e,
    };
    let mut client = Client::connect(&source_url, connect_timeout)
        .await
        .map_err(|e| source_error(Box::new(e)))?;
    let source_info = probe::server_info(&mut client)
        .await
        .map_err(|e| source_error(Box::new(e)))?;
    drop(client);
    let listener = tokio::net::TcpListener::bind(listen_address(&args.listen))
        .await
        .map_err(|e| Error::Usage(format!("--listen {}: cannot listen: {e}", args.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("--listen {}: {e}", args.listen)))?;
    let config = RelayConfig {
        source_url: source_url.clone(),
        source_info: source_info.clone(),
        policies: Policies::from(args.policies.clone()),
        scope: args
            .filters
            .scope()
            .map_err(|e| Error::Usage(e.to_string()))?,
        backlog_bytes: (args.backlog_mb as usize).saturating_mul(1 << 20),
        backlog_ttl: Duration::from_secs(args.backlog_ttl),
        password,
        replica_format,
        connect_timeout,
        source_upgrade,
        chunks: 16,
    };
    let relay = Relay::new(config);
    if let Some(path) = &args.state {
        if let Some(state) = saved::load(path).map_err(state_error)? {
            if state.source != source_url.to_string() {
                return Err(Error::Migration(format!(
                    "the state file {} belongs to source {}, not {}; use another --state file",
                    path.display(),
                    state.source,
                    source_url
                )));
            }
            let scope = relay.config.scope.describe();
            if state.scope != scope {
                return Err(Error::Migration(format!(
                    "the state file {} was written for the scope {:?}, and this run has \
                     {scope:?}: its replicas hold the other scope's keys; run with the same \
                     --match, --exclude, --db and --db-map, or use another --state file",
                    path.display(),
                    state.scope,
                )));
            }
            relay.log(format!(
                "{} saved histories in {}: replicas of them can continue",
                state.histories.len(),
                path.display()
            ));
            relay.set_dormant(state.histories);
        }
    }
    if let Some(sentinels) = &relay.config.source_url.sentinel {
        relay.log(format!(
            "source {}: the sentinels of {:?} name {} as the primary",
            relay.config.source_url,
            sentinels.master_name,
            relay.config.source_url.address()
        ));
    }
    relay.log(format!(
        "relaying {} ({}); listening on {bound}: point replicas at it with REPLICAOF {} {}",
        source_url,
        source_info.name(),
        bound.ip(),
        bound.port()
    ));
    match &args.listen_tls_ca {
        Some(ca) if acceptor.is_some() => relay.log(format!(
            "replicas connect over TLS (tls-replication yes) with a client certificate signed by {}",
            ca.display()
        )),
        _ if acceptor.is_some() => relay.log("replicas connect over TLS (tls-replication yes)"),
        _ => {}
    }
    let mut stats_for_stop = None;
    if let Some(addr) = args.metrics_addr {
        let stats = std::sync::Arc::new(crate::observe::Stats::default());
        stats.set_mode("relay");
        stats.set_servers(&source_url.address(), &source_info.name(), "", "");
        let live = relay.clone();
        stats.set_live_applied(move || live.offsets().0);
        let stoppable = control.is_some();
        let served = crate::observe::http::serve(addr, stats.clone(), control)
            .await
            .map_err(|e| Error::Usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
        relay.log(format!("serving /metrics and /status on http://{served}"));
        relay.log(crate::commands::migrate::stop_endpoint_line(stoppable));
        let attached = relay.clone();
        stats.set_replicas_reader(move || replica_rows(&attached));
        tokio::spawn(publish_stats(relay.clone(), stats.clone()));
        stats_for_stop = Some(stats);
    }
    let accept = tokio::spawn(listener::accept(relay.clone(), listener, acceptor));
    let saver = args
        .state
        .clone()
        .map(|path| tokio::spawn(save_every_second(relay.clone(), path)));
    match &stats_for_stop {
        Some(stats) => {
            tokio::select! {
                _ = crate::server::shutdown::signal() => {}
                _ = stats.stop_requested() => relay.log("stopping: asked to by POST /stop (cutover)"),
            }
        }
        None => crate::server::shutdown::signal().await,
    }
    accept.abort();
    if let Some(stats) = &stats_for_stop {
        stats.set_phase(crate::observe::Phase::Stopped);
    }
    if let Some(saver) = saver {
        saver.abort();
    }
    if let Some(path) = &args.state {
        save_state(&relay, path)?;
    }
    relay.log("stopped; replicas keep their data and reconnect when ferry is back");
    Ok(())
}

fn state_error(error: saved::SavedError) -> Error {
    Error::Migration(crate::error::one_line(crate::error::chain(&error)))
}

fn save_state(relay: &Relay, path: &std::path::Path) -> Result<(), Error> {
    let mut state = RelayState::new(relay.config.source_url.to_string(), relay.saved_histories());
    state.scope = relay.config.scope.describe();
    saved::save(path, &state).map_err(state_error)
}

/// Keeps the state file current; a failed write is logged once per change of message.
async fn save_every_second(relay: std::sync::Arc<Relay>, path: std::path::PathBuf) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last_error = String::new();
    loop {
        ticker.tick().await;
        match save_state(&relay, &path) {
            Ok(()) => last_error.clear(),
            Err(error) => {
                let line = crate::error::one_line(crate::error::chain(&error));
                if line != last_error {
                    relay.log(&line);
                    last_error = line;
                }
            }
        }
    }
}

/// Keeps `/metrics` and `/status` current: `applied` is the source offset the replicas
/// ACKed, `source` the newest source offset ferry took in.
async fn publish_stats(relay: std::sync::Arc<Relay>, stats: std::sync::Arc<crate::observe::Stats>) {
    use crate::observe::Phase;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        ticker.tick().await;
        let (acked, source) = relay.offsets();
        let phase = match (acked, source) {
            (Some(acked), Some(source)) if acked >= source => Phase::InSync,
            (_, Some(_)) => Phase::Streaming,
            _ => Phase::Starting,
        };
        if stats.phase() == Phase::Stopped {
            return;
        }
        stats.set_phase(phase);
        stats.set_offsets(acked.unwrap_or(0), source.unwrap_or(0));
        if let Some(history) = relay.histories().last() {
            stats.set_replid(&history.view().source_replid);
        }
        // The target a cutover promotes: the first attached replica (host:port it
        // listens on).
        if let Some(replica) = relay.replicas().first() {
            let target = format!(
                "{}:{}",
                replica.address,
                replica.listening_port.unwrap_or(0)
            );
            stats.set_servers(
                &relay.source_now().address(),
                &relay.config.source_info.name(),
                &target,
                "replica",
            );
        }
    }
}

/// One row per attached replica for `/status`, its lag against what the relay has
/// received from the source.
fn replica_rows(relay: &Relay) -> Vec<crate::observe::status::ReplicaStatus> {
    let received = relay.offsets().1.unwrap_or(0);
    relay
        .replicas()
        .into_iter()
        .map(|replica| {
            let acked = replica.source_offset.unwrap_or(0);
            crate::observe::status::ReplicaStatus {
                address: match replica.listening_port {
                    Some(port) => format!("{}:{port}", replica.address),
                    None => replica.address,
                },
                version: replica.version,
                rdb: Some(replica.rdb),
                policies: replica.policies,
                acked_offset: acked,
                lag_bytes: (received - acked).max(0),
            }
        })
        .collect()
}

/// The TLS files for the listener, when `--listen-tls-cert` is given (clap makes the
/// certificate and the key go together, and the CA need the certificate).
fn listener_tls(args: &RelayArgs) -> Result<Option<crate::tls::ListenerTls>, Error> {
    match (&args.listen_tls_cert, &args.listen_tls_key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::ListenerTls {
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca: args.listen_tls_ca.clone(),
        })),
        (None, None) => Ok(None),
        _ => Err(Error::Usage(
            "--listen-tls-cert and --listen-tls-key go together".into(),
        )),
    }
}

/// `--listen PORT` (or `:PORT`) is loopback only: opening the relay to the network takes
/// an explicit address.
fn listen_address(text: &str) -> String {
    let port = text.strip_prefix(':').unwrap_or(text);
    match port.parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => text.to_owned(),
    }
}

/// The password, without a trailing newline (as `echo secret > file` writes it).
fn read_password(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    let password = text.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(Error::Usage(format!(
            "--requirepass-file {}: the file is empty",
            path.display()
        )));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_listens_on_loopback() {
        assert_eq!(listen_address("6390"), "127.0.0.1:6390");
        assert_eq!(listen_address(":6390"), "127.0.0.1:6390");
        assert_eq!(listen_address("0.0.0.0:6390"), "0.0.0.0:6390");
        assert_eq!(listen_address("[::1]:6390"), "[::1]:6390");
    }

    #[test]
    fn the_tls_flags_go_together() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["ferry", "relay", "--source", "redis://h:1", "--listen", "1"];
            args.extend_from_slice(extra);
            crate::cli::parse(args)
        };
        assert!(parse(&["--listen-tls-cert", "/c"]).is_err());
        assert!(parse(&["--listen-tls-key", "/k"]).is_err());
        assert!(parse(&["--listen-tls-ca", "/ca"]).is_err());
        let Ok(cli) = parse(&["--listen-tls-cert", "/c", "--listen-tls-key", "/k"]) else {
            panic!("parses");
        };
        let crate::cli::Command::Relay(args) = cli.command else {
            panic!("a relay");
        };
        let files = listener_tls(&args).unwrap().expect("TLS on");
        assert_eq!(files.cert_file, std::path::Path::new("/c"));
        assert_eq!(files.client_ca, None);
    }
}
