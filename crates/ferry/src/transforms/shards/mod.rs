//! The rules for a cluster source's shard streams, in front of each shard's command
//! translator: keys resharded between shards by MIGRATE ([`moves`]) and by Valkey 9's
//! atomic slot migration ([`imports`]) are paired across the shards' streams, so that an
//! origin's older writes and DELs never overwrite what the new owner restored. Keys that
//! come into a worker's share from another worker's are noted for waiting ([`share`]).

pub mod imports;
pub mod moves;
pub mod share;
