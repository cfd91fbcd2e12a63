//! Where a replicated command keeps its keys, for the commands a primary propagates.
//! A command missing here has no known key positions: under a scope it is refused, never
//! guessed.

/// How a command's arguments name keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// No key (functions, scripts cache, pub/sub).
    None,
    /// The argument at this index.
    One(usize),
    /// Every argument from index 1 on (DEL, UNLINK, ...): may be split.
    All,
    /// Key/value pairs from index 1 on (MSET): may be split.
    Pairs,
    /// Every argument from index 1 but the last (BLPOP key... timeout): one fate for all.
    AllButLast,
    /// A count at this index, then that many keys (EVAL, LMPOP, ...): one fate for all.
    Counted(usize),
    /// `source → destination`: (source index, destination index).
    Move(usize, usize),
    /// A destination at this index, read from keys after it (SUNIONSTORE dest k...).
    StoreRest(usize),
    /// ZUNIONSTORE dest numkeys k...: destination 1, count 2.
    StoreCounted,
    /// A destination after the word STORE (or STOREDIST), the source at 1.
    StoreOption,
    /// SMOVE, LMOVE, RPOPLPUSH, COPY, RENAME, MOVE, SWAPDB, FLUSHDB, FLUSHALL: their own
    /// rules (`commands.rs`).
    Special,
}

const SINGLE: &[&str] = &[
    // strings
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "APPEND",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "SETRANGE",
    "SETBIT",
    "BITFIELD",
    "GET",
    "STRLEN",
    "GETRANGE",
    "SUBSTR",
    // any type
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "PERSIST",
    "RESTORE",
    "RESTORE-ASKING",
    // lists
    "LPUSH",
    "RPUSH",
    "LPUSHX",
    "RPUSHX",
    "LPOP",
    "RPOP",
    "LSET",
    "LINSERT",
    "LREM",
    "LTRIM",
    // sets
    "SADD",
    "SREM",
    "SPOP",
    // sorted sets
    "ZADD",
    "ZINCRBY",
    "ZREM",
    "ZREMRANGEBYSCORE",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYLEX",
    "ZPOPMIN",
    "ZPOPMAX",
    // hashes
    "HSET",
    "HSETNX",
    "HMSET",
    "HDEL",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HSETEX",
    "HEXPIRE",
    "HPEXPIRE",
    "HEXPIREAT",
    "HPEXPIREAT",
    "HPERSIST",
    "HGETEX",
    "HGETDEL",
    // streams
    "XADD",
    "XDEL",
    "XTRIM",
    "XSETID",
    "XACK",
    "XCLAIM",
    "XAUTOCLAIM",
    // geo, HyperLogLog, vector sets
    "GEOADD",
    "PFADD",
    "VADD",
    "VREM",
    "VSETATTR",
];

const TABLE: &[(&str, Keys)] = &[
    ("PING", Keys::None),
    ("PUBLISH", Keys::None),
    ("FUNCTION", Keys::None),
    ("SCRIPT", Keys::None),
    ("DEL", Keys::All),
    ("UNLINK", Keys::All),
    ("TOUCH", Keys::All),
    ("EXISTS", Keys::All),
    ("PFCOUNT", Keys::All),
    ("MSET", Keys::Pairs),
    ("MSETNX", Keys::Pairs),
    ("BLPOP", Keys::AllButLast),
    ("BRPOP", Keys::AllButLast),
    ("BZPOPMIN", Keys::AllButLast),
    ("BZPOPMAX", Keys::AllButLast),
    ("EVAL", Keys::Counted(2)),
    ("EVALSHA", Keys::Counted(2)),
    ("EVAL_RO", Keys::Counted(2)),
    ("EVALSHA_RO", Keys::Counted(2)),
    ("FCALL", Keys::Counted(2)),
    ("FCALL_RO", Keys::Counted(2)),
    ("LMPOP", Keys::Counted(1)),
    ("ZMPOP", Keys::Counted(1)),
    ("BLMPOP", Keys::Counted(2)),
    ("BZMPOP", Keys::Counted(2)),
    ("XGROUP", Keys::One(2)),
    ("SINTERSTORE", Keys::StoreRest(1)),
    ("SUNIONSTORE", Keys::StoreRest(1)),
    ("SDIFFSTORE", Keys::StoreRest(1)),
    ("PFMERGE", Keys::StoreRest(1)),
    ("BITOP", Keys::StoreRest(2)),
    ("ZUNIONSTORE", Keys::StoreCounted),
    ("ZINTERSTORE", Keys::StoreCounted),
    ("ZDIFFSTORE", Keys::StoreCounted),
    ("ZRANGESTORE", Keys::Move(2, 1)),
    ("GEOSEARCHSTORE", Keys::Move(2, 1)),
    ("SORT", Keys::StoreOption),
    ("GEORADIUS", Keys::StoreOption),
    ("GEORADIUSBYMEMBER", Keys::StoreOption),
    ("SMOVE", Keys::Special),
    ("LMOVE", Keys::Special),
    ("BLMOVE", Keys::Special),
    ("RPOPLPUSH", Keys::Special),
    ("BRPOPLPUSH", Keys::Special),
    ("COPY", Keys::Special),
    ("RENAME", Keys::Special),
    ("RENAMENX", Keys::Special),
    ("MOVE", Keys::Special),
    ("SWAPDB", Keys::Special),
    ("FLUSHDB", Keys::Special),
    ("FLUSHALL", Keys::Special),
];

/// The key positions of command `name` (any case), if ferry knows them.
pub fn keys_of(name: &[u8]) -> Option<Keys> {
    let known = |table_name: &str| name.eq_ignore_ascii_case(table_name.as_bytes());
    if SINGLE.iter().any(|single| known(single)) {
        return Some(Keys::One(1));
    }
    TABLE
        .iter()
        .find(|(table_name, _)| known(table_name))
        .map(|(_, keys)| *keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_commands_and_unknown_ones() {
        assert_eq!(keys_of(b"set"), Some(Keys::One(1)));
        assert_eq!(keys_of(b"Del"), Some(Keys::All));
        assert_eq!(keys_of(b"EVALSHA"), Some(Keys::Counted(2)));
        assert_eq!(keys_of(b"JSON.SET"), None);
    }
}
