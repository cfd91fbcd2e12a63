//! Reading loosely typed replies (XINFO and friends) under RESP2 and RESP3 alike.

use redis::Value;

/// The elements of an array or set reply.
pub fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

pub fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.as_bytes().to_vec()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

pub fn text(value: &Value) -> Option<String> {
    bytes(value).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// A name → value reply: a RESP3 map, or a RESP2 flat array of pairs.
pub fn fields(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(name, value)| Some((text(name)?, value)))
            .collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                [name, value] => Some((text(name)?, value)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

pub fn field<'a>(fields: &[(String, &'a Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}
