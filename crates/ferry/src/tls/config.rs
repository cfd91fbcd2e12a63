//! Reading the PEM files and building the rustls configurations.

use super::insecure::AcceptAnyCertificate;
use super::{TlsError, TlsSettings};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// The one crypto provider (ring). Installed as the process default too, for redis-rs.
pub(super) fn provider() -> Arc<CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Fails only if a default is already installed, which is as good.
    let _ = CryptoProvider::install_default((*provider).clone());
    provider
}

pub(super) fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "key file";
    let pem = read_file(what, path)?;
    // The parser's message names no key material, only what it expected.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            what,
            path: path.to_owned(),
            expected: "private key",
        },
        other => TlsError::BadPem {
            what,
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates("CA file", path)? {
                roots.add(cert).map_err(|e| TlsError::BadPem {
                    what: "CA file",
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            // Unreadable system certificates are skipped; none at all is an error below.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::Config(
                    "the system has no CA certificates; give the server's CA file".into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The client certificate and key, when both are given.
fn identity(
    settings: &TlsSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => Ok(Some((
            certificates("client certificate file", cert)?,
            private_key(key)?,
        ))),
        (None, None) => Ok(None),
        _ => Err(TlsError::HalfIdentity),
    }
}

/// The rustls client configuration for `settings`.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
    } else {
        builder.with_root_certificates(root_store(settings.ca_file.as_deref())?)
    };
    match identity(settings)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("the client certificate and key: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The rustls server configuration for a listener (the relay's): our certificate and key,
/// and, with `client_ca`, clients must present a certificate signed by it.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(Arc::new(root_store(Some(ca))?))
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            certificates("certificate file", cert_file)?,
            private_key(key_file)?,
        )
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Config(format!(
                "the key file {} is not the key of the certificate file {}",
                key_file.display(),
                cert_file.display()
            )),
            other => TlsError::Config(format!("the certificate and key: {other}")),
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let settings = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("CA file /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_file_without_pem_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            ca_file: Some(path),
            ..TlsSettings::default()
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let settings = TlsSettings {
            insecure: true,
            cert_file: Some("/nonexistent/c.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            client_config(&settings),
            Err(TlsError::HalfIdentity)
        ));
    }
}
