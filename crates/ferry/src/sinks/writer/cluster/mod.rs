//! Writing into a cluster target: each command to the primary serving its key's slot,
//! over one pipelined connection per primary ([`ClusterPipe`]). The slot map itself is
//! the server layer's ([`crate::server::cluster`]).

mod pipe;
pub mod route;
pub mod split;

pub use pipe::ClusterPipe;
