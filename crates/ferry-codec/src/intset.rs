//! Intset: the sorted integer array Redis uses for small all-integer sets.
//! Layout: u32 LE width in bytes (2, 4 or 8), u32 LE count, then `count` LE integers.

use crate::error::FormatError;

const STRUCTURE: &str = "intset";
const HEADER_LEN: usize = 8;

/// Validates the header (width ∈ {2,4,8}, length == 8 + count × width) and yields the
/// values in stored order.
pub fn iter(buf: &[u8]) -> Result<impl Iterator<Item = i64> + '_, FormatError> {
    let header = buf.get(..HEADER_LEN).ok_or_else(|| {
        FormatError::new(
            STRUCTURE,
            0,
            format!("{} bytes is shorter than the 8-byte header", buf.len()),
        )
    })?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
    if !matches!(width, 2 | 4 | 8) {
        return Err(FormatError::new(
            STRUCTURE,
            0,
            format!("integer width {width} is not 2, 4 or 8"),
        ));
    }
    let body = &buf[HEADER_LEN..];
    if count * width as u64 != body.len() as u64 {
        return Err(FormatError::new(
            STRUCTURE,
            4,
            format!(
                "{count} integers of {width} bytes do not fill the {} bytes present",
                body.len()
            ),
        ));
    }
    Ok(body.chunks_exact(width).map(move |c| match *c {
        [a, b] => i64::from(i16::from_le_bytes([a, b])),
        [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        // chunks_exact only yields `width`-sized chunks, checked above.
        _ => 0,
    }))
}

/// Builds an intset: sorts and removes duplicates, stores at the smallest width that
/// fits every value.
pub fn build(values: &[i64]) -> Vec<u8> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let fits = |lo: i64, hi: i64| match (sorted.first(), sorted.last()) {
        (Some(&first), Some(&last)) => first >= lo && last <= hi,
        _ => true,
    };
    let width: usize = if fits(i16::MIN.into(), i16::MAX.into()) {
        2
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(HEADER_LEN + sorted.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn width_follows_the_widest_value() {
        assert_eq!(build(&[]), vec![2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            build(&[5, -1, 5]),
            vec![2, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 5, 0]
        );
        assert_eq!(build(&[32768])[0], 4);
        assert_eq!(build(&[-32769])[0], 4);
        assert_eq!(build(&[1 << 31])[0], 8);
        assert_eq!(build(&[i64::MIN, 1]).len(), 8 + 16);
    }

    #[test]
    fn bad_headers_are_errors() {
        let mut s = build(&[1, 2, 3]);
        s[0] = 3;
        assert!(iter(&s).is_err());
        let mut s = build(&[1, 2, 3]);
        s[4] = 4;
        assert!(iter(&s).is_err());
        let mut s = build(&[1, 2, 3]);
        s.pop();
        assert!(iter(&s).is_err());
        assert!(iter(&[2, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(
            prop_oneof![any::<i16>().prop_map(i64::from), any::<i32>().prop_map(i64::from), any::<i64>()], 0..50)
        ) {
            let mut want = values.clone();
            want.sort_unstable();
            want.dedup();
            let got: Vec<i64> = iter(&build(&values)).unwrap().collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(it) = iter(&data) {
                for _ in it {}
            }
        }
    }
}
