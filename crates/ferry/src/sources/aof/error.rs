//! What can be wrong with an AOF: each error names the file, and where it is about bytes,
//! the byte offset in that file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no AOF manifest (*.manifest)", dir.display())]
    NoManifest { dir: PathBuf },
    #[error("{} holds more than one AOF manifest: {}", dir.display(), names.join(", "))]
    ManyManifests { dir: PathBuf, names: Vec<String> },
    #[error("{} line {line}: {problem}", path.display())]
    Manifest {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{}: {problem}", path.display())]
    ManifestContent { path: PathBuf, problem: String },
    #[error("{} names {}, which is missing", manifest.display(), file.display())]
    Missing { manifest: PathBuf, file: PathBuf },
    #[error("{} at byte {offset}: {problem}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        problem: String,
    },
    #[error(
        "{} ends inside a command at byte {offset} (a tail cut short, as a crash leaves it); \
         ferry loads no partial AOF: cut the tail with redis-check-aof --fix (valkey-check-aof) \
         and run again",
        path.display()
    )]
    Truncated { path: PathBuf, offset: u64 },
    #[error(
        "{} ends inside a MULTI transaction opened at byte {offset} (Redis would drop that \
         transaction); cut the tail with redis-check-aof --fix (valkey-check-aof) and run again",
        path.display()
    )]
    OpenTransaction { path: PathBuf, offset: u64 },
}
