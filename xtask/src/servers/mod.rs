//! `cargo xtask servers`: real Redis and Valkey servers from Debian's archive, each unpacked
//! with its own suite's libraries under `build/servers/<name>`, plus a manifest telling tests
//! how to start them. A second run with everything present touches no network.

mod closure;
mod install;
mod spec;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::debian::{archive, Apt};
use spec::{Spec, SPECS};

#[derive(Serialize)]
struct Manifest {
    servers: Vec<ManifestEntry>,
}

/// One server in build/servers/servers.json (read by ferry-testkit).
#[derive(Serialize)]
struct ManifestEntry {
    name: String,
    /// "redis" or "valkey".
    product: String,
    /// Upstream version, e.g. "8.0.2".
    version: String,
    /// The full `--version` line.
    version_output: String,
    /// Debian version of the package holding the binary.
    package_version: String,
    suite: String,
    /// The server's folder.
    dir: String,
    /// argv prefixes: bundled loader, its options, then the program.
    server: Vec<String>,
    cli: Vec<String>,
    benchmark: Vec<String>,
}

/// Makes sure every server is installed, rewrites the manifest and prints the versions.
/// Returns the manifest's absolute path.
pub fn ensure(repo_root: &Path) -> Result<PathBuf> {
    let started = Instant::now();
    let dir = repo_root.join("build").join("servers");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;

    let missing: Vec<Spec> = SPECS
        .iter()
        .filter(|spec| install::load(&dir.join(spec.name), spec).is_none())
        .copied()
        .collect();
    if !missing.is_empty() {
        install_missing(&dir, &missing)?;
    }

    let mut entries = Vec::new();
    for spec in &SPECS {
        let server_dir = dir.join(spec.name);
        let installed = install::load(&server_dir, spec)
            .with_context(|| format!("{}: install is incomplete", spec.name))?;
        let (version, version_output) = install::probe_version(&server_dir, spec, &installed)?;
        entries.push(ManifestEntry {
            name: spec.name.to_string(),
            product: spec.product.program().to_string(),
            version,
            version_output,
            package_version: installed.package_version.clone(),
            suite: spec.suite.to_string(),
            dir: server_dir.display().to_string(),
            server: installed.argv(&server_dir, spec, "server"),
            cli: installed.argv(&server_dir, spec, "cli"),
            benchmark: installed.argv(&server_dir, spec, "benchmark"),
        });
    }

    let manifest_path = dir.join("servers.json");
    let text = serde_json::to_string_pretty(&Manifest { servers: entries })?;
    let temporary = dir.join("servers.json.tmp");
    fs::write(&temporary, text + "\n").context("cannot write the server manifest")?;
    fs::rename(&temporary, &manifest_path).context("cannot write the server manifest")?;

    print_table(&manifest_path)?;
    eprintln!(
        "servers ready in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        manifest_path.display()
    );
    Ok(manifest_path)
}

fn install_missing(dir: &Path, missing: &[Spec]) -> Result<()> {
    let names: Vec<&str> = missing.iter().map(|spec| spec.name).collect();
    let archive = archive::discover()?;
    eprintln!(
        "installing {} from Debian's archive at {} (from apt's sources)",
        names.join(", "),
        archive.uri
    );
    let apt = Apt::new(dir.join(".apt"));
    apt.prepare(&archive, &spec::suites())?;
    let warnings = apt.update()?;
    let plans = closure::resolve(&apt, missing).map_err(|err| match warnings.first() {
        Some(warning) => anyhow::anyhow!("{err:#} (apt-get update warned: {warning})"),
        None => err,
    })?;
    let all: BTreeSet<closure::Pinned> = plans.iter().flatten().cloned().collect();
    let users = |reference: &str| {
        let needing: Vec<&str> = missing
            .iter()
            .zip(&plans)
            .filter(|(_, packages)| {
                packages
                    .iter()
                    .any(|(name, version)| format!("{name}={version}") == reference)
            })
            .map(|(spec, _)| spec.name)
            .collect();
        needing.join(", ")
    };
    apt.download(&all.into_iter().collect::<Vec<_>>(), users)?;
    for (spec, packages) in missing.iter().zip(&plans) {
        install::install(spec, packages, &apt.debs_dir(), &dir.join(spec.name))?;
    }
    apt.drop_cache();
    Ok(())
}

fn print_table(manifest_path: &Path) -> Result<()> {
    let text = fs::read_to_string(manifest_path)?;
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    for server in manifest["servers"].as_array().into_iter().flatten() {
        println!(
            "{:<11} {:<7} (Debian {} {})",
            server["name"].as_str().unwrap_or("?"),
            server["version"].as_str().unwrap_or("?"),
            server["suite"].as_str().unwrap_or("?"),
            server["package_version"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
