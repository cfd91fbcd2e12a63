//! ferry: move Redis data into Valkey, and prove nothing was lost.
//!
//! The data path is source → transforms → sink over the codec's [`ferry_codec::Item`]
//! stream: [`sources::Source`] yields items, [`transforms::Transform`]s rewrite them,
//! [`sinks::Sink`] writes them, and [`pipeline::run`] drives the three. Commands in
//! [`commands`] assemble a pipeline from the command line ([`cli`]).

pub mod cli;
pub mod codec;
pub mod commands;
pub mod connection;
pub mod control;
pub mod display;
pub mod encoding;
pub mod error;
pub mod filter;
pub mod observe;
pub mod output_file;
pub mod pipeline;
pub mod policy;
pub mod progress;
pub mod relay;
pub mod server;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod target;
pub mod tls;
pub mod transforms;
pub mod url;
pub mod verify;

pub use error::Error;

use cli::{Cli, Command};
use std::io::Write;

/// Runs a parsed command line; reports go to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Command::Inspect(args) => commands::inspect::run(args, out),
        Command::Convert(args) => commands::convert::run(args, out),
        Command::Assess(args) => commands::assess::run(args, out),
        Command::Verify(args) => commands::verify::run(args, out),
        Command::Migrate(args) => commands::migrate::run(args, out),
        Command::Relay(args) => commands::relay::run(args, out),
        Command::Cutover(args) => commands::cutover::run(args, out),
        Command::Rollback(args) => commands::rollback::run(args, out),
        Command::Generate(args) => commands::generate::run(args, out),
        Command::Fleet(args) => commands::fleet::run(args, out),
    }?;
    out.flush().map_err(Error::Stdout)
}
