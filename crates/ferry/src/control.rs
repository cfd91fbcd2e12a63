//! The credential that guards a run's control endpoint (`POST /stop` on `--metrics-addr`).
//! `migrate` and `relay` are started with it; `cutover` and `rollback` send it as
//! `Authorization: Bearer …`. Reading `/metrics` and `/status` needs none (Prometheus
//! scrapes them from other hosts); stopping a run does.
//!
//! Named like the password flags (`--source-password-file`/`-env`):
//!
//! ```ignore
//! #[command(flatten)]
//! control: ControlTokenArgs,
//! // …
//! let token = args.control.token()?;   // Option<ControlToken>
//! ```

use crate::error::Error;
use clap::Args;
use ferry_repl::Secret;
use std::path::PathBuf;

/// Shorter tokens are refused: the endpoint may be reachable from a network, and a token
/// is only as good as its guessing is hard (`openssl rand -hex 32` gives 64 characters).
pub const MIN_TOKEN_LEN: usize = 16;

/// Where the control token comes from.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Control (POST /stop on the run's --metrics-addr)")]
pub struct ControlTokenArgs {
    /// Read the control token from FILE (one line, at least 16 visible ASCII characters,
    /// e.g. from `openssl rand -hex 32`). A run
    /// started without one refuses POST /stop; cutover and rollback send it.
    #[arg(long, value_name = "FILE", conflicts_with = "control_token_env")]
    pub control_token_file: Option<PathBuf>,
    /// Read the control token from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub control_token_env: Option<String>,
}

/// Why a control token could not be read. Never quotes the token or the file.
#[derive(Debug, thiserror::Error)]
pub enum ControlTokenError {
    #[error("--control-token-file {}: cannot read it", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--control-token-file {}: {why}", path.display())]
    File { path: PathBuf, why: &'static str },
    #[error("--control-token-env {var}: {why}")]
    Env { var: String, why: &'static str },
}

impl From<ControlTokenError> for Error {
    fn from(error: ControlTokenError) -> Self {
        let chain =
            std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            });
        Error::Usage(crate::error::one_line(chain))
    }
}

/// A control token: compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlToken(Secret);

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlToken(<hidden>)")
    }
}

impl ControlToken {
    /// The token as sent in `Authorization: Bearer …`.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// A fresh token from the system's random source (32 bytes, 64 hex characters), for
    /// runs ferry starts itself (`ferry fleet`'s migrations).
    pub fn generate() -> std::io::Result<ControlToken> {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(ControlToken(Secret::new(text)))
    }

    /// Whether `presented` is this token. Takes the same time wherever the first
    /// difference is, so that timing does not reveal a prefix.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.expose().as_bytes(), presented)
    }
}

impl ControlTokenArgs {
    /// The token, when a flag names one.
    pub fn token(&self) -> Result<Option<ControlToken>, ControlTokenError> {
        if let Some(path) = &self.control_token_file {
            let text = std::fs::read_to_string(path).map_err(|source| ControlTokenError::Read {
                path: path.clone(),
                source,
            })?;
            let line =
                crate::connection::password_line(&text).map_err(|why| ControlTokenError::File {
                    path: path.clone(),
                    why,
                })?;
            return check_token(line)
                .map(Some)
                .map_err(|why| ControlTokenError::File {
                    path: path.clone(),
                    why,
                });
        }
        if let Some(var) = &self.control_token_env {
            let env_error = |why| ControlTokenError::Env {
                var: var.clone(),
                why,
            };
            let text = std::env::var(var).map_err(|e| {
                env_error(match e {
                    std::env::VarError::NotPresent => "the variable is not set",
                    std::env::VarError::NotUnicode(_) => "the value is not UTF-8",
                })
            })?;
            return check_token(&text).map(Some).map_err(env_error);
        }
        Ok(None)
    }
}

/// A token goes into an HTTP header: visible ASCII only, long enough not to be guessed.
fn check_token(token: &str) -> Result<ControlToken, &'static str> {
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token holds a space, a control or a non-ASCII character");
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err("the token is shorter than 16 characters");
    }
    Ok(ControlToken(Secret::new(token)))
}

/// Equality whose time depends on the lengths only, never on where the bytes differ.
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    // The length is not secret (tokens are long and random); the contents are.
    if expected.len() != presented.len() {
        return false;
    }
    let difference = expected
        .iter()
        .zip(presented)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // black_box: keep the compiler from turning the fold into an early exit.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_is() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"1123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"0123456789abcdef", b""));
    }

    #[test]
    fn a_token_file_gives_its_line_and_short_or_missing_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "a-long-enough-control-token\n").unwrap();
        let args = ControlTokenArgs {
            control_token_file: Some(path.clone()),
            control_token_env: None,
        };
        let token = args.token().unwrap().unwrap();
        assert!(token.matches(b"a-long-enough-control-token"));
        assert_eq!(format!("{token:?}"), "ControlToken(<hidden>)");

        std::fs::write(&path, "short-token\n").unwrap();
        let err = args.token().unwrap_err().to_string();
        assert!(
            err.contains("shorter than 16") && !err.contains("short-token"),
            "{err}"
        );

        let missing = ControlTokenArgs {
            control_token_file: Some(dir.path().join("nothing")),
            control_token_env: None,
        };
        assert!(missing
            .token()
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
        assert!(ControlTokenArgs::default().token().unwrap().is_none());
    }

    #[test]
    fn generated_tokens_are_long_and_differ() {
        let first = ControlToken::generate().unwrap();
        let second = ControlToken::generate().unwrap();
        assert_eq!(first.expose().len(), 64);
        assert!(check_token(first.expose()).is_ok());
        assert_ne!(first, second);
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it() {
        let args = ControlTokenArgs {
            control_token_file: None,
            control_token_env: Some("FERRY_TEST_CONTROL_TOKEN_NOT_SET".into()),
        };
        let err = args.token().unwrap_err().to_string();
        assert!(err.contains("FERRY_TEST_CONTROL_TOKEN_NOT_SET") && err.contains("not set"));
    }
}
