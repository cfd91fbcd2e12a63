//! One module per subcommand.

pub mod assess;
pub mod convert;
pub mod cutover;
pub mod fleet;
pub mod generate;
pub mod inspect;
pub mod migrate;
pub mod relay;
pub mod rollback;
pub mod verify;

use crate::error::Error;
use crate::url::ServerUrl;
use std::future::Future;
use std::time::Duration;

/// How long the commands that connect once give each sentinel and the primary it names.
const SENTINEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `--source` and `--target` with their connection flags applied, each pointed at the
/// primary its sentinels name now (a plain URL as it is).
pub(crate) fn primaries_now(
    (source, source_flags): (&str, &crate::connection::SourceConnectionArgs),
    (target, target_flags): (&str, &crate::connection::TargetConnectionArgs),
) -> Result<(ServerUrl, ServerUrl), Error> {
    let source = primary_now(source_flags.settings().resolve(source, "--source")?)?;
    let target = primary_now(target_flags.settings().resolve(target, "--target")?)?;
    Ok((source, target))
}

/// `url` pointed at the primary its sentinels name now, for the commands that connect
/// once (verify, assess, cutover, rollback); a plain URL is returned as it is.
pub(crate) fn primary_now(url: ServerUrl) -> Result<ServerUrl, Error> {
    if url.sentinel.is_none() {
        return Ok(url);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Migration(format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(crate::server::sentinel::locate(
            &url,
            SENTINEL_CONNECT_TIMEOUT,
        ))
        .map_err(|e| Error::Connect {
            url: url.to_string(),
            source: Box::new(e),
        })
}

/// Runs a long-lived command (migrate, relay) on a two-thread runtime. Tasks still running
/// when it returns (ACKs, an abandoned pipe) get 200 ms, so they do not hold the exit up.
pub(crate) fn run_async(command: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Migration(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(command);
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}
