//! Sorted sets: listpack (RDB 10+) or ziplist (RDB 9) of member/score pairs, or `ZSET_2`.

use std::fmt::Write as _;

use crate::length::{write_f64_le, write_string};

use super::buffer::Scored;
use super::packer::Packer;

/// How the server stores a score inside a listpack or ziplist: an integer when the double
/// is integral and within ±2^62 (Redis's `double2ll`), else the shortest text that reads
/// back as the same double.
enum PackedScore<'b> {
    Int(i64),
    Text(&'b [u8]),
}

fn packed_score<'b>(score: f64, text: &'b mut String) -> PackedScore<'b> {
    let limit = (i64::MAX / 2) as f64;
    if (-limit..=limit).contains(&score) {
        let truncated = score as i64;
        if truncated as f64 == score {
            return PackedScore::Int(truncated);
        }
    }
    text.clear();
    // Rust's `{}` and `{:e}` both print the shortest round-trip digits; exponent form keeps
    // very large and very small magnitudes short. `strtod` reads both, and "inf"/"-inf".
    let magnitude = score.abs();
    if magnitude.is_finite() && !(1e-5..1e17).contains(&magnitude) {
        let _ = write!(text, "{score:e}");
    } else {
        let _ = write!(text, "{score}");
    }
    PackedScore::Text(text.as_bytes())
}

/// Sorts members the way the server keeps a packed sorted set: by score, then by member
/// bytes. The caller has rejected NaN scores.
pub(super) fn sort_for_packing(members: &mut [Scored<'_>]) {
    members.sort_unstable_by(|a, b| {
        // partial_cmp so that -0 and 0 tie as they do for the server (no NaN gets here).
        a.score
            .partial_cmp(&b.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.member.cmp(b.member))
    });
}

/// Members and scores, in the order the server keeps them, packed.
pub(super) fn write_packed(
    mut packer: Packer,
    sorted: &[Scored<'_>],
    out: &mut Vec<u8>,
    compress: bool,
) {
    let mut text = String::new();
    for entry in sorted {
        packer.push(entry.member);
        match packed_score(entry.score, &mut text) {
            PackedScore::Int(v) => packer.push_int(v),
            PackedScore::Text(t) => packer.push_string(t),
        }
    }
    write_string(out, &packer.finish(), compress);
}

/// One `ZSET_2` element: the member, then its score as a binary double.
pub(super) fn write_plain_member(entry: Scored<'_>, out: &mut Vec<u8>, compress: bool) {
    write_string(out, entry.member, compress);
    write_f64_le(out, entry.score);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(score: f64) -> Result<i64, String> {
        let mut text = String::new();
        match packed_score(score, &mut text) {
            PackedScore::Int(v) => Ok(v),
            PackedScore::Text(t) => Err(String::from_utf8(t.to_vec()).unwrap()),
        }
    }

    #[test]
    fn integral_scores_within_the_servers_range_become_integers() {
        assert_eq!(text_of(3.0), Ok(3));
        assert_eq!(text_of(-0.0), Ok(0));
        assert_eq!(text_of(-4611686018427387904.0), Ok(-4611686018427387904));
        // Just past 2^62 the server keeps the text form.
        assert!(text_of(9223372036854775808.0).is_err());
    }

    #[test]
    fn other_scores_print_as_text_that_parses_back_exactly() {
        for score in [
            0.1,
            -2.5,
            1e300,
            -3.25e-200,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            4.611_686_018_427_388e21,
        ] {
            let text = text_of(score).unwrap_err();
            assert_eq!(text.parse::<f64>().unwrap(), score, "{text}");
            assert!(text.len() < 32, "{text}");
        }
        assert_eq!(text_of(f64::INFINITY), Err("inf".into()));
        assert_eq!(text_of(f64::NEG_INFINITY), Err("-inf".into()));
    }
}
