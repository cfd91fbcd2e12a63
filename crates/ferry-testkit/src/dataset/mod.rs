//! A deterministic dataset holding every type and encoding a given server can produce.
//!
//! Key names say what they hold ("list:plain", "zset:skiplist", …) so a difference report
//! points straight at the encoding involved. Keys named "ttl:…" carry far-future
//! millisecond expiry times.

mod collections;
mod modern;
mod scalars;
mod streams;

use anyhow::{Context, Result};
use redis::{Connection, Pipeline};

use crate::rng::Rng;
use crate::Server;

/// 2100-01-01T00:00:00Z in ms: expiry times never reached during a test.
pub const FAR_FUTURE_MS: i64 = 4_102_444_800_000;
/// The databases the dataset uses.
pub const DATABASES: [u32; 3] = [0, 1, 5];
/// Elements in the "big:list" key in db 5.
pub const BIG_LIST_LEN: usize = 200_000;

const SEED: u64 = 0x00fe_5252_da7a_5e7d;

/// Fills `server` with the dataset. The same kind always gets the same data.
pub fn populate(server: &Server) -> Result<()> {
    let mut con = server.try_client()?;
    let mut rng = Rng::new(SEED);
    select(&mut con, 0)?;
    database_zero(server, &mut con, &mut rng)?;

    select(&mut con, 1)?;
    scalars::small_database(&mut con, &mut rng, "db1")?;
    streams::small_stream(&mut con, "db1:stream")?;

    select(&mut con, 5)?;
    scalars::small_database(&mut con, &mut rng, "db5")?;
    collections::big_list(&mut con)?;

    select(&mut con, 0)
}

/// The database 0 part of [`populate`] only (the same keys and functions): what a
/// cluster, which has no other database, can be compared with.
pub fn populate_db0(server: &Server) -> Result<()> {
    let mut con = server.try_client()?;
    let mut rng = Rng::new(SEED);
    select(&mut con, 0)?;
    database_zero(server, &mut con, &mut rng)
}

fn database_zero(server: &Server, con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let kind = server.kind();
    scalars::strings(con, rng)?;
    scalars::odd_keys(con, rng)?;
    collections::lists(con, rng, kind)?;
    collections::sets(con, rng)?;
    collections::sorted_sets(con, rng)?;
    collections::hashes(con, rng)?;
    streams::streams(con, rng, kind)?;
    if kind.has_hash_field_ttl() {
        modern::hash_field_ttls(con, rng)?;
    }
    if kind.has_vector_sets() {
        modern::vector_sets(con, rng)?;
    }
    if kind.is_redis7_or_later() {
        modern::functions(con)?;
    }
    Ok(())
}

fn select(con: &mut Connection, db: u32) -> Result<()> {
    redis::cmd("SELECT")
        .arg(db)
        .query::<()>(con)
        .with_context(|| format!("SELECT {db} failed"))
}

/// Sends a pipeline of ignored replies; `what` names the part of the dataset on failure.
fn send(con: &mut Connection, pipe: &Pipeline, what: &str) -> Result<()> {
    pipe.query::<()>(con)
        .with_context(|| format!("dataset: writing {what} failed"))
}

/// Adds PEXPIREAT with a millisecond-precise far-future time (`n` keeps times distinct).
fn expire_far(pipe: &mut Pipeline, key: &str, n: i64) {
    pipe.cmd("PEXPIREAT")
        .arg(key)
        .arg(FAR_FUTURE_MS + n * 86_400_123 + 7)
        .ignore();
}
