//! Strings in every RDB string form, and keys that are hard to print.

use anyhow::Result;
use redis::Connection;

use super::{expire_far, send};
use crate::rng::Rng;

pub(super) fn strings(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    // Integer-encodable strings (int8/int16/int32, and ones too long for the int forms).
    let integers: [(&str, &str); 9] = [
        ("str:int:zero", "0"),
        ("str:int:small", "42"),
        ("str:int:negative", "-12345"),
        ("str:int:i16", "30000"),
        ("str:int:i32", "-2000000000"),
        ("str:int:i64max", "9223372036854775807"),
        ("str:int:i64min", "-9223372036854775808"),
        ("str:notint:leading-zero", "007"),
        ("str:notint:plus", "+5"),
    ];
    for (key, value) in integers {
        pipe.cmd("SET").arg(key).arg(value).ignore();
    }
    pipe.cmd("SET").arg("str:float").arg("3.14159").ignore();
    pipe.cmd("SET").arg("str:empty").arg("").ignore();
    // Over 20 bytes and repetitive: stored LZF-compressed.
    let sentence = "The quick brown fox jumps over the lazy dog. ".repeat(20);
    pipe.cmd("SET")
        .arg("str:text:compressible")
        .arg(sentence)
        .ignore();
    pipe.cmd("SET")
        .arg("str:text:21")
        .arg("a".repeat(21))
        .ignore();
    // Random bytes, with NUL and CRLF guaranteed.
    let mut binary = rng.bytes(512);
    binary.extend_from_slice(b"\0\r\n\0\xff\r\n");
    pipe.cmd("SET").arg("str:binary").arg(binary).ignore();
    pipe.cmd("SET")
        .arg("str:incompressible")
        .arg(rng.bytes(4096))
        .ignore();
    // 2 MB from a small alphabet: compressible, but far over any single-buffer size.
    let big = rng.text(2 * 1024 * 1024, b"abcdefghijklmnop");
    pipe.cmd("SET").arg("str:2mb").arg(big).ignore();
    for i in 0..300u64 {
        let key = format!("str:many:{i}");
        if i % 3 == 0 {
            pipe.cmd("SET").arg(key).arg(rng.below(1_000_000)).ignore();
        } else {
            let len = 1 + rng.below(80) as usize;
            pipe.cmd("SET")
                .arg(key)
                .arg(rng.text(len, b"xyz0123 "))
                .ignore();
        }
    }
    pipe.cmd("SET").arg("ttl:string").arg("expires").ignore();
    expire_far(&mut pipe, "ttl:string", 1);
    pipe.cmd("SET").arg("ttl:string:int").arg(123).ignore();
    expire_far(&mut pipe, "ttl:string:int", 2);
    send(con, &pipe, "strings")
}

/// Keys that are binary, empty, unicode, or contain separators.
pub(super) fn odd_keys(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    let keys: [&[u8]; 6] = [
        b"\x00\xff",
        b"",
        "ключ🔑".as_bytes(),
        b"key with spaces",
        b"key\r\nwith\r\ncrlf",
        b"\x00",
    ];
    for (i, key) in keys.iter().enumerate() {
        pipe.cmd("SET")
            .arg(*key)
            .arg(format!("odd key {i}"))
            .ignore();
    }
    pipe.cmd("SET")
        .arg(rng.text(1000, b"k"))
        .arg("long key")
        .ignore();
    pipe.cmd("RPUSH")
        .arg(b"\xfe\xfflist")
        .arg(b"\x00")
        .arg(b"")
        .ignore();
    send(con, &pipe, "odd keys")
}

/// A few keys of the common types, so databases other than 0 are not trivial.
pub(super) fn small_database(con: &mut Connection, rng: &mut Rng, prefix: &str) -> Result<()> {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(format!("{prefix}:string"))
        .arg(rng.text(40, b"ab"))
        .ignore();
    pipe.cmd("SET")
        .arg(format!("{prefix}:int"))
        .arg(77)
        .ignore();
    pipe.cmd("RPUSH")
        .arg(format!("{prefix}:list"))
        .arg(&["a", "b", "c", "12"])
        .ignore();
    pipe.cmd("SADD")
        .arg(format!("{prefix}:set"))
        .arg(&[1, 2, 3])
        .ignore();
    pipe.cmd("ZADD")
        .arg(format!("{prefix}:zset"))
        .arg(&["1.5", "m1", "-3", "m2"])
        .ignore();
    pipe.cmd("HSET")
        .arg(format!("{prefix}:hash"))
        .arg(&["f", "v", "n", "1"])
        .ignore();
    let ttl_key = format!("ttl:{prefix}:string");
    pipe.cmd("SET").arg(&ttl_key).arg("expiring").ignore();
    expire_far(&mut pipe, &ttl_key, 3);
    send(con, &pipe, &format!("{prefix} keys"))
}
