//! Names for the source encodings (type bytes), as `inspect` shows them: `hash (listpack_ex)`.

use ferry_codec::types::*;
use ferry_codec::Flavor;

/// The encoding a type byte stands for, named after the server's own `RDB_TYPE_*` constant
/// without its type prefix. Byte 22 and 23 mean different things in Redis and Valkey files.
pub fn encoding_name(flavor: Flavor, type_byte: u8) -> &'static str {
    match (flavor, type_byte) {
        (_, STRING) => "raw",
        (_, LIST) => "linkedlist",
        (_, SET | HASH) => "hashtable",
        (_, ZSET) => "skiplist_v1",
        (_, ZSET_2) => "skiplist",
        (_, MODULE_PRE_GA) => "module_pre_ga",
        (_, MODULE_2) => "module",
        (_, HASH_ZIPMAP) => "zipmap",
        (_, LIST_ZIPLIST | ZSET_ZIPLIST | HASH_ZIPLIST) => "ziplist",
        (_, SET_INTSET) => "intset",
        (_, LIST_QUICKLIST) => "quicklist",
        (_, STREAM_LISTPACKS) => "listpacks",
        (_, HASH_LISTPACK | ZSET_LISTPACK | SET_LISTPACK) => "listpack",
        (_, LIST_QUICKLIST_2) => "quicklist_2",
        (_, STREAM_LISTPACKS_2) => "listpacks_2",
        (_, STREAM_LISTPACKS_3) => "listpacks_3",
        (Flavor::Valkey, VALKEY_HASH_2) => "hash_2",
        (Flavor::Redis, REDIS_HASH_METADATA_PRE_GA) => "metadata_pre_ga",
        (Flavor::Redis, REDIS_HASH_LISTPACK_EX_PRE_GA) => "listpack_ex_pre_ga",
        (Flavor::Redis, REDIS_HASH_METADATA) => "metadata",
        (Flavor::Redis, REDIS_HASH_LISTPACK_EX) => "listpack_ex",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_22_depends_on_who_wrote_the_file() {
        assert_eq!(encoding_name(Flavor::Valkey, 22), "hash_2");
        assert_eq!(encoding_name(Flavor::Redis, 22), "metadata_pre_ga");
        assert_eq!(encoding_name(Flavor::Redis, 25), "listpack_ex");
        assert_eq!(encoding_name(Flavor::Valkey, 25), "unknown");
    }
}
