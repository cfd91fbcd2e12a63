//! A private apt state (build/servers/.apt, build/tools/.apt): our own sources list, package lists and
//! cache, passed to apt-get/apt-cache with `-o` options. The system's apt configuration is
//! only read, never changed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::archive::Archive;

pub struct Apt {
    root: PathBuf,
}

/// One available version of a package: the version string and the suite that carries it.
#[derive(Debug, Clone)]
pub struct Available {
    pub version: String,
    pub suite: String,
}

/// The fields of one package stanza that the dependency walk needs.
#[derive(Debug, Clone, Default)]
pub struct Stanza {
    pub package: String,
    pub version: String,
    /// `Pre-Depends` and `Depends`, each group a list of alternatives (package names only).
    pub depends: Vec<Vec<String>>,
}

impl Apt {
    pub fn new(root: PathBuf) -> Apt {
        Apt { root }
    }

    /// Writes our sources list (one line per suite, all from `archive`) and the directories
    /// apt expects.
    pub fn prepare(&self, archive: &Archive, suites: &[&str]) -> Result<()> {
        for dir in ["lists/partial", "cache/archives/partial", "debs"] {
            fs::create_dir_all(self.root.join(dir))
                .with_context(|| format!("cannot create {}", self.root.join(dir).display()))?;
        }
        let keyring = archive.keyring();
        if !keyring.exists() {
            bail!(
                "{} is missing (install the debian-archive-keyring package)",
                keyring.display()
            );
        }
        let sources: String = suites
            .iter()
            .map(|suite| {
                format!(
                    "deb [signed-by={}] {} {suite} main\n",
                    keyring.display(),
                    archive.uri
                )
            })
            .collect();
        write_if_changed(&self.root.join("sources.list"), &sources)?;
        // An empty package status: the host's installed packages must not influence anything.
        write_if_changed(&self.root.join("status"), "")?;
        Ok(())
    }

    /// Drops the 100 MB binary package cache; the next install rebuilds it in seconds.
    pub fn drop_cache(&self) {
        let _ = fs::remove_file(self.root.join("cache").join("pkgcache.bin"));
    }

    pub fn debs_dir(&self) -> PathBuf {
        self.root.join("debs")
    }

    fn options(&self) -> Vec<String> {
        let root = self.root.display();
        [
            format!("Dir::Etc::SourceList={root}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_string(),
            "Dir::Etc::Preferences=/dev/null".to_string(),
            "Dir::Etc::PreferencesParts=/dev/null".to_string(),
            format!("Dir::State::Lists={root}/lists"),
            format!("Dir::State::status={root}/status"),
            format!("Dir::Cache={root}/cache"),
            // Docker images switch the binary cache off; without it every apt-cache call
            // re-parses all lists (seconds instead of milliseconds).
            "Dir::Cache::pkgcache=pkgcache.bin".to_string(),
            "Dir::Cache::srcpkgcache=".to_string(),
            "Acquire::Languages=none".to_string(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false".to_string(),
            // Our download folder belongs to root; the _apt sandbox user cannot write there.
            "APT::Sandbox::User=root".to_string(),
        ]
        .into_iter()
        .flat_map(|option| ["-o".to_string(), option])
        .collect()
    }

    fn run(&self, tool: &str, args: &[String], cwd: Option<&Path>, what: &str) -> Result<String> {
        let mut command = Command::new(tool);
        command.args(self.options()).args(args);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let output = command
            .output()
            .with_context(|| format!("{what}: cannot run {tool}"))?;
        if !output.status.success() {
            bail!("{what}: {}", first_error(&output.stderr, &output.stdout));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Refreshes our package lists. apt-get exits 0 when a suite cannot be fetched (it keeps
    /// the old list, if any), so its warnings are returned to explain later failures.
    pub fn update(&self) -> Result<Vec<String>> {
        let output = Command::new("apt-get")
            .args(self.options())
            .arg("update")
            .output()
            .context("cannot run apt-get update")?;
        if !output.status.success() {
            bail!(
                "apt-get update failed: {}",
                first_error(&output.stderr, &output.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| line.starts_with("W:") || line.starts_with("E:"))
            .map(str::to_string)
            .collect())
    }

    /// Every version of each named package, with the suite that carries it.
    pub fn madison(&self, names: &[String]) -> Result<BTreeMap<String, Vec<Available>>> {
        let mut found: BTreeMap<String, Vec<Available>> = BTreeMap::new();
        if names.is_empty() {
            return Ok(found);
        }
        let mut args = vec!["madison".to_string()];
        args.extend(names.iter().cloned());
        let out = self.run("apt-cache", &args, None, "apt-cache madison failed")?;
        // " libc6 | 2.41-12+deb13u5 | http://host/debian trixie/main amd64 Packages"
        for line in out.lines() {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let [name, version, origin] = fields[..] else {
                continue;
            };
            let Some(suite) = origin
                .split_whitespace()
                .nth(1)
                .and_then(|dist| dist.split('/').next())
            else {
                continue;
            };
            if !origin.ends_with("Packages") {
                continue; // source package lines
            }
            found.entry(name.to_string()).or_default().push(Available {
                version: version.to_string(),
                suite: suite.to_string(),
            });
        }
        Ok(found)
    }

    /// The stanzas of exact `name=version` references.
    pub fn show(&self, refs: &[String]) -> Result<Vec<Stanza>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["show".to_string()];
        args.extend(refs.iter().cloned());
        let out = self.run("apt-cache", &args, None, "apt-cache show failed")?;
        Ok(parse_stanzas(&out))
    }

    /// Downloads `name=version` references into the shared .deb folder, skipping files that
    /// are already there. All in one apt-get call; if that fails, one call per package finds
    /// the culprit, which the error names together with the servers needing it (`users`).
    pub fn download(
        &self,
        refs: &[(String, String)],
        users: impl Fn(&str) -> String,
    ) -> Result<()> {
        let dir = self.debs_dir();
        let missing: Vec<String> = refs
            .iter()
            .filter(|(name, version)| find_deb(&dir, name, version).is_none())
            .map(|(name, version)| format!("{name}={version}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let download = |refs: &[String]| {
            let mut args = vec!["download".to_string()];
            args.extend(refs.iter().cloned());
            self.run("apt-get", &args, Some(&dir), "apt-get download")
        };
        if download(&missing).is_ok() {
            return Ok(());
        }
        for one in &missing {
            if let Err(err) = download(std::slice::from_ref(one)) {
                bail!(
                    "apt-get download failed for {one} (for {}): {err:#}",
                    users(one)
                );
            }
        }
        Ok(())
    }
}

/// The downloaded file of `name=version`: apt names it `name_version_arch.deb` with the
/// epoch colon written as `%3a`.
pub fn find_deb(dir: &Path, name: &str, version: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_{}_", version.replace(':', "%3a"));
    fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let file = entry.file_name();
        let file = file.to_str()?;
        (file.starts_with(&prefix) && file.ends_with(".deb")).then(|| entry.path())
    })
}

fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    for block in text.split("\n\n") {
        // Join continuation lines (leading space) to their field.
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in block.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((key, value)) = line.split_once(':') {
                fields.push((key.to_string(), value.trim().to_string()));
            }
        }
        let mut stanza = Stanza::default();
        for (key, value) in fields {
            match key.as_str() {
                "Package" => stanza.package = value,
                "Version" => stanza.version = value,
                "Depends" | "Pre-Depends" => stanza.depends.extend(parse_depends(&value)),
                _ => {}
            }
        }
        if !stanza.package.is_empty() {
            stanzas.push(stanza);
        }
    }
    stanzas
}

/// "libc6 (>= 2.34), a | b:any" → [["libc6"], ["a", "b"]]. Version constraints are dropped:
/// we always take the version of the server's own suite, which its package was built against.
fn parse_depends(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alternative| {
                    let name = alternative.split_whitespace().next()?;
                    let name = name.split(['(', ':']).next()?;
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|group| !group.is_empty())
        .collect()
}

/// The `E:` lines apt printed (or the last line of anything), as a one-line reason.
fn first_error(stderr: &[u8], stdout: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let stdout = String::from_utf8_lossy(stdout);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:")).collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    stderr
        .lines()
        .chain(stdout.lines())
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .to_string()
}

fn write_if_changed(path: &Path, content: &str) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_keep_alternatives_and_drop_versions() {
        let groups = parse_depends("libc6 (>= 2.34), systemd | systemd-tmpfiles, liblua5.1-0:any");
        assert_eq!(
            groups,
            vec![
                vec!["libc6".to_string()],
                vec!["systemd".to_string(), "systemd-tmpfiles".to_string()],
                vec!["liblua5.1-0".to_string()],
            ]
        );
    }

    #[test]
    fn stanzas_join_continuation_lines() {
        let text = "Package: a\nVersion: 1\nDepends: b,\n c (>= 2)\nPre-Depends: d\n\nPackage: e\nVersion: 2\n";
        let stanzas = parse_stanzas(text);
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].depends.len(), 3);
        assert_eq!(stanzas[1].package, "e");
    }
}
