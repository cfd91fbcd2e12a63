//! Plain commands for a value: the fallback for keys too big for one RESTORE payload and
//! for targets that refuse RESTORE. Each part becomes one command (the decoder bounds a
//! part's size), so memory stays bounded whatever the key's size.

use super::pipe::Batch;
use bytes::Bytes;
use ferry_codec::{KeyHeader, Kind, ValuePart};

/// Whether a kind can be written with plain commands. Streams (consumer groups, PEL, IDs)
/// and module values cannot: they always go through RESTORE.
pub fn supports(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::String | Kind::List | Kind::Set | Kind::SortedSet | Kind::Hash
    )
}

/// `DEL key`: a plain rewrite starts from nothing.
pub fn start(header: &KeyHeader, batch: &mut Batch) {
    batch.push(&[b"DEL".as_slice(), &header.key]);
}

/// The command(s) that add one part to the key. Returns `false` for a part plain commands
/// cannot express (stream and module parts).
pub fn part(header: &KeyHeader, part: &ValuePart, batch: &mut Batch) -> bool {
    let key = &header.key;
    match part {
        ValuePart::String(value) => batch.push(&[b"SET".as_slice(), key, value]),
        ValuePart::ListElements(elements) => push_all(batch, b"RPUSH", key, elements),
        ValuePart::SetMembers(members) => push_all(batch, b"SADD", key, members),
        ValuePart::SortedSetMembers(members) => {
            if members.is_empty() {
                return true;
            }
            let mut args: Vec<Bytes> = Vec::with_capacity(2 + members.len() * 2);
            args.push(Bytes::from_static(b"ZADD"));
            args.push(key.clone());
            for member in members {
                args.push(Bytes::from(format_score(member.score)));
                args.push(member.member.clone());
            }
            batch.push(&args);
        }
        ValuePart::HashFields(fields) => {
            if fields.is_empty() {
                return true;
            }
            let mut args: Vec<Bytes> = Vec::with_capacity(2 + fields.len() * 2);
            args.push(Bytes::from_static(b"HSET"));
            args.push(key.clone());
            for field in fields {
                args.push(field.field.clone());
                args.push(field.value.clone());
            }
            batch.push(&args);
            for field in fields {
                if let Some(at) = field.expire_at_ms {
                    let at = at.to_string();
                    batch.push(&[
                        b"HPEXPIREAT".as_slice(),
                        key,
                        at.as_bytes(),
                        b"FIELDS",
                        b"1",
                        &field.field,
                    ]);
                }
            }
        }
        ValuePart::StreamNode { .. }
        | ValuePart::StreamMeta(_)
        | ValuePart::StreamGroup(_)
        | ValuePart::Module(_) => return false,
    }
    true
}

/// `PEXPIREAT key ms` once the value is complete.
pub fn finish(header: &KeyHeader, batch: &mut Batch) {
    if let Some(at) = header.expire_at_ms {
        let at = at.to_string();
        batch.push(&[b"PEXPIREAT".as_slice(), &header.key, at.as_bytes()]);
    }
}

fn push_all(batch: &mut Batch, command: &'static [u8], key: &Bytes, items: &[Bytes]) {
    if items.is_empty() {
        return;
    }
    let mut args: Vec<&[u8]> = Vec::with_capacity(2 + items.len());
    args.push(command);
    args.push(key);
    args.extend(items.iter().map(|i| i.as_ref()));
    batch.push(&args);
}

/// A score as ZADD reads it back to the same double: Rust prints the shortest text that
/// round-trips; infinities as `inf`/`-inf`, which the server's parser takes.
pub fn format_score(score: f64) -> String {
    if score.is_infinite() {
        if score > 0.0 { "+inf" } else { "-inf" }.to_owned()
    } else {
        format!("{score}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_codec::{HashField, ScoredMember};

    fn header(kind: Kind) -> KeyHeader {
        KeyHeader {
            db: 0,
            key: Bytes::from_static(b"k"),
            expire_at_ms: Some(4_102_444_800_000),
            idle_secs: None,
            freq: None,
            kind,
            encoding: 0,
            len: None,
        }
    }

    fn text(batch: &Batch) -> String {
        String::from_utf8_lossy(&batch.payload).replace("\r\n", " ")
    }

    #[test]
    fn scores_round_trip_through_text() {
        for score in [0.1, -2.5e-300, 1e308, 3.0, f64::MIN_POSITIVE] {
            assert_eq!(format_score(score).parse::<f64>().unwrap(), score);
        }
        assert_eq!(format_score(f64::INFINITY), "+inf");
        assert_eq!(format_score(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn a_hash_part_sets_fields_then_their_ttls() {
        let h = header(Kind::Hash);
        let mut batch = Batch::default();
        let fields = vec![
            HashField {
                field: "a".into(),
                value: "1".into(),
                expire_at_ms: Some(5000),
            },
            HashField {
                field: "b".into(),
                value: "2".into(),
                expire_at_ms: None,
            },
        ];
        assert!(part(&h, &ValuePart::HashFields(fields), &mut batch));
        finish(&h, &mut batch);
        assert_eq!(
            text(&batch),
            "*6 $4 HSET $1 k $1 a $1 1 $1 b $1 2 \
             *6 $10 HPEXPIREAT $1 k $4 5000 $6 FIELDS $1 1 $1 a \
             *3 $9 PEXPIREAT $1 k $13 4102444800000 "
        );
        assert_eq!(batch.replies, 3);
    }

    #[test]
    fn sorted_sets_and_refusals() {
        let h = header(Kind::SortedSet);
        let mut batch = Batch::default();
        let members = vec![ScoredMember {
            member: "m".into(),
            score: 1.5,
        }];
        assert!(part(&h, &ValuePart::SortedSetMembers(members), &mut batch));
        assert_eq!(text(&batch), "*4 $4 ZADD $1 k $3 1.5 $1 m ");
        assert!(!part(&h, &ValuePart::Module("x".into()), &mut batch));
        assert!(!supports(Kind::Stream));
    }
}
