//! Type bytes and opcodes of the RDB format.

pub const STRING: u8 = 0;
pub const LIST: u8 = 1;
pub const SET: u8 = 2;
pub const ZSET: u8 = 3;
pub const HASH: u8 = 4;
pub const ZSET_2: u8 = 5;
pub const MODULE_PRE_GA: u8 = 6;
pub const MODULE_2: u8 = 7;
pub const HASH_ZIPMAP: u8 = 9;
pub const LIST_ZIPLIST: u8 = 10;
pub const SET_INTSET: u8 = 11;
pub const ZSET_ZIPLIST: u8 = 12;
pub const HASH_ZIPLIST: u8 = 13;
pub const LIST_QUICKLIST: u8 = 14;
pub const STREAM_LISTPACKS: u8 = 15;
pub const HASH_LISTPACK: u8 = 16;
pub const ZSET_LISTPACK: u8 = 17;
pub const LIST_QUICKLIST_2: u8 = 18;
pub const STREAM_LISTPACKS_2: u8 = 19;
pub const SET_LISTPACK: u8 = 20;
pub const STREAM_LISTPACKS_3: u8 = 21;
/// Redis 7.4 release candidates: hash with field TTLs, no leading min-expire.
pub const REDIS_HASH_METADATA_PRE_GA: u8 = 22;
pub const REDIS_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
/// Redis 7.4+: hash with field TTLs (hashtable form).
pub const REDIS_HASH_METADATA: u8 = 24;
/// Redis 7.4+: hash with field TTLs (listpack form).
pub const REDIS_HASH_LISTPACK_EX: u8 = 25;
/// Valkey 9.0+ (`VALKEY` magic): hash whose fields may carry TTLs.
pub const VALKEY_HASH_2: u8 = 22;

pub const OP_SLOT_IMPORT: u8 = 243;
pub const OP_SLOT_INFO: u8 = 244;
pub const OP_FUNCTION2: u8 = 245;
pub const OP_FUNCTION_PRE_GA: u8 = 246;
pub const OP_MODULE_AUX: u8 = 247;
pub const OP_IDLE: u8 = 248;
pub const OP_FREQ: u8 = 249;
pub const OP_AUX: u8 = 250;
pub const OP_RESIZEDB: u8 = 251;
pub const OP_EXPIRETIME_MS: u8 = 252;
pub const OP_EXPIRETIME: u8 = 253;
pub const OP_SELECTDB: u8 = 254;
pub const OP_EOF: u8 = 255;

/// Module value sub-opcodes (`MODULE_2` bodies and module AUX).
pub const MODULE_OP_EOF: u64 = 0;
pub const MODULE_OP_SINT: u64 = 1;
pub const MODULE_OP_UINT: u64 = 2;
pub const MODULE_OP_FLOAT: u64 = 3;
pub const MODULE_OP_DOUBLE: u64 = 4;
pub const MODULE_OP_STRING: u64 = 5;
