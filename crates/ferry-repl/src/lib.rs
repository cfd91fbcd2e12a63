//! ferry's own implementation of the Redis/Valkey replication protocol, replica side.
//!
//! The snapshot bytes are handed on untouched; parsing them is the codec's job.

pub mod error;
pub mod resp;
pub mod secret;

pub use error::ReplError;
pub use secret::Secret;
