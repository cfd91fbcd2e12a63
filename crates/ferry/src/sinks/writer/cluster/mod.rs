//! Writing into a cluster target: each command to the primary serving its key's slot,
//! over one pipelined connection per primary ([`ClusterPipe`]).

pub mod route;
pub mod slot;
pub mod split;
pub mod topology;
