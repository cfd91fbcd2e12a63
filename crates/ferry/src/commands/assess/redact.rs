//! Secret settings out of `CONFIG GET *`: their values never reach a report, in any
//! format, nor a finding. Redacted where the settings are read, so nothing downstream
//! can print them.
//!
//! Two nets: the settings Redis and Valkey themselves mark sensitive (`SENSITIVE_CONFIG`
//! in their `config.c`: the ones `CONFIG SET` redacts from logs and the slowlog), and any
//! name that looks like it holds a credential, for modules and releases to come.

use std::collections::BTreeMap;

/// What a secret setting's value reads as in a report.
pub const REDACTED: &str = "(redacted)";

/// Settings the servers mark sensitive, with their aliases (`masterauth` is Valkey's
/// `primaryauth`; the user name goes with the password).
const SECRET_SETTINGS: &[&str] = &[
    "requirepass",
    "masterauth",
    "primaryauth",
    "masteruser",
    "primaryuser",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
];

/// Parts of a name that mark a credential, whatever the setting.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "secret",
    "token",
    "credential",
    "apikey",
    "api-key",
    "private-key",
];

/// Whether a setting (lower-case name, as `CONFIG GET` gives it) may hold a secret.
pub fn is_secret_setting(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_SETTINGS.contains(&name.as_str())
        || SECRET_WORDS.iter().any(|word| name.contains(word))
        // `masterauth`, a module's `…-auth`; not `tls-auth-clients` (yes/no/optional).
        || name.ends_with("auth")
}

/// Replaces every secret setting's value by [`REDACTED`]. An empty value stays empty:
/// "no password set" is a fact the report may show, and it reveals no secret.
pub fn redact(config: &mut BTreeMap<String, String>) {
    for (name, value) in config.iter_mut() {
        if !value.is_empty() && is_secret_setting(name) {
            *value = REDACTED.to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_sensitive_settings_and_credential_names_are_secret() {
        for name in SECRET_SETTINGS {
            assert!(is_secret_setting(name), "{name}");
        }
        for name in [
            "search.api-token",
            "mymodule.password",
            "vault-secret",
            "cloud-credentials-file",
            "module.upstream-auth",
            "REQUIREPASS",
        ] {
            assert!(is_secret_setting(name), "{name}");
        }
        for name in [
            "tls-auth-clients",
            "tls-key-file",
            "maxmemory",
            "save",
            "notify-keyspace-events",
            "tracking-table-max-keys",
        ] {
            assert!(!is_secret_setting(name), "{name}");
        }
    }

    #[test]
    fn secret_values_are_replaced_and_the_rest_kept() {
        let mut config: BTreeMap<String, String> = [
            ("requirepass", "hunter2-canary"),
            ("masterauth", ""),
            ("module.api-token", "tok-canary"),
            ("maxmemory", "100mb"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        redact(&mut config);
        assert_eq!(config["requirepass"], REDACTED);
        assert_eq!(config["module.api-token"], REDACTED);
        assert_eq!(config["masterauth"], "");
        assert_eq!(config["maxmemory"], "100mb");
    }
}
