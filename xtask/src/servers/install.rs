//! Unpacks a server's packages into its own folder and checks that its programs start using
//! only the libraries (and the dynamic loader) bundled there.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::closure::Pinned;
use super::spec::Spec;
use crate::debian::{self, find_deb, remove_dir_if_exists};

/// Bumped whenever the install recipe changes, so old installs are redone.
const RECIPE: u32 = 1;
const MARKER: &str = "ferry-server.json";
const TOOLS: [&str; 3] = ["server", "cli", "benchmark"];

/// What an installed server folder holds; written last, so its presence means "complete".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installed {
    pub recipe: u32,
    pub name: String,
    pub suite: String,
    /// Version of the package holding the binary.
    pub package_version: String,
    /// Every unpacked package as `name=version`.
    pub packages: Vec<String>,
    /// The bundled dynamic loader, relative to the folder.
    pub loader: String,
    /// Library folders, relative to the folder.
    pub library_path: Vec<String>,
}

impl Installed {
    /// The argv prefix that runs `tool` ("server", "cli", "benchmark") of a server installed
    /// in `dir`: bundled loader, bundled libraries only, then the program.
    pub fn argv(&self, dir: &Path, spec: &Spec, tool: &str) -> Vec<String> {
        let libraries: Vec<String> = self
            .library_path
            .iter()
            .map(|lib| dir.join(lib).display().to_string())
            .collect();
        vec![
            dir.join(&self.loader).display().to_string(),
            // The host's ld.so.cache describes the host's libraries, not ours.
            "--inhibit-cache".to_string(),
            "--library-path".to_string(),
            libraries.join(":"),
            dir.join(spec.program_path(tool)).display().to_string(),
        ]
    }
}

/// The install in `dir`, if it is complete and made by the current recipe.
pub fn load(dir: &Path, spec: &Spec) -> Option<Installed> {
    let text = fs::read_to_string(dir.join(MARKER)).ok()?;
    let installed: Installed = serde_json::from_str(&text).ok()?;
    let complete = installed.recipe == RECIPE
        && installed.name == spec.name
        && installed.suite == spec.suite
        && dir.join(&installed.loader).is_file()
        && TOOLS
            .iter()
            .all(|tool| dir.join(spec.program_path(tool)).is_file());
    complete.then_some(installed)
}

pub fn install(spec: &Spec, packages: &[Pinned], debs: &Path, dir: &Path) -> Result<Installed> {
    let name = spec.name;
    let partial = dir.with_extension("partial");
    remove_dir_if_exists(&partial)?;
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    for (package, version) in packages {
        let deb = find_deb(debs, package, version)
            .with_context(|| format!("{name}: {package}={version} was not downloaded"))?;
        debian::unpack(&deb, &partial).with_context(|| name.to_string())?;
    }
    keep_symlinks_inside(&partial, &partial)?;
    remove_dir_if_exists(dir)?;
    fs::rename(&partial, dir).with_context(|| format!("cannot rename {}", partial.display()))?;

    let loader = find_loader(dir).with_context(|| {
        format!("{name}: no ld-linux-x86-64.so.2 among its packages (is libc6 missing?)")
    })?;
    let library_path: Vec<String> = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"]
        .into_iter()
        .filter(|lib| dir.join(lib).is_dir())
        .map(str::to_string)
        .collect();
    let tools_package = spec.tools_package();
    let installed = Installed {
        recipe: RECIPE,
        name: name.to_string(),
        suite: spec.suite.to_string(),
        package_version: packages
            .iter()
            .find(|(package, _)| *package == tools_package)
            .map(|(_, version)| version.clone())
            .unwrap_or_default(),
        packages: packages.iter().map(|(p, v)| format!("{p}={v}")).collect(),
        loader,
        library_path,
    };
    for tool in TOOLS {
        check_libraries(dir, spec, &installed, tool)?;
    }
    let marker = serde_json::to_string_pretty(&installed)?;
    fs::write(dir.join(MARKER), marker).context("cannot write the install marker")?;
    Ok(installed)
}

/// Runs the program's version flag and returns (version, full output line).
pub fn probe_version(dir: &Path, spec: &Spec, installed: &Installed) -> Result<(String, String)> {
    let argv = installed.argv(dir, spec, "server");
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .arg("--version")
        .output()
        .with_context(|| format!("{}: cannot start {}", spec.name, argv[0]))?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() {
        bail!(
            "{}: `--version` failed: {}",
            spec.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // "Redis server v=8.0.2 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=…"
    let version = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .with_context(|| format!("{}: unexpected --version output {line:?}", spec.name))?
        .to_string();
    if !version.starts_with(&format!("{}.", spec.series)) {
        bail!(
            "{}: Debian {} now carries version {version}, not a {}.x release",
            spec.name,
            spec.suite,
            spec.series
        );
    }
    Ok((version, line))
}

/// Asks the bundled loader which libraries the program resolves to, and fails on any that is
/// missing or that would come from outside the folder.
fn check_libraries(dir: &Path, spec: &Spec, installed: &Installed, tool: &str) -> Result<()> {
    let mut argv = installed.argv(dir, spec, tool);
    let program = argv.pop().unwrap_or_default();
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .arg("--list")
        .arg(&program)
        .output()
        .with_context(|| format!("{}: cannot run its loader", spec.name))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let canonical_dir = dir.canonicalize()?;
    for line in listing.lines() {
        // "\tlibssl.so.3 => /path/libssl.so.3 (0x…)" or "\tlibfoo.so.1 => not found"
        let Some((soname, target)) = line.trim().split_once(" => ") else {
            continue;
        };
        if target.starts_with("not found") {
            bail!(
                "{}: {tool} needs {soname}, which none of its packages holds",
                spec.name
            );
        }
        let path = target.split(" (").next().unwrap_or(target);
        let resolved = Path::new(path)
            .canonicalize()
            .unwrap_or_else(|_| path.into());
        if !resolved.starts_with(&canonical_dir) {
            bail!(
                "{}: {tool} would load {soname} from the host ({path}), not from its own folder",
                spec.name
            );
        }
    }
    if !output.status.success() {
        bail!(
            "{}: loader check of {tool} failed: {}",
            spec.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn find_loader(dir: &Path) -> Option<String> {
    [
        "lib64/ld-linux-x86-64.so.2",
        "usr/lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    ]
    .into_iter()
    .find(|candidate| dir.join(candidate).is_file())
    .map(str::to_string)
}

/// Packages hold absolute symlinks (e.g. lib64/ld-linux-x86-64.so.2 → /lib/…/ld-2.31.so)
/// that would point into the host; rewrite each as a relative link inside `root`.
fn keep_symlinks_inside(root: &Path, dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            if target.is_absolute() {
                let depth = path
                    .parent()
                    .and_then(|parent| parent.strip_prefix(root).ok())
                    .map(|rel| rel.components().count())
                    .unwrap_or(0);
                let mut relative = PathBuf::new();
                for _ in 0..depth {
                    relative.push(Component::ParentDir);
                }
                relative.push(target.strip_prefix("/").unwrap_or(&target));
                fs::remove_file(&path)?;
                std::os::unix::fs::symlink(&relative, &path)
                    .with_context(|| format!("cannot relink {}", path.display()))?;
            }
        } else if meta.is_dir() {
            keep_symlinks_inside(root, &path)?;
        }
    }
    Ok(())
}
