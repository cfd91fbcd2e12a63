//! The six servers tests run against, and what each of them can do.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    Redis60,
    Redis70,
    Redis80,
    Valkey80,
    Valkey81,
    Valkey91,
}

impl ServerKind {
    const ALL: [ServerKind; 6] = [
        ServerKind::Redis60,
        ServerKind::Redis70,
        ServerKind::Redis80,
        ServerKind::Valkey80,
        ServerKind::Valkey81,
        ServerKind::Valkey91,
    ];

    pub fn all() -> [ServerKind; 6] {
        Self::ALL
    }

    /// The Redis servers data is moved from.
    pub fn redis_sources() -> [ServerKind; 3] {
        [
            ServerKind::Redis60,
            ServerKind::Redis70,
            ServerKind::Redis80,
        ]
    }

    /// The Valkey servers data is moved to.
    pub fn valkey_targets() -> [ServerKind; 3] {
        [
            ServerKind::Valkey80,
            ServerKind::Valkey81,
            ServerKind::Valkey91,
        ]
    }

    /// The name used in build/servers/servers.json, e.g. "redis-8.0".
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Redis60 => "redis-6.0",
            ServerKind::Redis70 => "redis-7.0",
            ServerKind::Redis80 => "redis-8.0",
            ServerKind::Valkey80 => "valkey-8.0",
            ServerKind::Valkey81 => "valkey-8.1",
            ServerKind::Valkey91 => "valkey-9.1",
        }
    }

    pub fn from_name(name: &str) -> Option<ServerKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    pub fn is_valkey(self) -> bool {
        matches!(
            self,
            ServerKind::Valkey80 | ServerKind::Valkey81 | ServerKind::Valkey91
        )
    }

    /// Release series as (major, minor) of the product itself (Valkey 8.0 is (8, 0)).
    pub fn series(self) -> (u32, u32) {
        match self {
            ServerKind::Redis60 => (6, 0),
            ServerKind::Redis70 => (7, 0),
            ServerKind::Redis80 => (8, 0),
            ServerKind::Valkey80 => (8, 0),
            ServerKind::Valkey81 => (8, 1),
            ServerKind::Valkey91 => (9, 1),
        }
    }

    /// Redis 7.0 and every Valkey: `enable-debug-command`, functions, PEXPIRETIME, plain
    /// quicklist nodes, stream metadata (entries-added, max-deleted-id, entries-read).
    pub fn is_redis7_or_later(self) -> bool {
        self != ServerKind::Redis60
    }

    /// Small sets of strings are listpacks (Redis 7.2+, every Valkey).
    pub fn has_set_listpack(self) -> bool {
        self.is_valkey() || self == ServerKind::Redis80
    }

    /// Per-field hash TTLs (HSETEX, HPEXPIRE, HPEXPIRETIME).
    pub fn has_hash_field_ttl(self) -> bool {
        matches!(self, ServerKind::Redis80 | ServerKind::Valkey91)
    }

    /// Vector sets (the built-in `vectorset` module type, V* commands).
    pub fn has_vector_sets(self) -> bool {
        self == ServerKind::Redis80
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
