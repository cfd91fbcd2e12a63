//! Type bytes and opcodes of the RDB format, named after Redis's `RDB_TYPE_*` and
//! `RDB_OPCODE_*`. A key's type byte is [`KeyHeader::encoding`](crate::KeyHeader::encoding);
//! which of them a [`Format`](crate::Format) writes depends on its version.

/// String: plain, as an integer, or LZF-compressed.
pub const STRING: u8 = 0;
/// List as a plain element sequence (files from before quicklists).
pub const LIST: u8 = 1;
/// Set as a plain member sequence.
pub const SET: u8 = 2;
/// Sorted set with its scores as ASCII text (old files).
pub const ZSET: u8 = 3;
/// Hash as a plain field and value sequence.
pub const HASH: u8 = 4;
/// Sorted set with binary double scores.
pub const ZSET_2: u8 = 5;
/// Module value in the Redis 4.0 release-candidate format; not read.
pub const MODULE_PRE_GA: u8 = 6;
/// Module value: the module id, then the module's typed opcode stream.
pub const MODULE_2: u8 = 7;
/// Hash as a zipmap (files from before Redis 2.6).
pub const HASH_ZIPMAP: u8 = 9;
/// List as one ziplist (files from before quicklists).
pub const LIST_ZIPLIST: u8 = 10;
/// Set of integers as an intset.
pub const SET_INTSET: u8 = 11;
/// Sorted set as a ziplist (before RDB 10).
pub const ZSET_ZIPLIST: u8 = 12;
/// Hash as a ziplist (before RDB 10).
pub const HASH_ZIPLIST: u8 = 13;
/// List as a quicklist of ziplists (before RDB 10).
pub const LIST_QUICKLIST: u8 = 14;
/// Stream, first layout (before RDB 10).
pub const STREAM_LISTPACKS: u8 = 15;
/// Hash as a listpack (RDB 10+).
pub const HASH_LISTPACK: u8 = 16;
/// Sorted set as a listpack (RDB 10+).
pub const ZSET_LISTPACK: u8 = 17;
/// List as a quicklist of listpacks, with plain nodes for large elements (RDB 10+).
pub const LIST_QUICKLIST_2: u8 = 18;
/// Stream, adding deletion counters and groups' entries read (RDB 10).
pub const STREAM_LISTPACKS_2: u8 = 19;
/// Set as a listpack (RDB 11+).
pub const SET_LISTPACK: u8 = 20;
/// Stream, adding consumers' active time (RDB 11+).
pub const STREAM_LISTPACKS_3: u8 = 21;
/// Redis 7.4 release candidates: hash with field TTLs, no leading min-expire.
pub const REDIS_HASH_METADATA_PRE_GA: u8 = 22;
/// Redis 7.4 release candidates: hash with field TTLs as a listpack.
pub const REDIS_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
/// Redis 7.4+: hash with field TTLs (hashtable form).
pub const REDIS_HASH_METADATA: u8 = 24;
/// Redis 7.4+: hash with field TTLs (listpack form).
pub const REDIS_HASH_LISTPACK_EX: u8 = 25;
/// Valkey 9.0+ (`VALKEY` magic): hash whose fields may carry TTLs.
pub const VALKEY_HASH_2: u8 = 22;

/// Valkey (`VALKEY` magic): an in-flight slot migration; the decoder skips it.
pub const OP_SLOT_IMPORT: u8 = 243;
/// Key counts of one cluster slot (RDB 12).
pub const OP_SLOT_INFO: u8 = 244;
/// A function library (RDB 10+).
pub const OP_FUNCTION2: u8 = 245;
/// A function library in the Redis 7.0 release-candidate format; not read.
pub const OP_FUNCTION_PRE_GA: u8 = 246;
/// A module's global data.
pub const OP_MODULE_AUX: u8 = 247;
/// The next key's LRU idle time in seconds.
pub const OP_IDLE: u8 = 248;
/// The next key's LFU counter.
pub const OP_FREQ: u8 = 249;
/// A metadata field (`redis-ver`, `ctime`, ...).
pub const OP_AUX: u8 = 250;
/// A sizing hint for the current database.
pub const OP_RESIZEDB: u8 = 251;
/// The next key's expiry in Unix milliseconds.
pub const OP_EXPIRETIME_MS: u8 = 252;
/// The next key's expiry in Unix seconds (old files).
pub const OP_EXPIRETIME: u8 = 253;
/// The keys that follow are in another database.
pub const OP_SELECTDB: u8 = 254;
/// End of the records; from version 5 on, the CRC64 follows.
pub const OP_EOF: u8 = 255;

/// Module value sub-opcodes (`MODULE_2` bodies and module AUX): every value a module
/// writes is one of these followed by the value. This one ends the stream.
pub const MODULE_OP_EOF: u64 = 0;
/// A signed integer follows, in the length encoding.
pub const MODULE_OP_SINT: u64 = 1;
/// An unsigned integer follows, in the length encoding.
pub const MODULE_OP_UINT: u64 = 2;
/// A 4-byte float follows.
pub const MODULE_OP_FLOAT: u64 = 3;
/// An 8-byte double follows.
pub const MODULE_OP_DOUBLE: u64 = 4;
/// A string follows.
pub const MODULE_OP_STRING: u64 = 5;
