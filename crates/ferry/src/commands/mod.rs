//! One module per subcommand.

pub mod assess;
pub mod convert;
pub mod cutover;
pub mod inspect;
pub mod migrate;
pub mod relay;
pub mod rollback;
pub mod verify;

use crate::error::Error;
use std::future::Future;
use std::time::Duration;

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
