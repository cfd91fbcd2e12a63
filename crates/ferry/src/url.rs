//! Server URLs: `redis://[user[:password]@]host:port[/db]` (also `valkey://`; `rediss://`
//! and `valkeys://` for TLS, whose files come from the command line: see
//! [`crate::connection`]), and the Sentinel form Lettuce and RIOT users know:
//! `redis-sentinel://[user[:password]@]host:port[,host:port…][/db]#MASTER_NAME` (also
//! `valkey-sentinel://`), whose credentials are the data nodes'; the sentinels' own come
//! from the command line.
//!
//! The password is held in a [`Secret`]: neither `Debug` nor `Display` of a [`ServerUrl`]
//! shows it, so a URL can go into any log line or error message.

use crate::tls::TlsSettings;
use ferry_repl::Secret;
use std::fmt;

/// Used when the URL names no port.
pub const DEFAULT_PORT: u16 = 6379;

#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// ACL user; `None` authenticates as `default` (plain `AUTH password`).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The `/db` part, when given.
    pub db: Option<u64>,
    /// `Some` for `rediss://` and `valkeys://`: every connection to this server uses TLS.
    pub tls: Option<TlsSettings>,
    /// `Some` for a Sentinel URL: `host` and `port` are then the primary the sentinels
    /// named last (empty until `server::sentinel` resolved them), and every reconnect
    /// asks the sentinels again.
    pub sentinel: Option<Sentinels>,
}

/// The sentinels that watch a primary, and how to talk to them.
#[derive(Clone, PartialEq, Eq)]
pub struct Sentinels {
    /// The name the sentinels monitor the primary under (the URL's `#fragment`).
    pub master_name: String,
    /// `(host, port)` of each sentinel, in the URL's order (tried in turn).
    pub nodes: Vec<(String, u16)>,
    /// The sentinels' ACL user and password (`--source-sentinel-user`, …); the URL's
    /// credentials are the data nodes'.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// How to reach the sentinels over TLS (`rediss-sentinel://`): the data nodes'
    /// settings unless `--…-sentinel-tls-*` say otherwise; `None`: plain TCP.
    pub tls: Option<TlsSettings>,
}

/// Used when a sentinel in the URL names no port.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

impl Sentinels {
    /// `host:port,host:port…`, for messages.
    pub fn addresses(&self) -> String {
        let shown: Vec<String> = self
            .nodes
            .iter()
            .map(|(host, port)| join_host_port(host, *port))
            .collect();
        shown.join(",")
    }

    /// A URL for one sentinel: its address and the sentinels' credentials.
    pub fn node_url(&self, index: usize) -> ServerUrl {
        let (host, port) = self.nodes[index].clone();
        ServerUrl {
            scheme: Scheme::Redis,
            host,
            port,
            username: self.username.clone(),
            password: self.password.clone(),
            db: None,
            tls: self.tls.clone(),
            sentinel: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Redis,
    Valkey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL {shown:?}: {reason}")]
pub struct UrlError {
    /// The URL with any password replaced.
    shown: String,
    #[source]
    reason: UrlProblem,
}

/// What is wrong with a URL. Never holds the password: only the parts around it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("unknown scheme '{0}'; use redis://, valkey://, or rediss:// or valkeys:// for TLS")]
    UnknownScheme(String),
    #[error("expected redis://host:port or valkey://host:port")]
    NoScheme,
    #[error("unclosed '[' in the host")]
    UnclosedBracket,
    #[error("expected ':port' after ']'")]
    NoPortAfterBracket,
    #[error("no host")]
    NoHost,
    #[error("port '{0}' is not a number from 1 to 65535")]
    BadPort(String),
    #[error("database '{0}' is not a number")]
    BadDatabase(String),
    #[error("bad percent-escape in the credentials")]
    BadPercentEscape,
    #[error("credentials are not UTF-8")]
    CredentialsNotUtf8,
    #[error(
        "a Sentinel URL ends with #MASTER_NAME, the name the sentinels monitor the primary under"
    )]
    NoMasterName,
    #[error(
        "a '#MASTER_NAME' belongs to a Sentinel URL: use redis-sentinel:// (or valkey-sentinel://)"
    )]
    FragmentWithoutSentinel,
}

impl ServerUrl {
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let fail = |reason: UrlProblem| UrlError {
            shown: hide_password(text),
            reason,
        };
        let (scheme, tls, sentinel, rest) = match text.split_once("://") {
            Some(("redis", rest)) => (Scheme::Redis, false, false, rest),
            Some(("valkey", rest)) => (Scheme::Valkey, false, false, rest),
            Some(("rediss", rest)) => (Scheme::Redis, true, false, rest),
            Some(("valkeys", rest)) => (Scheme::Valkey, true, false, rest),
            Some(("redis-sentinel", rest)) => (Scheme::Redis, false, true, rest),
            Some(("valkey-sentinel", rest)) => (Scheme::Valkey, false, true, rest),
            Some(("rediss-sentinel", rest)) => (Scheme::Redis, true, true, rest),
            Some(("valkeys-sentinel", rest)) => (Scheme::Valkey, true, true, rest),
            Some((other, _)) => return Err(fail(UrlProblem::UnknownScheme(other.to_owned()))),
            None => return Err(fail(UrlProblem::NoScheme)),
        };
        // The master name follows the last '#' after the credentials (a password may
        // hold '#' itself).
        let location_start = rest.rfind('@').map_or(0, |at| at + 1);
        let (rest, master_name) = match rest[location_start..].rfind('#') {
            Some(hash) if sentinel => {
                let hash = location_start + hash;
                (&rest[..hash], Some(&rest[hash + 1..]))
            }
            Some(_) => return Err(fail(UrlProblem::FragmentWithoutSentinel)),
            None => (rest, None),
        };
        // The credentials end at the last '@': a password may contain '@' itself.
        let (credentials, location) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (host_port, path) = match location.split_once('/') {
            Some((host_port, path)) => (host_port, Some(path)),
            None => (location, None),
        };
        let (host, port, sentinels) = if sentinel {
            let master_name = master_name
                .filter(|name| !name.is_empty())
                .ok_or_else(|| fail(UrlProblem::NoMasterName))?;
            let nodes = host_port
                .split(',')
                .map(|node| split_host_port(node, DEFAULT_SENTINEL_PORT))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let sentinels = Sentinels {
                master_name: master_name.to_owned(),
                nodes,
                username: None,
                password: None,
                tls: tls.then(TlsSettings::default),
            };
            (String::new(), 0, Some(sentinels))
        } else {
            let (host, port) = split_host_port(host_port, DEFAULT_PORT).map_err(fail)?;
            (host, port, None)
        };
        let db = match path {
            None | Some("") => None,
            Some(number) => Some(
                number
                    .parse::<u64>()
                    .map_err(|_| fail(UrlProblem::BadDatabase(number.to_owned())))?,
            ),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = match credentials.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (credentials, None),
                };
                let user = percent_decode(user).map_err(fail)?;
                let password = password.map(percent_decode).transpose().map_err(fail)?;
                (
                    Some(user).filter(|u| !u.is_empty()),
                    password.filter(|p| !p.is_empty()).map(Secret::new),
                )
            }
        };
        Ok(ServerUrl {
            scheme,
            host,
            port,
            username,
            password,
            db,
            tls: tls.then(TlsSettings::default),
            sentinel: sentinels,
        })
    }

    /// `host:port`, for connecting (IPv6 hosts in brackets). Through Sentinel: the
    /// primary the sentinels named last.
    pub fn address(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// A Sentinel URL whose primary is not known yet: nothing to connect to.
    pub fn unresolved(&self) -> bool {
        self.sentinel.is_some() && self.port == 0
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), UrlProblem> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlProblem::UnclosedBracket)?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(UrlProblem::NoPortAfterBracket)?,
            ),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| UrlProblem::BadPort(port.to_owned()))?,
    };
    Ok((host.to_owned(), port))
}

/// `%40` → `@`, so that credentials can hold any character.
fn percent_decode(text: &str) -> Result<String, UrlProblem> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(UrlProblem::BadPercentEscape)?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlProblem::CredentialsNotUtf8)
}

/// The URL text with whatever stands between `user:` and `@` replaced, for messages about
/// a URL that did not parse.
fn hide_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{}", &rest[at + 1..]),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

/// A Sentinel URL shows its sentinels and master name, not the primary of the moment: the
/// text stays the same across a failover (the state file compares it).
impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.scheme, self.tls.is_some(), self.sentinel.is_some()) {
            (Scheme::Redis, false, true) => "redis-sentinel",
            (Scheme::Valkey, false, true) => "valkey-sentinel",
            (Scheme::Redis, true, true) => "rediss-sentinel",
            (Scheme::Valkey, true, true) => "valkeys-sentinel",
            (Scheme::Redis, false, false) => "redis",
            (Scheme::Valkey, false, false) => "valkey",
            (Scheme::Redis, true, false) => "rediss",
            (Scheme::Valkey, true, false) => "valkeys",
        };
        write!(f, "{scheme}://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            (None, None) => {}
        }
        match &self.sentinel {
            Some(sentinels) => f.write_str(&sentinels.addresses())?,
            None => f.write_str(&self.address())?,
        }
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        if let Some(sentinels) = &self.sentinel {
            write!(f, "#{}", sentinels.master_name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sentinels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sentinels({}#{})", self.addresses(), self.master_name)
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({self})")
    }
}

impl std::str::FromStr for ServerUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let url = ServerUrl::parse("redis://alice:s3cr%40t@db.example:6380/3").unwrap();
        assert_eq!(url.scheme, Scheme::Redis);
        assert_eq!(url.host, "db.example");
        assert_eq!(url.port, 6380);
        assert_eq!(url.username.as_deref(), Some("alice"));
        assert_eq!(url.password.as_ref().map(Secret::expose), Some("s3cr@t"));
        assert_eq!(url.db, Some(3));
        assert_eq!(url.address(), "db.example:6380");
    }

    #[test]
    fn defaults_and_password_only() {
        let url = ServerUrl::parse("valkey://:pw@127.0.0.1").unwrap();
        assert_eq!(url.scheme, Scheme::Valkey);
        assert_eq!(url.port, DEFAULT_PORT);
        assert_eq!(url.username, None);
        assert_eq!(url.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(url.db, None);
        let v6 = ServerUrl::parse("redis://[::1]:7000").unwrap();
        assert_eq!(v6.address(), "[::1]:7000");
    }

    #[test]
    fn a_password_is_never_shown() {
        let url = ServerUrl::parse("redis://bob:hunter2@h:1/0").unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://bob:***@h:1/0"), "{shown}");
        let err = ServerUrl::parse("redis://bob:hunter2@h:notaport")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("notaport"), "{err}");
    }

    #[test]
    fn tls_schemes_turn_tls_on() {
        let url = ServerUrl::parse("rediss://u:pw@h:6380").unwrap();
        assert_eq!(url.scheme, Scheme::Redis);
        assert!(url.tls.is_some());
        assert_eq!(url.to_string(), "rediss://u:***@h:6380");
        let url = ServerUrl::parse("valkeys://h").unwrap();
        assert_eq!(url.scheme, Scheme::Valkey);
        assert_eq!(url.to_string(), "valkeys://h:6379");
        assert!(ServerUrl::parse("redis://h").unwrap().tls.is_none());
    }

    #[test]
    fn sentinel_urls_name_their_sentinels_and_master() {
        let url =
            ServerUrl::parse("redis-sentinel://u:p%23w@10.0.0.1:26380,[::1],s3:5000/0#mymaster")
                .unwrap();
        let sentinels = url.sentinel.as_ref().expect("a Sentinel URL");
        assert_eq!(sentinels.master_name, "mymaster");
        assert_eq!(
            sentinels.nodes,
            vec![
                ("10.0.0.1".to_owned(), 26380),
                ("::1".to_owned(), DEFAULT_SENTINEL_PORT),
                ("s3".to_owned(), 5000)
            ]
        );
        assert_eq!(url.username.as_deref(), Some("u"));
        assert_eq!(url.password.as_ref().map(Secret::expose), Some("p#w"));
        assert_eq!(url.db, Some(0));
        assert!(url.unresolved());
        assert_eq!(
            url.to_string(),
            "redis-sentinel://u:***@10.0.0.1:26380,[::1]:26379,s3:5000/0#mymaster"
        );
        let tls = ServerUrl::parse("rediss-sentinel://s1:5000,s2#m").unwrap();
        assert!(tls.tls.is_some());
        assert_eq!(tls.to_string(), "rediss-sentinel://s1:5000,s2:26379#m");
        let sentinels = tls.sentinel.unwrap();
        assert!(
            sentinels.node_url(1).tls.is_some(),
            "the sentinels are reached over TLS"
        );
        let valkey = ServerUrl::parse("valkey-sentinel://h#m").unwrap();
        assert_eq!(valkey.scheme, Scheme::Valkey);
        assert_eq!(valkey.to_string(), "valkey-sentinel://h:26379#m");
        assert_eq!(valkey.sentinel.unwrap().node_url(0).address(), "h:26379");
    }

    #[test]
    fn bad_sentinel_urls_say_why() {
        for (text, why) in [
            ("redis-sentinel://h:1", "ends with #MASTER_NAME"),
            ("redis-sentinel://h:1#", "ends with #MASTER_NAME"),
            ("redis-sentinel://h:1,:2#m", "no host"),
            ("redis-sentinel://h:1,h:0#m", "port '0'"),
            ("redis://h:1#m", "belongs to a Sentinel URL"),
        ] {
            let err = ServerUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let err = ServerUrl::parse("redis-sentinel://u:hunter2@h:x#m")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_urls_say_why() {
        for (text, why) in [
            ("localhost:6379", "expected redis://"),
            ("http://h:1", "unknown scheme 'http'"),
            ("redis://h:0", "port '0'"),
            ("redis://h:1/x", "database 'x'"),
            ("redis://:1", "no host"),
        ] {
            let err = ServerUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let err = ServerUrl::parse("redis://u:pw@h:0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid URL \"redis://u:***@h:0\": port '0' is not a number from 1 to 65535"
        );
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some(UrlProblem::BadPort("0".into()).to_string())
        );
    }
}
