//! rustls failures as one line that says what to fix, naming the flag to change.

use super::{flag, TlsSettings};
use rustls::{AlertDescription, CertificateError};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A one-line explanation of a TLS failure carried by `error` (during the handshake or
/// on the first read after it, where TLS 1.3 servers report a refused client certificate).
pub fn explain_io(error: &io::Error, ca_file: Option<&Path>, flags: &str) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(explain(tls, ca_file, flags))
}

/// Why a TLS handshake failed, in one line. A plaintext server may hang up on the
/// ClientHello (or answer it with a RESP error, which rustls reports as a bad message).
pub(super) fn handshake_failure(error: &io::Error, ca_file: Option<&Path>, flags: &str) -> String {
    if let Some(text) = explain_io(error, ca_file, flags) {
        return text;
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "the server closed the connection during the TLS \
            handshake: is this a plaintext port? use redis:// (or valkey://)"
            .to_owned(),
        _ => format!("TLS handshake failed: {error}"),
    }
}

/// Looks for a TLS failure anywhere in an error chain (redis-rs errors included, which
/// hold their cause in an `Arc`).
pub fn explain_chain(
    error: &(dyn std::error::Error + 'static),
    settings: &TlsSettings,
) -> Option<String> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(text) = explain_one(error, settings) {
            return Some(text);
        }
        current = error.source();
    }
    None
}

fn explain_one(
    error: &(dyn std::error::Error + 'static),
    settings: &TlsSettings,
) -> Option<String> {
    let ca_file = settings.ca_file.as_deref();
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(explain(tls, ca_file, settings.flag_prefix));
    }
    if let Some(io) = error.downcast_ref::<io::Error>() {
        return explain_io(io, ca_file, settings.flag_prefix);
    }
    if let Some(shared) = error.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>() {
        return explain_one(&**shared, settings);
    }
    None
}

/// What a rustls error means for the person running ferry.
pub fn explain(error: &rustls::Error, ca_file: Option<&Path>, flags: &str) -> String {
    use rustls::Error as E;
    let ca_flag = flag(flags, "tls-ca");
    let name_flag = flag(flags, "tls-server-name");
    let cert_flags = format!("{} and {}", flag(flags, "tls-cert"), flag(flags, "tls-key"));
    let trusted = match ca_file {
        Some(path) => format!("the CA file {}", path.display()),
        None => "the given CA file or the system's CAs".to_owned(),
    };
    match error {
        E::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "certificate verify failed: unknown issuer (the server's certificate is not \
                 signed by {trusted}; give its CA with {ca_flag})"
            ),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "certificate verify failed: the server's certificate has expired ({} days ago)",
                time.as_secs().saturating_sub(not_after.as_secs()) / 86_400
            ),
            CertificateError::Expired => {
                "certificate verify failed: the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate verify failed: the server's certificate is not valid yet (check \
                 the clocks)"
                    .to_owned()
            }
            CertificateError::NotValidForName => format!(
                "certificate verify failed: hostname mismatch (connect by a name the \
                 certificate lists, or set {name_flag})"
            ),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate verify failed: hostname mismatch: the server's certificate is for \
                 {} but we connected as {} (connect by a name it lists, or set \
                 {name_flag})",
                presented
                    .iter()
                    .map(|name| plain_name(name))
                    .collect::<Vec<_>>()
                    .join(", "),
                expected.to_str()
            ),
            other => format!("certificate verify failed: {other:?}"),
        },
        E::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                format!("the server requires a client certificate: give {cert_flags}")
            }
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError => format!(
                "the server refused our client certificate (TLS alert: {alert:?}); is it \
                 signed by a CA the server trusts (its tls-ca-cert-file)?"
            ),
            AlertDescription::CertificateExpired => {
                "the server refused our client certificate: it has expired".to_owned()
            }
            AlertDescription::HandshakeFailure => format!(
                "the server refused the TLS handshake (handshake failure): it may require a \
                 client certificate ({cert_flags}) or other TLS versions"
            ),
            other => format!("the server ended the TLS handshake (alert: {other:?})"),
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the server did not answer with TLS: is this a plaintext port? use redis:// (or \
             valkey://)"
                .to_owned()
        }
        other => format!("TLS failed: {other}"),
    }
}

/// `DnsName("db.example")` or `IpAddress(10.0.0.1)`, as rustls lists a certificate's
/// names, without the wrapping.
fn plain_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_say_what_to_fix() {
        let unknown = explain(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            Some(Path::new("/etc/ca.pem")),
            "--source",
        );
        assert!(unknown.contains("--source-tls-ca"), "{unknown}");
        assert!(unknown.contains("unknown issuer") && unknown.contains("/etc/ca.pem"));
        let required = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            None,
            "--target",
        );
        assert!(
            required.contains("requires a client certificate"),
            "{required}"
        );
        assert!(
            required.contains("--target-tls-cert and --target-tls-key"),
            "{required}"
        );
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        assert!(explain_io(&io, None, "").unwrap().contains("expired"));
        assert_eq!(plain_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(plain_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(plain_name("plain"), "plain");
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert!(handshake_failure(&eof, None, "").contains("is this a plaintext port?"));
        assert_eq!(explain_io(&io::Error::other("plain"), None, ""), None);
    }
}
