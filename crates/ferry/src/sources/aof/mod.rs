//! An append-only file as a source: a Redis 7+ `appendonlydir` (a manifest naming a base
//! file and incremental files) or a single AOF (Redis before 7.0), with or without an RDB
//! preamble.
//!
//! - [`open`] finds the files to load, in the order Redis loads them: the base, then each
//!   incremental file (history files are never loaded); a listed file that is missing is
//!   an error before anything is read.
//! - A file that begins with an RDB (`REDIS`, or Valkey 9's `VALKEY`) is read by the RDB
//!   file source up to its checksum; its commands (if any) follow from that byte on.
//! - [`CommandStream`] reads the commands of every file in turn ([`commands`]), with one
//!   running offset over all of them. A tail cut inside a command, or a file that ends
//!   inside MULTI, is an error naming the file and the byte: ferry never loads a partial
//!   AOF (Redis's `aof-load-truncated yes` would drop the tail with a warning).

pub mod commands;
mod error;
pub mod manifest;

pub use commands::{AofCommand, CommandReader};
pub use error::AofError;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    pub path: PathBuf,
    /// The manifest's base file (a single AOF is its own base).
    pub base: bool,
    /// It begins with an RDB (a base written with `aof-use-rdb-preamble yes`).
    pub rdb: bool,
    pub size: u64,
}

/// What [`open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofLayout {
    /// The manifest, for an `appendonlydir`.
    pub manifest: Option<PathBuf>,
    /// In load order.
    pub files: Vec<AofFile>,
}

impl AofLayout {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The files of the AOF at `path`: an `appendonlydir`, its manifest, or a single AOF.
pub fn open(path: &Path) -> Result<AofLayout, AofError> {
    let io = |source| AofError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    let manifest = if metadata.is_dir() {
        Some(find_manifest(path)?)
    } else if path.extension().is_some_and(|e| e == "manifest") {
        Some(path.to_owned())
    } else {
        None
    };
    let Some(manifest_path) = manifest else {
        return Ok(AofLayout {
            manifest: None,
            files: vec![describe(path, true)?],
        });
    };
    let text = std::fs::read(&manifest_path).map_err(|source| AofError::Io {
        path: manifest_path.clone(),
        source,
    })?;
    let parsed = manifest::parse(&text, &manifest_path)?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let entries = parsed
        .base
        .iter()
        .map(|e| (e, true))
        .chain(parsed.incremental.iter().map(|e| (e, false)));
    for (entry, base) in entries {
        let file = dir.join(&entry.name);
        if !file.is_file() {
            return Err(AofError::Missing {
                manifest: manifest_path.clone(),
                file,
            });
        }
        files.push(describe(&file, base)?);
    }
    Ok(AofLayout {
        manifest: Some(manifest_path),
        files,
    })
}

/// The one manifest of `dir` (Redis writes a new one as `temp-…` first: left out).
fn find_manifest(dir: &Path) -> Result<PathBuf, AofError> {
    let io = |source| AofError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".manifest") && !name.starts_with("temp-") {
            names.push(name);
        }
    }
    names.sort();
    match names.len() {
        0 => Err(AofError::NoManifest {
            dir: dir.to_owned(),
        }),
        1 => Ok(dir.join(&names[0])),
        _ => Err(AofError::ManyManifests {
            dir: dir.to_owned(),
            names,
        }),
    }
}

fn describe(path: &Path, base: bool) -> Result<AofFile, AofError> {
    let io = |source| AofError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 6];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..]).map_err(io)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = &head[..filled];
    Ok(AofFile {
        path: path.to_owned(),
        base,
        rdb: starts_with_rdb(head),
        size,
    })
}

/// Redis's loader takes a file for an RDB when it begins with `REDIS`.
pub fn starts_with_rdb(head: &[u8]) -> bool {
    head.starts_with(b"REDIS") || head.starts_with(b"VALKEY")
}

/// One command of the stream, with the running offset over every file after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamedCommand {
    pub args: Vec<bytes::Bytes>,
    pub offset_after: i64,
    /// Which file of the layout it came from.
    pub file: usize,
}

/// The commands of every file in load order. Each file starts where its RDB ended
/// (`starts`: 0 without an RDB).
pub struct CommandStream {
    files: Vec<(PathBuf, u64)>,
    next: usize,
    reader: Option<CommandReader>,
    /// Bytes of commands read in the files before the current one.
    before: u64,
    /// Where the current file's open MULTI began.
    multi_at: Option<u64>,
}

impl CommandStream {
    pub fn new(files: Vec<(PathBuf, u64)>) -> Self {
        Self {
            files,
            next: 0,
            reader: None,
            before: 0,
            multi_at: None,
        }
    }

    pub fn next_command(&mut self) -> Result<Option<StreamedCommand>, AofError> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                let Some((path, start)) = self.files.get(self.next) else {
                    return Ok(None);
                };
                self.reader = Some(CommandReader::open(path, *start)?);
                self.next += 1;
                continue;
            };
            let start = self.files[self.next - 1].1;
            let before_command = reader.offset();
            match reader.next_command()? {
                Some(command) => {
                    let name = &command.args[0];
                    if name.eq_ignore_ascii_case(b"MULTI") {
                        self.multi_at = Some(before_command);
                    } else if name.eq_ignore_ascii_case(b"EXEC")
                        || name.eq_ignore_ascii_case(b"DISCARD")
                    {
                        self.multi_at = None;
                    }
                    return Ok(Some(StreamedCommand {
                        args: command.args,
                        offset_after: (self.before + command.end - start) as i64,
                        file: self.next - 1,
                    }));
                }
                None => {
                    if let Some(offset) = self.multi_at {
                        return Err(AofError::OpenTransaction {
                            path: reader.path().to_owned(),
                            offset,
                        });
                    }
                    self.before += reader.offset() - start;
                    self.reader = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";

    fn names(stream: &mut CommandStream) -> Result<Vec<(String, i64, usize)>, String> {
        let mut out = Vec::new();
        while let Some(c) = stream.next_command().map_err(|e| e.to_string())? {
            out.push((
                String::from_utf8_lossy(&c.args[0]).into_owned(),
                c.offset_after,
                c.file,
            ));
        }
        Ok(out)
    }

    #[test]
    fn one_running_offset_over_every_file_from_where_each_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        // `a` has 5 bytes before its commands (where an RDB would end).
        std::fs::write(&a, [b"HEAD!".as_slice(), SET].concat()).unwrap();
        std::fs::write(
            &b,
            [SET, b"*1\r\n$5\r\nMULTI\r\n", b"*1\r\n$4\r\nEXEC\r\n"].concat(),
        )
        .unwrap();
        let mut stream = CommandStream::new(vec![(a, 5), (b, 0)]);
        assert_eq!(
            names(&mut stream).unwrap(),
            [
                ("SET".into(), 27, 0),
                ("SET".into(), 54, 1),
                ("MULTI".into(), 69, 1),
                ("EXEC".into(), 83, 1)
            ]
        );
    }

    #[test]
    fn a_file_ending_inside_multi_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, [SET, b"*1\r\n$5\r\nMULTI\r\n", SET].concat()).unwrap();
        let mut stream = CommandStream::new(vec![(a.clone(), 0)]);
        let error = names(&mut stream).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "{} ends inside a MULTI transaction opened at byte 27",
                a.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn a_dir_names_its_manifest_files_and_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("appendonly.aof.manifest"),
            "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        // A manifest being rewritten is not one.
        std::fs::write(dir.path().join("temp-appendonly.aof.manifest"), "junk").unwrap();
        std::fs::write(dir.path().join("appendonly.aof.1.base.rdb"), b"REDIS0011").unwrap();
        let missing = open(dir.path()).unwrap_err().to_string();
        assert!(
            missing.ends_with("appendonly.aof.1.incr.aof, which is missing"),
            "{missing}"
        );
        std::fs::write(dir.path().join("appendonly.aof.1.incr.aof"), SET).unwrap();
        let layout = open(dir.path()).unwrap();
        let kinds: Vec<_> = layout
            .files
            .iter()
            .map(|f| (f.base, f.rdb, f.size))
            .collect();
        assert_eq!(kinds, [(true, true, 9), (false, false, 27)]);
        assert_eq!(
            open(&dir.path().join("appendonly.aof.manifest")).unwrap(),
            layout
        );
        std::fs::write(dir.path().join("other.manifest"), "x").unwrap();
        let two = open(dir.path()).unwrap_err().to_string();
        assert!(
            two.ends_with(
                "holds more than one AOF manifest: appendonly.aof.manifest, other.manifest"
            ),
            "{two}"
        );
    }
}
