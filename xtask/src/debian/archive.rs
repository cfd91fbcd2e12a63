//! Which Debian archive to fetch packages (the servers, promtool) from: the one this
//! machine's own apt uses.
//!
//! No address is written into the project. Machines behind a corporate or regional mirror
//! (CI images often are) name that mirror in their apt sources; taking the archive from
//! there means `cargo xtask servers` goes wherever `apt-get` itself would go. apt's other
//! settings (proxies, authentication, certificates in apt.conf.d) still apply, because our
//! private apt state overrides only the source lists.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The keyring that signs Debian's archive, used when a source names none.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The Debian archive as one of apt's sources names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub uri: String,
    /// `Signed-By` of that source (a keyring file), if it names one.
    pub signed_by: Option<PathBuf>,
}

impl Archive {
    /// The keyring to check the suites' Release files with.
    pub fn keyring(&self) -> PathBuf {
        self.signed_by
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEBIAN_KEYRING))
    }
}

/// One `deb` source: its URI, suites and components, from either file format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    uri: String,
    suites: Vec<String>,
    components: Vec<String>,
    signed_by: Option<PathBuf>,
}

/// Reads apt's source files where apt's own configuration says they are.
pub fn discover() -> Result<Archive> {
    let (list, parts) = source_locations()?;
    let mut files: Vec<PathBuf> = vec![list];
    if let Ok(entries) = fs::read_dir(&parts) {
        let mut names: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        // apt reads the parts in name order; so do we, so the first match is apt's first.
        names.sort();
        files.extend(names);
    }
    let mut sources = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => sources.extend(parse_deb822(&text)),
            // The main list has no extension; parts count only with `.list`, as in apt.
            Some("list") => sources.extend(parse_one_line(&text)),
            None if file.file_name().is_some_and(|n| n == "sources.list") => {
                sources.extend(parse_one_line(&text))
            }
            _ => {}
        }
    }
    pick(&sources).with_context(|| {
        let read: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        format!(
            "apt's sources name no Debian archive with a release suite and `main` (read {}); \
             add the archive or your mirror of it to apt's sources, as for `apt-get install`",
            read.join(", ")
        )
    })
}

/// `Dir::Etc::SourceList` and `Dir::Etc::SourceParts`, resolved by apt-config.
fn source_locations() -> Result<(PathBuf, PathBuf)> {
    let output = Command::new("apt-config")
        .args([
            "shell",
            "LIST",
            "Dir::Etc::SourceList/f",
            "PARTS",
            "Dir::Etc::SourceParts/d",
        ])
        .output()
        .context("cannot run apt-config (the servers come from Debian's archive through apt)")?;
    if !output.status.success() {
        bail!(
            "apt-config failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(|v| PathBuf::from(v.trim_matches('\'')))
    };
    let list = value("LIST").unwrap_or_else(|| PathBuf::from("/etc/apt/sources.list"));
    let parts = value("PARTS").unwrap_or_else(|| PathBuf::from("/etc/apt/sources.list.d/"));
    Ok((list, parts))
}

/// The first source that carries a Debian release suite's `main`: security and
/// third-party repositories have other suite names (`bookworm-security`, `nodistro`).
fn pick(sources: &[Source]) -> Option<Archive> {
    sources
        .iter()
        .find(|s| {
            s.components.iter().any(|c| c == "main") && s.suites.iter().any(|x| is_release(x))
        })
        .map(|s| Archive {
            uri: s.uri.trim_end_matches('/').to_string(),
            signed_by: s.signed_by.clone(),
        })
}

/// A Debian release suite by codename or alias, or its `-updates`/`-backports`.
fn is_release(suite: &str) -> bool {
    const NAMES: [&str; 11] = [
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "stable",
        "testing",
        "unstable",
        "oldstable",
    ];
    let base = suite
        .strip_suffix("-updates")
        .or_else(|| suite.strip_suffix("-backports"))
        .unwrap_or(suite);
    NAMES.contains(&base)
}

/// `deb [options] uri suite component…` lines.
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(after) => match after.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        let signed_by = options
            .split_whitespace()
            .find_map(|option| option.strip_prefix("signed-by="))
            .map(PathBuf::from);
        sources.push(Source {
            uri: uri.to_string(),
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    sources
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`), one source
/// per URI of a stanza. `Enabled: no` stanzas are skipped, as apt skips them.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation line (an inline keyring): part of the previous field.
                if let Some((_, value)) = fields.last_mut() {
                    value.push('\n');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if !words("types").iter().any(|t| t == "deb")
            || field("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        // An inline key block cannot be passed on as a file; the default keyring is used.
        let signed_by = field("signed-by")
            .filter(|v| !v.contains('\n') && Path::new(v).is_absolute())
            .map(PathBuf::from);
        for uri in words("uris") {
            sources.push(Source {
                uri,
                suites: words("suites"),
                components: words("components"),
                signed_by: signed_by.clone(),
            });
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    // Addresses in these tests are placeholders of the reserved `.example` domain.

    #[test]
    fn a_mirror_in_a_deb822_file_is_taken_and_security_is_passed_over() {
        let text = "Types: deb\nURIs: http://security.mirror.example/debian-security\n\
                    Suites: bookworm-security\nComponents: main\n\n\
                    Types: deb deb-src\nURIs: https://mirror.corp.example/debian/\n\
                    Suites: bookworm bookworm-updates\nComponents: main contrib\n\
                    Signed-By: /etc/apt/keyrings/corp.gpg\n";
        let archive = pick(&parse_deb822(text)).unwrap();
        assert_eq!(archive.uri, "https://mirror.corp.example/debian");
        assert_eq!(
            archive.keyring(),
            PathBuf::from("/etc/apt/keyrings/corp.gpg")
        );
    }

    #[test]
    fn one_line_sources_with_options_and_comments() {
        let text = "# deb http://old.example/debian bookworm main\n\
                    deb [arch=amd64] http://tools.example/apt nodistro main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://regional.example/debian trixie main # mirror\n";
        let archive = pick(&parse_one_line(text)).unwrap();
        assert_eq!(archive.uri, "http://regional.example/debian");
        assert_eq!(archive.keyring(), PathBuf::from("/k.gpg"));
    }

    #[test]
    fn disabled_stanzas_and_missing_main_find_nothing() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\n\
                    Components: main\nEnabled: no\n\n\
                    Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\n\
                    Components: contrib\n";
        assert_eq!(pick(&parse_deb822(text)), None);
    }

    /// The machine that runs the suite installs its servers this way: its own apt sources
    /// must name an archive whose keyring is present.
    #[test]
    fn this_machine_names_an_archive() {
        let archive = discover().unwrap();
        assert!(archive.uri.contains("://"), "{archive:?}");
        assert!(archive.keyring().exists(), "{archive:?}");
    }

    #[test]
    fn an_inline_key_falls_back_to_the_debian_keyring() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: sid\n\
                    Components: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n";
        let archive = pick(&parse_deb822(text)).unwrap();
        assert_eq!(archive.keyring(), PathBuf::from(DEBIAN_KEYRING));
    }
}
