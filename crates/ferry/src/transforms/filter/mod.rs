//! The run's [`Scope`](crate::filter::Scope) applied to what moves: the snapshot's items
//! ([`items::ScopeTransform`]) and the replicated commands
//! ([`commands::ScopedCommands`], in front of the command translator).

pub mod commands;
pub mod items;
mod keys;
#[cfg(test)]
mod tests;

pub use commands::{ScopeRefusal, ScopedCommands};
pub use items::ScopeTransform;
