//! Reading the `... FIELDS numfields item ...` commands of the hash field TTL family.
//!
//! The source validated every command before propagating it, so a command that does not
//! parse here means a stream we do not understand: it is an error, never a guess.

use bytes::Bytes;

/// Why a propagated command could not be read.
pub(super) type Malformed = &'static str;

/// Where the parts of a field command are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldsCommand {
    /// Index of the option that sets a TTL (`EX`, `PX`, `EXAT`, `PXAT`), if any; its
    /// value follows it.
    pub ttl_option: Option<usize>,
    /// Whether `KEEPTTL` was given (HSETEX).
    pub keep_ttl: bool,
    /// Whether `PERSIST` was given (HGETEX).
    pub persist: bool,
    /// Index of the first field; items run to the end of the command.
    pub items_at: usize,
    /// Number of fields (`numfields`).
    pub count: usize,
}

/// What follows each field in the item list: nothing (`HPERSIST`) or a value (`HSETEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Items {
    Fields,
    FieldValuePairs,
}

impl Items {
    fn width(self) -> usize {
        match self {
            Items::Fields => 1,
            Items::FieldValuePairs => 2,
        }
    }
}

/// Parses `args[options_at..]` as `[option ...] FIELDS numfields item ...`.
///
/// Options: `EX|PX|EXAT|PXAT value`, `KEEPTTL`, `PERSIST`, and the conditions `NX`, `XX`,
/// `GT`, `LT`, `FNX`, `FXX` (each command only ever carries the ones it accepts; the source
/// checked that).
pub(super) fn parse(
    args: &[Bytes],
    options_at: usize,
    items: Items,
) -> Result<FieldsCommand, Malformed> {
    let mut parsed = FieldsCommand {
        ttl_option: None,
        keep_ttl: false,
        persist: false,
        items_at: 0,
        count: 0,
    };
    let mut at = options_at;
    while let Some(token) = args.get(at) {
        let token = token.as_ref();
        if token.eq_ignore_ascii_case(b"FIELDS") {
            let count = args
                .get(at + 1)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or("numfields is not a number")?;
            let items_at = at + 2;
            let given = args.len() - items_at.min(args.len());
            if count == 0 || count.checked_mul(items.width()) != Some(given) {
                return Err("numfields does not match the fields given");
            }
            parsed.items_at = items_at;
            parsed.count = count;
            return Ok(parsed);
        }
        if is_any(token, &[b"EX", b"PX", b"EXAT", b"PXAT"]) {
            if args.get(at + 1).is_none() {
                return Err("a TTL option has no value");
            }
            parsed.ttl_option = Some(at);
            at += 2;
            continue;
        }
        if token.eq_ignore_ascii_case(b"KEEPTTL") {
            parsed.keep_ttl = true;
        } else if token.eq_ignore_ascii_case(b"PERSIST") {
            parsed.persist = true;
        } else if !is_any(token, &[b"NX", b"XX", b"GT", b"LT", b"FNX", b"FXX"]) {
            return Err("unknown option before FIELDS");
        }
        at += 1;
    }
    Err("no FIELDS")
}

fn is_any(token: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|name| token.eq_ignore_ascii_case(name))
}

impl FieldsCommand {
    /// The field names, whatever follows each of them.
    pub fn fields<'a>(&self, args: &'a [Bytes], items: Items) -> impl Iterator<Item = &'a Bytes> {
        args.get(self.items_at..)
            .unwrap_or_default()
            .iter()
            .step_by(items.width())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<Bytes> {
        text.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn hsetex_options_and_pairs() {
        let cmd = args("HSETEX h FNX PXAT 123 FIELDS 2 a 1 b 2");
        let parsed = parse(&cmd, 2, Items::FieldValuePairs).unwrap();
        assert_eq!(parsed.ttl_option, Some(3));
        assert_eq!((parsed.items_at, parsed.count), (7, 2));
        let fields: Vec<_> = parsed.fields(&cmd, Items::FieldValuePairs).collect();
        assert_eq!(fields, ["a", "b"]);
    }

    #[test]
    fn a_value_named_like_an_option_is_still_a_value() {
        let cmd = args("HSETEX h fields 1 PXAT FIELDS");
        let parsed = parse(&cmd, 2, Items::FieldValuePairs).unwrap();
        assert_eq!(parsed.ttl_option, None);
        let fields: Vec<_> = parsed.fields(&cmd, Items::FieldValuePairs).collect();
        assert_eq!(fields, ["PXAT"]);
    }

    #[test]
    fn keepttl_persist_and_conditions_are_read() {
        let cmd = args("HSETEX h KEEPTTL FIELDS 1 a 1");
        assert!(parse(&cmd, 2, Items::FieldValuePairs).unwrap().keep_ttl);
        let cmd = args("HGETEX h PERSIST FIELDS 1 a");
        assert!(parse(&cmd, 2, Items::Fields).unwrap().persist);
        let cmd = args("HPEXPIREAT h 5 GT FIELDS 1 a");
        assert_eq!(parse(&cmd, 3, Items::Fields).unwrap().items_at, 6);
    }

    #[test]
    fn counts_that_do_not_match_are_refused() {
        for (text, items) in [
            ("HSETEX h FIELDS 2 a 1", Items::FieldValuePairs),
            ("HSETEX h FIELDS 1 a", Items::FieldValuePairs),
            ("HPERSIST h FIELDS 0", Items::Fields),
            ("HPERSIST h FIELDS x a", Items::Fields),
            ("HPERSIST h FIELDS", Items::Fields),
            ("HPERSIST h a b", Items::Fields),
            ("HSETEX h EX", Items::FieldValuePairs),
            ("HSETEX h BOGUS FIELDS 1 a 1", Items::FieldValuePairs),
        ] {
            assert!(parse(&args(text), 2, items).is_err(), "{text}");
        }
    }
}
