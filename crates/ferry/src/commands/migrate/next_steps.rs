//! The command lines that check and finish a run, for `/status` and the status page:
//! `ferry verify` and `ferry cutover` with this run's servers and the flags it was given
//! for TLS, passwords and its control token. Files and variable names are repeated, never
//! what they hold; a password that came in a URL is left for the reader to supply.

use crate::cli::MigrateArgs;
use crate::connection::ConnectionSettings;
use crate::filter::FilterArgs;
use crate::observe::status::NextSteps;
use crate::url::ServerUrl;
use std::net::SocketAddr;

pub(super) fn next_steps(
    args: &MigrateArgs,
    source: &ServerUrl,
    target: &ServerUrl,
    status: SocketAddr,
) -> NextSteps {
    let sides = format!(
        "{} {}",
        side(source, &args.source_connection.settings()),
        side(target, &args.target_connection.settings())
    );
    let control = match (
        &args.control.control_token_file,
        &args.control.control_token_env,
    ) {
        (Some(file), _) => format!(
            " --control-token-file {}",
            shell_word(&file.display().to_string())
        ),
        (None, Some(var)) => format!(" --control-token-env {}", shell_word(var)),
        // Without a token the run refuses POST /stop: the line says what cutover needs.
        (None, None) => " --control-token-file <restart the run with a control token>".to_owned(),
    };
    // A worker knows only its own address: the others' are the operator's to add.
    let workers = match args.shards {
        Some(share) => format!(
            " --status <each of the other {} workers' --metrics-addr>",
            share.count - 1
        ),
        None => String::new(),
    };
    NextSteps {
        verify: format!("ferry verify {sides}{}", scope(&args.filters)),
        cutover: format!("ferry cutover {sides} --status http://{status}{workers}{control}"),
    }
}

/// `--source URL` and the side's flags; the URL without its password.
fn side(url: &ServerUrl, settings: &ConnectionSettings) -> String {
    let prefix = settings.flag_prefix;
    let mut words = vec![format!("{prefix} {}", shell_word(&without_password(url)))];
    let mut path = |flag: &str, value: &Option<std::path::PathBuf>| {
        if let Some(value) = value {
            words.push(format!(
                "{prefix}-{flag} {}",
                shell_word(&value.display().to_string())
            ));
        }
    };
    path("tls-ca", &settings.tls_ca);
    path("tls-cert", &settings.tls_cert);
    path("tls-key", &settings.tls_key);
    path("password-file", &settings.password_file);
    path("sentinel-password-file", &settings.sentinel_password_file);
    if let Some(name) = &settings.tls_server_name {
        words.push(format!("{prefix}-tls-server-name {}", shell_word(name)));
    }
    if let Some(user) = &settings.sentinel_user {
        words.push(format!("{prefix}-sentinel-user {}", shell_word(user)));
    }
    if let Some(var) = &settings.sentinel_password_env {
        words.push(format!(
            "{prefix}-sentinel-password-env {}",
            shell_word(var)
        ));
    }
    if settings.insecure {
        words.push(format!("{prefix}-insecure"));
    }
    if let Some(var) = &settings.password_env {
        words.push(format!("{prefix}-password-env {}", shell_word(var)));
    }
    let password_from_url = url.password.is_some()
        && settings.password_file.is_none()
        && settings.password_env.is_none();
    if password_from_url {
        words.push(format!(
            "{prefix}-password-file <a file holding its password>"
        ));
    }
    words.join(" ")
}

/// The run's scope flags: `verify` compares only what was meant to move.
fn scope(filters: &FilterArgs) -> String {
    let mut words = String::new();
    let mut add = |flag: &str, value: String| {
        words.push_str(&format!(" --{flag} {}", shell_word(&value)));
    };
    filters
        .matches
        .iter()
        .for_each(|glob| add("match", glob.clone()));
    filters
        .excludes
        .iter()
        .for_each(|glob| add("exclude", glob.clone()));
    filters.dbs.iter().for_each(|db| add("db", db.to_string()));
    filters
        .db_map
        .iter()
        .for_each(|map| add("db-map", map.clone()));
    words
}

fn without_password(url: &ServerUrl) -> String {
    ServerUrl {
        password: None,
        ..url.clone()
    }
    .to_string()
}

/// A word as a POSIX shell reads it back: bare when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=,+%".contains(&b));
    match plain {
        true => word.to_owned(),
        false => format!("'{}'", word.replace('\'', "'\\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn steps(args: &[&str]) -> NextSteps {
        let cli = crate::cli::Cli::try_parse_from(["ferry", "migrate"].iter().chain(args.iter()))
            .unwrap();
        let crate::cli::Command::Migrate(args) = cli.command else {
            panic!("not migrate");
        };
        let source = ServerUrl::parse(args.source.as_deref().unwrap()).unwrap();
        let target = ServerUrl::parse(&args.target).unwrap();
        next_steps(&args, &source, &target, "127.0.0.1:9121".parse().unwrap())
    }

    #[test]
    fn the_lines_repeat_the_flags_but_no_secret() {
        let steps = steps(&[
            "--source",
            "redis://app:s3cret@10.0.0.1:6379",
            "--target",
            "valkeys://10.0.0.2:6380",
            "--target-tls-ca",
            "/etc/ferry/ca dir/ca.pem",
            "--target-password-env",
            "VALKEY_PW",
            "--control-token-file",
            "/run/ferry/token",
            "--match",
            "app:*",
            "--db-map",
            "3:0",
        ]);
        assert_eq!(
            steps.verify,
            "ferry verify --source redis://app@10.0.0.1:6379 --source-password-file <a file \
             holding its password> --target valkeys://10.0.0.2:6380 --target-tls-ca \
             '/etc/ferry/ca dir/ca.pem' --target-password-env VALKEY_PW --match 'app:*' --db-map 3:0"
        );
        assert!(steps
            .cutover
            .ends_with("--status http://127.0.0.1:9121 --control-token-file /run/ferry/token"));
        assert!(!steps.verify.contains("s3cret") && !steps.cutover.contains("s3cret"));
    }

    #[test]
    fn a_worker_s_cutover_line_asks_for_the_other_workers() {
        let steps = steps(&[
            "--source",
            "redis://10.0.0.1:7000",
            "--target",
            "redis://10.0.0.2:7000",
            "--shards",
            "1/3",
            "--control-token-env",
            "TOKEN",
        ]);
        assert!(
            steps.cutover.ends_with(
                "--status http://127.0.0.1:9121 --status <each of the other 2 workers' \
                 --metrics-addr> --control-token-env TOKEN"
            ),
            "{}",
            steps.cutover
        );
    }
}
