//! What only newer servers have: functions (7.0+), hash field TTLs (Redis 8.0, Valkey 9)
//! and vector sets (Redis 8.0).

use anyhow::{Context, Result};
use redis::Connection;

use super::{expire_far, send, FAR_FUTURE_MS};
use crate::rng::Rng;

pub const FUNCTION_LIBRARY: &str = "#!lua name=ferrylib
local function echo(keys, args)
  return args[1]
end
redis.register_function('ferry_echo', echo)
redis.register_function{
  function_name = 'ferry_count',
  callback = function(keys, args) return #args end,
  flags = {'no-writes'},
}
";

const SECOND_LIBRARY: &str = "#!lua name=ferrylib_other
redis.register_function('ferry_other', function(keys, args) return 'other' end)
";

pub(super) fn functions(con: &mut Connection) -> Result<()> {
    for code in [FUNCTION_LIBRARY, SECOND_LIBRARY] {
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(code)
            .query::<()>(con)
            .context("dataset: FUNCTION LOAD failed")?;
    }
    Ok(())
}

/// A distinct, millisecond-precise far-future time for field `n`.
fn field_time(n: u64) -> i64 {
    FAR_FUTURE_MS + 3_600_011 * n as i64 + 1
}

pub(super) fn hash_field_ttls(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    // Small: listpack with TTLs (Redis "listpackex"); some fields without TTL.
    pipe.cmd("HSET")
        .arg("hash:fttl:small")
        .arg(&["a", "1", "b", "two", "c", "3", "d", "", "e", "five"])
        .ignore();
    pipe.cmd("HPEXPIREAT")
        .arg("hash:fttl:small")
        .arg(field_time(1))
        .arg("FIELDS")
        .arg(2)
        .arg("a")
        .arg("c")
        .ignore();
    pipe.cmd("HSETEX")
        .arg("hash:fttl:small")
        .arg("PXAT")
        .arg(field_time(2))
        .arg("FIELDS")
        .arg(1)
        .arg("f")
        .arg("set with ttl")
        .ignore();

    // Large: a hashtable with TTL metadata; every third field expires, each at its own time.
    // 300 fields fit the default listpack limit (512); values over 64 bytes do not.
    let mut fields = redis::cmd("HSET");
    fields.arg("hash:fttl:big");
    for i in 0..300 {
        let len = if i % 10 == 0 {
            100
        } else {
            1 + rng.below(40) as usize
        };
        fields
            .arg(format!("f{i}"))
            .arg(rng.text(len, b"fieldvalue"));
    }
    pipe.add_command(fields).ignore();
    for i in (0..300u64).step_by(3) {
        pipe.cmd("HPEXPIREAT")
            .arg("hash:fttl:big")
            .arg(field_time(10 + i))
            .arg("FIELDS")
            .arg(1)
            .arg(format!("f{i}"))
            .ignore();
    }

    // Key TTL and field TTLs together.
    pipe.cmd("HSETEX")
        .arg("ttl:hash:fttl")
        .arg("PXAT")
        .arg(field_time(3))
        .arg("FIELDS")
        .arg(2)
        .arg("x")
        .arg("1")
        .arg("y")
        .arg("2")
        .ignore();
    pipe.cmd("HSET")
        .arg("ttl:hash:fttl")
        .arg("z")
        .arg("no ttl")
        .ignore();
    expire_far(&mut pipe, "ttl:hash:fttl", 10);
    send(con, &pipe, "hash field TTLs")
}

struct VectorSetSpec {
    key: &'static str,
    elements: usize,
    dim: usize,
    /// Options after the element name (quantization, M).
    options: &'static [&'static str],
    /// Projection to this many dimensions (REDUCE), if any.
    reduce: Option<usize>,
}

const VECTOR_SETS: [VectorSetSpec; 5] = [
    VectorSetSpec {
        key: "vset:q8",
        elements: 200,
        dim: 16,
        options: &[],
        reduce: None,
    },
    VectorSetSpec {
        key: "vset:noquant",
        elements: 100,
        dim: 8,
        options: &["NOQUANT"],
        reduce: None,
    },
    VectorSetSpec {
        key: "vset:bin",
        elements: 100,
        dim: 64,
        options: &["BIN"],
        reduce: None,
    },
    VectorSetSpec {
        key: "vset:reduce",
        elements: 50,
        dim: 32,
        options: &[],
        reduce: Some(8),
    },
    VectorSetSpec {
        key: "ttl:vset",
        elements: 20,
        dim: 4,
        options: &["M", "8"],
        reduce: None,
    },
];

pub(super) fn vector_sets(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    for spec in &VECTOR_SETS {
        for i in 0..spec.elements {
            let mut vadd = redis::cmd("VADD");
            vadd.arg(spec.key);
            if let Some(dim) = spec.reduce {
                vadd.arg("REDUCE").arg(dim);
            }
            vadd.arg("VALUES").arg(spec.dim);
            for _ in 0..spec.dim {
                vadd.arg(rng.unit());
            }
            vadd.arg(format!("e{i}")).arg(spec.options);
            if i % 5 == 0 {
                vadd.arg("SETATTR")
                    .arg(format!(r#"{{"i":{i},"tag":"t{}"}}"#, i % 3));
            }
            pipe.add_command(vadd).ignore();
        }
    }
    expire_far(&mut pipe, "ttl:vset", 11);
    send(con, &pipe, "vector sets")
}
