//! Shared by the `relay_*` tests: runs `ferry relay` as a child process (the `migrate`
//! runner), attaches real Valkey replicas to it with REPLICAOF, and waits on what a person
//! running the migration would watch (`master_link_status`, offsets in INFO).

use super::migrate::{assert_as_policies_promise, master_repl_offset, Ferry};
use super::{info_field, server_info};
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::{Server, ServerKind};
use std::time::{Duration, Instant};

pub const LINK_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `ferry relay`: the process (its log, signals, exit, through `Deref`) and
/// where replicas reach it.
pub struct Relay {
    ferry: Ferry,
    pub port: u16,
    /// Sent with AUTH before INFO when the relay requires one.
    pub password: Option<String>,
    /// How INFO reaches a relay that serves TLS.
    pub tls: Option<ClientTls>,
}

/// The files a test client presents to a TLS relay.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl std::ops::Deref for Relay {
    type Target = Ferry;
    fn deref(&self) -> &Ferry {
        &self.ferry
    }
}

impl std::ops::DerefMut for Relay {
    fn deref_mut(&mut self) -> &mut Ferry {
        &mut self.ferry
    }
}

impl Relay {
    /// Starts `ferry relay --source <source> --listen 127.0.0.1:<port> <extra>`; port 0
    /// picks a free one (read back from the log line).
    pub fn start(source: &Server, port: u16, extra: &[&str]) -> Relay {
        Relay::start_on(source, &format!("127.0.0.1:{port}"), extra)
    }

    /// Starts `ferry relay --source <source> --listen <listen> <extra>`.
    pub fn start_on(source: &Server, listen: &str, extra: &[&str]) -> Relay {
        Relay::start_url(&source.url(), listen, extra)
    }

    /// Starts `ferry relay --source <url> --listen <listen> <extra>` (a Sentinel URL, say).
    pub fn start_url(url: &str, listen: &str, extra: &[&str]) -> Relay {
        let mut args = vec!["--source", url, "--listen", listen];
        args.extend_from_slice(extra);
        let mut ferry = Ferry::start_command("relay", &args);
        let line = ferry.wait_for("listening on", Duration::from_secs(30));
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(':').nth(1))
            .and_then(|port| {
                port.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Relay {
            ferry,
            port,
            password: None,
            tls: None,
        }
    }

    /// ferry's own `INFO`, as any client reads it.
    pub fn info(&self) -> String {
        // The password in the URL: the client authenticates before anything else.
        let auth = match &self.password {
            Some(password) => format!(":{}@", password.replace(' ', "%20")),
            None => String::new(),
        };
        let client = match &self.tls {
            None => redis::Client::open(format!("redis://{auth}127.0.0.1:{}", self.port)).unwrap(),
            Some(tls) => {
                let read = |path: &std::path::Path| std::fs::read(path).unwrap();
                let certificates = redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: read(&tls.cert),
                        client_key: read(&tls.key),
                    }),
                    root_cert: Some(read(&tls.ca)),
                };
                let url = format!("rediss://{auth}127.0.0.1:{}", self.port);
                redis::Client::build_with_tls(url, certificates).unwrap()
            }
        };
        let mut con = client.get_connection().expect("connect to the relay");
        redis::cmd("INFO")
            .query(&mut con)
            .expect("INFO from the relay")
    }

    pub fn info_field(&self, name: &str) -> Option<String> {
        info_field(&self.info(), name)
    }

    /// Waits until every attached replica has ACKed what `source` has written so far,
    /// mapped back to the source's offsets by ferry.
    pub fn wait_acked(&self, source: &Server) {
        let wanted = master_repl_offset(source);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let acked = self
                .info_field("ferry_acked_source_offset")
                .and_then(|v| v.parse::<i64>().ok());
            if acked.is_some_and(|a| a >= wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "source offset {wanted} not acked within 60 s (acked {acked:?}):\n{}\n{}",
                self.info(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A Valkey server replicating from the relay, configured so that a restart keeps it a
/// replica (`--replicaof` on its command line).
pub fn start_replica(kind: ServerKind, relay: &Relay, extra: &[&str]) -> Server {
    let port = relay.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    Server::start_with_args(kind, &args).expect("start the replica")
}

/// Waits for `master_link_status:up` on `replica` (of `relay`, a [`Relay`] or any `ferry
/// relay` run).
pub fn wait_link_up(replica: &Server, relay: &Ferry) {
    let deadline = Instant::now() + LINK_TIMEOUT;
    loop {
        let info = server_info(replica, "replication");
        if info_field(&info, "master_link_status").as_deref() == Some("up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never reached master_link_status:up:\n{info}\n{}\nreplica log:\n{}",
            replica.kind(),
            relay.output(),
            replica.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Captures the source, waits until the replicas ACKed everything it wrote up to then
/// (reading the source makes it expire keys lazily and replicate the DELs), and
/// compares each replica with what the policies promise.
pub fn assert_replicas_equal(
    source: &Server,
    relay: &Relay,
    replicas: &[&Server],
    field_ttl: FieldTtl,
    ttl_tolerance_ms: u64,
) {
    let before = Snapshot::capture(source).expect("capture source");
    relay.wait_acked(source);
    for replica in replicas {
        let vectors = if replica.kind().has_vector_sets() {
            VectorSets::Keep
        } else {
            VectorSets::Remove
        };
        let actual = Snapshot::capture(replica).expect("capture replica");
        let options = DiffOptions::new().ttl_tolerance_ms(ttl_tolerance_ms);
        let between = format!("{} -> {}", source.kind(), replica.kind());
        let policies = (field_ttl, vectors);
        assert_as_policies_promise(
            &before,
            actual,
            policies,
            &options,
            &between,
            &relay.output(),
        );
    }
}

/// A few writes of every kind, for the stream.
pub fn simple_writes(server: &Server) {
    let mut con = server.client();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("w:{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg("w:hash")
            .arg(i)
            .arg(i)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("RPUSH")
            .arg("w:list")
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    let _: () = redis::cmd("SET")
        .arg("w:db3")
        .arg("x")
        .query(&mut con)
        .unwrap();
}
