//! Redis's glob, as `KEYS` and `SCAN MATCH` apply it, on raw key bytes: `*` any run of
//! bytes, `?` one byte, `[abc]` / `[^abc]` / `[a-z]` one byte of a class (a reversed range
//! counts as written the other way round, `\` escapes inside a class), `\x` the byte `x`.
//! A class left open runs to the end of the pattern; `[]` matches nothing, `[^]` any byte;
//! a lone trailing `\` is itself. Written from the behaviour of Redis's `stringmatchlen`
//! (util.c); `tests/it/filters_glob.rs` holds it against a real server's `KEYS`.

/// One pattern, split into the steps that each take exactly one byte, and stars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Byte(u8),
    Class { negated: bool, members: Vec<Member> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Byte(u8),
    Range(u8, u8),
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self {
            text: pattern.to_owned(),
            tokens: tokenize(pattern.as_bytes()),
        }
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, key: &[u8]) -> bool {
        // Redis compares nothing against an empty key, except that `*` alone is taken as
        // "every key" before any comparison.
        if key.is_empty() {
            return self.text.is_empty() || self.text == "*";
        }
        // Two pointers with one backtrack point: every token but a star takes exactly one
        // byte, so the last star seen is the only choice worth revisiting (linear-ish, no
        // exponential backtracking on patterns like `*a*a*a*`).
        let tokens = &self.tokens;
        let (mut t, mut k) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while k < key.len() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, k));
                    t += 1;
                }
                Some(token) if token.takes(key[k]) => {
                    t += 1;
                    k += 1;
                }
                _ => match star {
                    Some((star_at, from)) => {
                        t = star_at + 1;
                        k = from + 1;
                        star = Some((star_at, from + 1));
                    }
                    None => return false,
                },
            }
        }
        tokens[t..].iter().all(|token| *token == Token::Star)
    }
}

impl Token {
    fn takes(&self, byte: u8) -> bool {
        match self {
            Token::Star => false,
            Token::Any => true,
            Token::Byte(b) => *b == byte,
            Token::Class { negated, members } => {
                let hit = members.iter().any(|member| match *member {
                    Member::Byte(b) => b == byte,
                    Member::Range(low, high) => (low..=high).contains(&byte),
                });
                hit != *negated
            }
        }
    }
}

fn tokenize(pattern: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' => {
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
                i += 1;
            }
            b'?' => {
                tokens.push(Token::Any);
                i += 1;
            }
            b'\\' if i + 1 < pattern.len() => {
                tokens.push(Token::Byte(pattern[i + 1]));
                i += 2;
            }
            b'[' => {
                let (token, next) = class(pattern, i + 1);
                tokens.push(token);
                i = next;
            }
            byte => {
                tokens.push(Token::Byte(byte));
                i += 1;
            }
        }
    }
    tokens
}

/// The class starting at `i` (after its `[`) and the index after its `]`.
fn class(pattern: &[u8], mut i: usize) -> (Token, usize) {
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut members = Vec::new();
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => {
                members.push(Member::Byte(pattern[i + 1]));
                i += 2;
            }
            b']' => return (Token::Class { negated, members }, i + 1),
            low if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                let high = pattern[i + 2];
                members.push(Member::Range(low.min(high), low.max(high)));
                i += 3;
            }
            byte => {
                members.push(Member::Byte(byte));
                i += 1;
            }
        }
    }
    (Token::Class { negated, members }, i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, key: &str) -> bool {
        Glob::new(pattern).matches(key.as_bytes())
    }

    #[test]
    fn the_forms_of_redis_glob() {
        assert!(m("*", ""));
        assert!(m("app:*", "app:1"));
        assert!(!m("app:*", "ap:1"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(
            m("h[b-a]llo", "hallo"),
            "a reversed range is the same range"
        );
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("a\\", "a\\"), "a trailing backslash is itself");
        assert!(!m("[]", "a"), "an empty class matches nothing");
        assert!(m("[^]", "a"));
        assert!(m("[abc", "b"), "an open class runs to the end");
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxcxxbxxaxx"));
        assert!(m("**x", "abx"));
        assert!(
            !m("a*", ""),
            "an empty key matches only `*` and the empty pattern"
        );
    }

    #[test]
    fn raw_bytes_match() {
        let glob = Glob::new("k?");
        assert!(glob.matches(b"k\xff"));
        assert!(!glob.matches(b"k\xff\x00"));
    }

    /// The plain recursive reading of the same rules, as an oracle.
    fn reference(tokens: &[Token], key: &[u8]) -> bool {
        match tokens.split_first() {
            None => key.is_empty(),
            Some((Token::Star, rest)) => (0..=key.len()).any(|skip| reference(rest, &key[skip..])),
            Some((token, rest)) => {
                !key.is_empty() && token.takes(key[0]) && reference(rest, &key[1..])
            }
        }
    }

    proptest! {
        #[test]
        fn matches_as_the_recursive_rules(pattern in "[ab*?\\[\\]^\\\\-]{0,8}", key in "[ab*\\]-]{0,8}") {
            let glob = Glob::new(&pattern);
            prop_assume!(!key.is_empty());
            prop_assert_eq!(glob.matches(key.as_bytes()), reference(&glob.tokens, key.as_bytes()));
        }

        #[test]
        // ASCII keys: they survive the round trip through a `&str` pattern unchanged.
        fn an_escaped_key_matches_only_itself(key in proptest::collection::vec(0u8..128, 1..12), other in proptest::collection::vec(any::<u8>(), 0..12)) {
            let escaped: String = key.iter().map(|&b| format!("\\{}", b as char)).collect();
            let glob = Glob::new(&escaped);
            prop_assert!(glob.matches(&key));
            prop_assert_eq!(glob.matches(&other), other == key);
        }
    }
}
