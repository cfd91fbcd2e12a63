//! `cargo xtask profiles`: starts each test server and writes what it reports (commands,
//! modules, settings, DUMP's RDB version) to `crates/ferry/profiles/<name>.json`, the
//! profiles `ferry assess --to` compiles in. Generated from the real servers, never typed.

use std::path::Path;

use anyhow::{Context, Result};
use ferry::commands::assess::capabilities;
use ferry_testkit::{Server, ServerKind};

/// Settings that describe the test instance rather than the release: kept by name (the
/// target knows them) with an empty value, so the files do not change from run to run.
const INSTANCE_SETTINGS: &[&str] = &[
    "port",
    "dir",
    "logfile",
    "pidfile",
    "unixsocket",
    "bind",
    "dbfilename",
    "appenddirname",
    "cluster-config-file",
    "tls-port",
    "server-cpulist",
    "bio-cpulist",
    "aof-rewrite-cpulist",
    "bgsave-cpulist",
    "enable-debug-command",
    "save",
    "appendonly",
    "daemonize",
    "supervised",
    "loglevel",
];

pub fn generate(root: &Path) -> Result<()> {
    let out = root.join("crates/ferry/profiles");
    std::fs::create_dir_all(&out).context("cannot create crates/ferry/profiles")?;
    for kind in ServerKind::all() {
        let server = Server::start(kind)?;
        let mut con = server.try_client()?;
        let mut profile = capabilities::probe(&mut con, kind.name());
        anyhow::ensure!(
            profile.unchecked.is_empty(),
            "{kind} refused probes: {:?}",
            profile.unchecked
        );
        for name in INSTANCE_SETTINGS {
            if let Some(value) = profile.config.get_mut(*name) {
                value.clear();
            }
        }
        let path = out.join(format!("{}.json", kind.name()));
        let mut json = serde_json::to_string_pretty(&profile)?;
        json.push('\n');
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "{}: {} {}, RDB {:?}, {} commands, {} modules",
            path.display(),
            profile.product,
            profile.version,
            profile.rdb_version,
            profile.commands.len(),
            profile.modules.len()
        );
    }
    Ok(())
}
