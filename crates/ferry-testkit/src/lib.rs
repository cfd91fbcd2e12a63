//! Test support for ferry: real Redis/Valkey servers (installed by `cargo xtask servers`),
//! a dataset covering every type and encoding a server can produce, and snapshots that
//! compare two servers' contents.
//!
//! ```no_run
//! use ferry_testkit::{dataset, snapshot::{DiffOptions, Snapshot}, Server, ServerKind};
//! let source = Server::start(ServerKind::Redis80)?;
//! dataset::populate(&source)?;
//! let copy = Server::start_with_rdb(ServerKind::Redis80, &source.save()?)?;
//! let differences = Snapshot::capture(&source)?.diff(&Snapshot::capture(&copy)?, &DiffOptions::new());
//! assert!(differences.is_empty(), "{differences:#?}");
//! # anyhow::Ok(())
//! ```

mod closed_port;
pub mod cluster;
pub mod dataset;
pub mod expect;
mod kind;
mod manifest;
mod proxy;
pub mod rng;
pub mod sentinel;
mod server;
pub mod snapshot;
pub mod tls;
pub mod workload;

pub use closed_port::ClosedPort;
pub use cluster::Cluster;
pub use kind::ServerKind;
pub use manifest::{servers_manifest, Manifest, ServerEntry, MANIFEST_ENV};
pub use proxy::FaultProxy;
pub use sentinel::SentinelGroup;
pub use server::{Server, DB_FILENAME};
