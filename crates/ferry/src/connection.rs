//! How to reach a server beyond its URL: the TLS files for `rediss://` and where the
//! password comes from. One clap group per side (`--source-…`, `--target-…`), shared by
//! every command that connects, so that all of them take the same flags:
//!
//! ```ignore
//! #[command(flatten)]
//! source_connection: SourceConnectionArgs,
//! // …
//! let url = args.source_connection.settings().resolve(&args.source, "--source")?;
//! ```
//!
//! Flatten them last in the command's struct: their help headings would otherwise also
//! head the options that follow. The resolved [`ServerUrl`] carries everything; every
//! connect function reads it.

use crate::error::Error;
use crate::tls::TlsSettings;
use crate::url::ServerUrl;
use clap::Args;
use ferry_repl::Secret;
use std::path::PathBuf;

/// Connection flags for the source.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Source connection (TLS needs a rediss:// or valkeys:// URL)")]
pub struct SourceConnectionArgs {
    /// CA certificates (PEM) that sign the source's certificate (default: the system's).
    #[arg(long, value_name = "FILE")]
    pub source_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a source that requires one (tls-auth-clients).
    #[arg(long, value_name = "FILE", requires = "source_tls_key")]
    pub source_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --source-tls-cert.
    #[arg(long, value_name = "FILE", requires = "source_tls_cert")]
    pub source_tls_key: Option<PathBuf>,
    /// The name the source's certificate must carry (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub source_tls_server_name: Option<String>,
    /// Do not check the source's certificate: encrypted, but anyone in between can
    /// pretend to be the source. For tests only.
    #[arg(long, conflicts_with_all = ["source_tls_ca", "source_tls_server_name"])]
    pub source_insecure: bool,
    /// Read the source's password from FILE (one line; it replaces any in the URL). The
    /// recommended way: a password in the URL shows in the process list.
    #[arg(long, value_name = "FILE", conflicts_with = "source_password_env")]
    pub source_password_file: Option<PathBuf>,
    /// Read the source's password from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub source_password_env: Option<String>,
    /// The ACL user ferry authenticates as with the source's sentinels (a
    /// redis-sentinel:// URL's credentials are the data nodes').
    #[arg(long, value_name = "USER")]
    pub source_sentinel_user: Option<String>,
    /// Read the password of the source's sentinels from FILE (one line).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "source_sentinel_password_env"
    )]
    pub source_sentinel_password_file: Option<PathBuf>,
    /// Read the password of the source's sentinels from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub source_sentinel_password_env: Option<String>,
    /// CA certificates (PEM) that sign the source's sentinels' certificates, with a
    /// rediss-sentinel:// URL (default: --source-tls-ca's).
    #[arg(long, value_name = "FILE")]
    pub source_sentinel_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for the source's sentinels (default: --source-tls-cert's).
    #[arg(long, value_name = "FILE", requires = "source_sentinel_tls_key")]
    pub source_sentinel_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --source-sentinel-tls-cert.
    #[arg(long, value_name = "FILE", requires = "source_sentinel_tls_cert")]
    pub source_sentinel_tls_key: Option<PathBuf>,
}

/// Connection flags for the target.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Target connection (TLS needs a rediss:// or valkeys:// URL)")]
pub struct TargetConnectionArgs {
    /// CA certificates (PEM) that sign the target's certificate (default: the system's).
    #[arg(long, value_name = "FILE")]
    pub target_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a target that requires one (tls-auth-clients).
    #[arg(long, value_name = "FILE", requires = "target_tls_key")]
    pub target_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --target-tls-cert.
    #[arg(long, value_name = "FILE", requires = "target_tls_cert")]
    pub target_tls_key: Option<PathBuf>,
    /// The name the target's certificate must carry (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub target_tls_server_name: Option<String>,
    /// Do not check the target's certificate: encrypted, but anyone in between can
    /// pretend to be the target. For tests only.
    #[arg(long, conflicts_with_all = ["target_tls_ca", "target_tls_server_name"])]
    pub target_insecure: bool,
    /// Read the target's password from FILE (one line; it replaces any in the URL). The
    /// recommended way: a password in the URL shows in the process list.
    #[arg(long, value_name = "FILE", conflicts_with = "target_password_env")]
    pub target_password_file: Option<PathBuf>,
    /// Read the target's password from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub target_password_env: Option<String>,
    /// The ACL user ferry authenticates as with the target's sentinels (a
    /// redis-sentinel:// URL's credentials are the data nodes').
    #[arg(long, value_name = "USER")]
    pub target_sentinel_user: Option<String>,
    /// Read the password of the target's sentinels from FILE (one line).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "target_sentinel_password_env"
    )]
    pub target_sentinel_password_file: Option<PathBuf>,
    /// Read the password of the target's sentinels from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub target_sentinel_password_env: Option<String>,
    /// CA certificates (PEM) that sign the target's sentinels' certificates, with a
    /// rediss-sentinel:// URL (default: --target-tls-ca's).
    #[arg(long, value_name = "FILE")]
    pub target_sentinel_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for the target's sentinels (default: --target-tls-cert's).
    #[arg(long, value_name = "FILE", requires = "target_sentinel_tls_key")]
    pub target_sentinel_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --target-sentinel-tls-cert.
    #[arg(long, value_name = "FILE", requires = "target_sentinel_tls_cert")]
    pub target_sentinel_tls_key: Option<PathBuf>,
}

/// One side's flags, whichever side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `--source` or `--target`, for messages.
    pub flag_prefix: &'static str,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub insecure: bool,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// The sentinels' own credentials, for a Sentinel URL.
    pub sentinel_user: Option<String>,
    pub sentinel_password_file: Option<PathBuf>,
    pub sentinel_password_env: Option<String>,
    /// The sentinels' TLS files where they differ from the data nodes'.
    pub sentinel_tls_ca: Option<PathBuf>,
    pub sentinel_tls_cert: Option<PathBuf>,
    pub sentinel_tls_key: Option<PathBuf>,
}

impl SourceConnectionArgs {
    pub fn settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            flag_prefix: "--source",
            tls_ca: self.source_tls_ca.clone(),
            tls_cert: self.source_tls_cert.clone(),
            tls_key: self.source_tls_key.clone(),
            tls_server_name: self.source_tls_server_name.clone(),
            insecure: self.source_insecure,
            password_file: self.source_password_file.clone(),
            password_env: self.source_password_env.clone(),
            sentinel_user: self.source_sentinel_user.clone(),
            sentinel_password_file: self.source_sentinel_password_file.clone(),
            sentinel_password_env: self.source_sentinel_password_env.clone(),
            sentinel_tls_ca: self.source_sentinel_tls_ca.clone(),
            sentinel_tls_cert: self.source_sentinel_tls_cert.clone(),
            sentinel_tls_key: self.source_sentinel_tls_key.clone(),
        }
    }
}

impl TargetConnectionArgs {
    pub fn settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            flag_prefix: "--target",
            tls_ca: self.target_tls_ca.clone(),
            tls_cert: self.target_tls_cert.clone(),
            tls_key: self.target_tls_key.clone(),
            tls_server_name: self.target_tls_server_name.clone(),
            insecure: self.target_insecure,
            password_file: self.target_password_file.clone(),
            password_env: self.target_password_env.clone(),
            sentinel_user: self.target_sentinel_user.clone(),
            sentinel_password_file: self.target_sentinel_password_file.clone(),
            sentinel_password_env: self.target_sentinel_password_env.clone(),
            sentinel_tls_ca: self.target_sentinel_tls_ca.clone(),
            sentinel_tls_cert: self.target_sentinel_tls_cert.clone(),
            sentinel_tls_key: self.target_sentinel_tls_key.clone(),
        }
    }
}

/// Where `--*-password-env` is read: the process's environment, or (in tests) a stand-in.
type Environment<'a> = &'a dyn Fn(&str) -> Result<String, std::env::VarError>;

impl ConnectionSettings {
    /// Parses the URL given to `flag` (`--source`) and applies these settings to it.
    pub fn resolve(&self, text: &str, flag: &str) -> Result<ServerUrl, Error> {
        self.resolve_in(text, flag, &|var| std::env::var(var))
    }

    /// [`ConnectionSettings::resolve`] reading `--*-password-env` from `env`.
    fn resolve_in(&self, text: &str, flag: &str, env: Environment) -> Result<ServerUrl, Error> {
        let url = ServerUrl::parse(text).map_err(|e| Error::Usage(format!("{flag}: {e}")))?;
        self.apply_in(url, env)
    }

    /// The URL with the TLS files and the password from a file or the environment.
    pub fn apply(&self, url: ServerUrl) -> Result<ServerUrl, Error> {
        self.apply_in(url, &|var| std::env::var(var))
    }

    fn apply_in(&self, mut url: ServerUrl, env: Environment) -> Result<ServerUrl, Error> {
        let prefix = self.flag_prefix;
        match &mut url.tls {
            Some(tls) => {
                *tls = TlsSettings {
                    ca_file: self.tls_ca.clone(),
                    cert_file: self.tls_cert.clone(),
                    key_file: self.tls_key.clone(),
                    server_name: self.tls_server_name.clone(),
                    insecure: self.insecure,
                    flag_prefix: prefix,
                }
            }
            None => {
                if let Some(name) = self.first_tls_flag() {
                    return Err(Error::Usage(format!(
                        "{prefix}-{name} needs a TLS URL: use rediss:// (or valkeys://) for {prefix}"
                    )));
                }
            }
        }
        let password = self.password(
            (&self.password_file, &self.password_env),
            &format!("{prefix}-password"),
            env,
        )?;
        if let Some(password) = password {
            url.password = Some(password);
        }
        let sentinel_password = self.password(
            (&self.sentinel_password_file, &self.sentinel_password_env),
            &format!("{prefix}-sentinel-password"),
            env,
        )?;
        let sentinel_tls_flag = [
            (self.sentinel_tls_ca.is_some(), "sentinel-tls-ca"),
            (self.sentinel_tls_cert.is_some(), "sentinel-tls-cert"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name));
        match &mut url.sentinel {
            Some(sentinels) => {
                sentinels.username = self.sentinel_user.clone();
                sentinels.password = sentinel_password;
                match (&mut sentinels.tls, &url.tls) {
                    (Some(tls), Some(data_nodes)) => {
                        // The sentinels are checked against their own host names: the
                        // data nodes' --…-tls-server-name is theirs alone.
                        *tls = TlsSettings {
                            ca_file: self.sentinel_tls_ca.clone().or(data_nodes.ca_file.clone()),
                            cert_file: self
                                .sentinel_tls_cert
                                .clone()
                                .or(data_nodes.cert_file.clone()),
                            key_file: self
                                .sentinel_tls_key
                                .clone()
                                .or(data_nodes.key_file.clone()),
                            server_name: None,
                            insecure: self.insecure,
                            flag_prefix: prefix,
                        };
                    }
                    _ => {
                        if let Some(name) = sentinel_tls_flag {
                            return Err(Error::Usage(format!(
                                "{prefix}-{name} needs a TLS Sentinel URL: use rediss-sentinel:// (or valkeys-sentinel://) for {prefix}"
                            )));
                        }
                    }
                }
            }
            None if sentinel_tls_flag.is_some() => {
                return Err(Error::Usage(format!(
                    "{prefix}-sentinel-* flags need a Sentinel URL: use redis-sentinel://host:port,…#MASTER_NAME for {prefix}"
                )));
            }
            None if self.sentinel_user.is_some() || sentinel_password.is_some() => {
                return Err(Error::Usage(format!(
                    "{prefix}-sentinel-* flags need a Sentinel URL: use redis-sentinel://host:port,…#MASTER_NAME for {prefix}"
                )));
            }
            None => {}
        }
        Ok(url)
    }

    fn first_tls_flag(&self) -> Option<&'static str> {
        [
            (self.tls_ca.is_some(), "tls-ca"),
            (self.tls_cert.is_some(), "tls-cert"),
            (self.tls_key.is_some(), "tls-key"),
            (self.tls_server_name.is_some(), "tls-server-name"),
            (self.insecure, "insecure"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    /// The password from `file` or `env_var` (`flag` is `--source-password` or
    /// `--source-sentinel-password`, for messages).
    fn password(
        &self,
        (file, env_var): (&Option<PathBuf>, &Option<String>),
        flag: &str,
        env: Environment,
    ) -> Result<Option<Secret>, Error> {
        let prefix = flag;
        if let Some(path) = file {
            let flag = format!("{prefix}-file {}", path.display());
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("{flag}: cannot read it: {e}")))?;
            return password_line(&text)
                .map(|p| Some(Secret::new(p)))
                .map_err(|why| Error::Usage(format!("{flag}: {why}")));
        }
        if let Some(var) = env_var {
            let flag = format!("{prefix}-env {var}");
            let text = env(var).map_err(|e| {
                Error::Usage(match e {
                    std::env::VarError::NotPresent => format!("{flag}: the variable is not set"),
                    std::env::VarError::NotUnicode(_) => format!("{flag}: the value is not UTF-8"),
                })
            })?;
            if text.is_empty() {
                return Err(Error::Usage(format!("{flag}: the variable is empty")));
            }
            return Ok(Some(Secret::new(text)));
        }
        Ok(None)
    }
}

/// A password file's one line, without its line ending. The reasons never quote the file.
pub(crate) fn password_line(text: &str) -> Result<&str, &'static str> {
    let line = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    if line.is_empty() {
        Err("the file is empty")
    } else if line.contains('\n') {
        Err("the file holds more than one line")
    } else {
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn source(flags: &[&str]) -> ConnectionSettings {
        let mut args = vec![
            "ferry",
            "migrate",
            "--source",
            "rediss://h",
            "--target",
            "redis://t",
        ];
        args.extend_from_slice(flags);
        match parse(args).expect("parses").command {
            Command::Migrate(args) => args.source_connection.settings(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn tls_flags_fill_the_urls_tls_settings() {
        let settings = source(&[
            "--source-tls-ca",
            "/ca.pem",
            "--source-tls-cert",
            "/c.pem",
            "--source-tls-key",
            "/k.pem",
            "--source-tls-server-name",
            "db.internal",
        ]);
        let url = settings
            .resolve("rediss://u@10.0.0.1:6380", "--source")
            .unwrap();
        let tls = url.tls.expect("TLS on");
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert_eq!(tls.server_name.as_deref(), Some("db.internal"));
        assert_eq!(tls.flag_prefix, "--source");
        assert!(!tls.insecure);
    }

    #[test]
    fn tls_flags_need_a_tls_url() {
        let settings = source(&["--source-tls-ca", "/ca.pem"]);
        let err = settings
            .resolve("redis://h:1", "--source")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--source-tls-ca needs a TLS URL: use rediss://"),
            "{err}"
        );
    }

    #[test]
    fn a_key_needs_its_certificate_and_insecure_excludes_a_ca() {
        let base = [
            "ferry",
            "migrate",
            "--source",
            "rediss://h",
            "--target",
            "redis://t",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            parse(args)
        };
        assert!(with(&["--source-tls-key", "/k"]).is_err());
        assert!(with(&["--target-tls-cert", "/c"]).is_err());
        assert!(with(&["--source-insecure", "--source-tls-ca", "/ca"]).is_err());
        assert!(with(&["--source-password-file", "/p", "--source-password-env", "P"]).is_err());
        assert!(with(&["--source-insecure", "--target-tls-ca", "/ca"]).is_ok());
    }

    #[test]
    fn a_password_file_replaces_the_urls_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-from-file\n").unwrap();
        let settings = ConnectionSettings {
            flag_prefix: "--target",
            password_file: Some(path.clone()),
            ..ConnectionSettings::default()
        };
        let url = settings.resolve("redis://u:old@h:1", "--target").unwrap();
        assert_eq!(url.password.unwrap().expose(), "s3cret-from-file");
        assert_eq!(url.username.as_deref(), Some("u"));

        std::fs::write(&path, "").unwrap();
        let err = settings.resolve("redis://h:1", "--target").unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        std::fs::write(&path, "one\ntwo-secret\n").unwrap();
        let err = settings.resolve("redis://h:1", "--target").unwrap_err();
        assert!(!err.to_string().contains("two-secret"), "{err}");
    }

    #[test]
    fn sentinel_credentials_go_to_the_sentinels_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentinel-pw");
        std::fs::write(&path, "for-sentinels\n").unwrap();
        let settings = ConnectionSettings {
            flag_prefix: "--source",
            sentinel_user: Some("watcher".into()),
            sentinel_password_file: Some(path),
            ..ConnectionSettings::default()
        };
        let url = settings
            .resolve("redis-sentinel://:data-pw@s1:26379,s2:26380#m", "--source")
            .unwrap();
        assert_eq!(url.password.as_ref().unwrap().expose(), "data-pw");
        let sentinels = url.sentinel.as_ref().unwrap();
        assert_eq!(sentinels.username.as_deref(), Some("watcher"));
        assert_eq!(
            sentinels.password.as_ref().unwrap().expose(),
            "for-sentinels"
        );
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("for-sentinels") && !shown.contains("data-pw"),
            "{shown}"
        );

        let err = settings.resolve("redis://h:1", "--source").unwrap_err();
        assert!(
            err.to_string()
                .contains("--source-sentinel-* flags need a Sentinel URL"),
            "{err}"
        );
    }

    #[test]
    fn password_lines_lose_only_their_ending() {
        assert_eq!(password_line("a b\r\n"), Ok("a b"));
        assert_eq!(password_line("x"), Ok("x"));
        assert!(password_line("\n").is_err());
    }

    #[test]
    fn a_password_from_the_environment() {
        let var = "FERRY_TEST_CONNECTION_PASSWORD_ENV";
        // An environment holding only `var` (the process's own is left alone).
        let env = |name: &str| {
            if name == var {
                Ok("from-env".to_owned())
            } else {
                Err(std::env::VarError::NotPresent)
            }
        };
        let settings = ConnectionSettings {
            flag_prefix: "--source",
            password_env: Some(var.into()),
            ..ConnectionSettings::default()
        };
        let url = settings
            .resolve_in("redis://h:1", "--source", &env)
            .unwrap();
        assert_eq!(url.password.unwrap().expose(), "from-env");
        let missing = ConnectionSettings {
            password_env: Some("FERRY_TEST_NOT_SET_ANYWHERE".into()),
            ..settings
        };
        let err = missing
            .resolve_in("redis://h:1", "--source", &env)
            .unwrap_err();
        assert!(err.to_string().contains("is not set"), "{err}");
    }
}
