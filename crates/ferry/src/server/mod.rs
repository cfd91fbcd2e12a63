//! Talking to a Redis or Valkey server, for every command: ferry's own connections
//! ([`client`], with TLS and AUTH), what a server is and can do ([`probe`]), a cluster's
//! slots, primaries and shards ([`cluster`]), the primary a group of sentinels names
//! ([`sentinel`]), and the two loops every long-running command
//! shares: retrying a lost source within one window ([`reconnect`]) and waiting for the
//! operator's Ctrl-C or SIGTERM ([`shutdown`]).

pub mod client;
pub mod cluster;
mod halves;
pub mod probe;
pub mod reconnect;
pub mod sentinel;
pub mod shutdown;
