//! ferry-repl's integration tests, one binary: each module is what used to be a test file
//! of its own (`cargo test -p ferry-repl --test it full_sync::` runs one of them), and
//! `support` is shared by those against real servers.

mod support;

mod auth_and_connect;
mod command_stream;
mod fake_primary;
mod full_sync;
mod resp_props;
mod stream_upgrade;
