//! Writes `SET key:i <100 B>` for i in 0..KEYS into the cluster at URL with one writer:
//! ferry's own `ClusterPipe`, or redis-rs's async or blocking cluster client. Prints the
//! seconds it took. `cargo xtask bench --only writer` builds it in release and runs each
//! writer on the same cluster, to measure ferry's writer beside the ecosystem's.
//!
//! usage: cluster_writer ferry|redis-rs-async|redis-rs-pipeline URL KEYS
//!
//! redis-rs is used as an application would for a stream of writes to many slots: its
//! async client refuses a pipeline whose commands span slots, so each command is its own
//! request (up to [`IN_FLIGHT`] at once, multiplexed on its connections); its blocking
//! client's `cluster_pipe` splits a pipeline per node and waits for each one.

use anyhow::{bail, Context as _, Result};
use ferry::server::client::Client;
use ferry::sinks::writer::cluster::ClusterPipe;
use ferry::sinks::writer::pipe::{Batch, Mark};
use ferry::url::ServerUrl;
use std::time::{Duration, Instant};

const VALUE_SIZE: usize = 100;
/// Commands per batch (ferry) or pipeline (redis-rs blocking): what a stream batch holds.
const BATCH: usize = 1000;
/// Requests the async client has outstanding at once.
const IN_FLIGHT: usize = 1000;
/// ferry's in-flight budget, as `migrate --max-memory-mb 256` gives its pipe.
const BUDGET_BYTES: usize = 64 << 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [writer, url, keys] = args.as_slice() else {
        bail!("usage: cluster_writer ferry|redis-rs-async|redis-rs-pipeline URL KEYS");
    };
    let keys: u64 = keys.parse().context("KEYS is a number")?;
    let started = Instant::now();
    match writer.as_str() {
        "ferry" => runtime()?.block_on(with_ferry(url, keys))?,
        "redis-rs-async" => runtime()?.block_on(with_redis_rs_async(url, keys))?,
        "redis-rs-pipeline" => with_redis_rs_pipeline(url, keys)?,
        other => bail!("unknown writer {other}"),
    }
    println!("{:.6}", started.elapsed().as_secs_f64());
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn key(i: u64) -> String {
    format!("key:{i}")
}

async fn with_ferry(url: &str, keys: u64) -> Result<()> {
    let url = ServerUrl::parse(url)?;
    let timeout = Duration::from_secs(5);
    let mut seed = Client::connect(&url, timeout).await?;
    let pipe = ClusterPipe::connect(&url, &mut seed, timeout, BUDGET_BYTES, 1).await?;
    let value = vec![b'v'; VALUE_SIZE];
    let mut batch = Batch::default();
    for i in 0..keys {
        batch.push(&[b"SET".as_slice(), key(i).as_bytes(), &value]);
        if batch.replies as usize == BATCH || i + 1 == keys {
            batch.mark = Some(Mark {
                offset: i as i64 + 1,
                db: 0,
            });
            pipe.send(std::mem::take(&mut batch)).await?;
        }
    }
    pipe.barrier().await?;
    Ok(())
}

async fn with_redis_rs_async(url: &str, keys: u64) -> Result<()> {
    let client = redis::cluster::ClusterClient::new(vec![url])?;
    let con = client.get_async_connection().await?;
    let value = vec![b'v'; VALUE_SIZE];
    let mut running = tokio::task::JoinSet::new();
    for i in 0..keys {
        if running.len() == IN_FLIGHT {
            running.join_next().await.context("a request")???;
        }
        let mut con = con.clone();
        let value = value.clone();
        running.spawn(async move {
            redis::cmd("SET")
                .arg(key(i))
                .arg(value)
                .query_async::<()>(&mut con)
                .await
        });
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(())
}

fn with_redis_rs_pipeline(url: &str, keys: u64) -> Result<()> {
    let client = redis::cluster::ClusterClient::new(vec![url])?;
    let mut con = client.get_connection()?;
    let value = vec![b'v'; VALUE_SIZE];
    let mut pipe = redis::cluster::cluster_pipe();
    for i in 0..keys {
        pipe.cmd("SET").arg(key(i)).arg(&value).ignore();
        if (i + 1) % BATCH as u64 == 0 || i + 1 == keys {
            pipe.query::<()>(&mut con)?;
            pipe = redis::cluster::cluster_pipe();
        }
    }
    Ok(())
}
