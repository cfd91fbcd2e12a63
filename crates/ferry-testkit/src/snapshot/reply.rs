//! Reading RESP2 (and, where a server answers so, RESP3) replies into plain Rust values.

use std::fmt;

use anyhow::{bail, Context, Result};
use redis::Value;

pub fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Double(d) => Some(d.to_string().into_bytes()),
        _ => None,
    }
}

pub fn text(value: &Value) -> Option<String> {
    bytes(value).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

pub fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Double(d) => Some(*d),
        other => text(other)?.parse().ok(),
    }
}

pub fn array(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// A flat `[name, value, name, value, …]` array (or a RESP3 map) as pairs.
pub fn fields(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        other => {
            let items = array(other)?;
            items
                .chunks(2)
                .map(|pair| match pair {
                    [k, v] => Some((text(k)?, v)),
                    _ => None,
                })
                .collect()
        }
    }
}

pub fn field<'a>(pairs: &'a [(String, &'a Value)], name: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// A stream ID, `ms-seq`; ordered as the server orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(text: &str) -> Result<StreamId> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Ok(StreamId {
            ms: ms
                .parse()
                .with_context(|| format!("bad stream ID {text:?}"))?,
            seq: seq
                .parse()
                .with_context(|| format!("bad stream ID {text:?}"))?,
        })
    }

    pub fn from_value(value: &Value) -> Result<StreamId> {
        match text(value) {
            Some(t) => StreamId::parse(&t),
            None => bail!("expected a stream ID, got {value:?}"),
        }
    }

    /// The smallest ID after this one (servers before 6.2 have no exclusive ranges).
    pub fn successor(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| StreamId { ms, seq: 0 }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}
