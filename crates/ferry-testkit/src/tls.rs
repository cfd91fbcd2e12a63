//! Certificates made for one test run: a CA, a server certificate for 127.0.0.1 and
//! localhost, a client certificate, and the bad ones a test needs (expired, wrong name,
//! signed by an unrelated CA). All PEM files in one temporary folder.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate file and its key file.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file a TLS test uses.
pub struct TestPki {
    /// The CA that signs every certificate below unless said otherwise.
    pub ca: PathBuf,
    /// A second CA that signed nothing the servers use.
    pub other_ca: PathBuf,
    /// For 127.0.0.1 and localhost.
    pub server: CertFiles,
    /// A client certificate the servers accept.
    pub client: CertFiles,
    /// A client certificate signed by `other_ca`: servers refuse it.
    pub foreign_client: CertFiles,
    /// Like `server`, but expired in 2001.
    pub expired_server: CertFiles,
    /// Signed by `ca`, but only for `elsewhere.example`.
    pub wrong_name_server: CertFiles,
    dir: TempDir,
}

struct Authority {
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str, dir: &Path, file: &str) -> Result<(Self, PathBuf)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let path = dir.join(file);
        fs::write(&path, cert.pem()).with_context(|| format!("cannot write {file}"))?;
        Ok((
            Authority {
                issuer: Issuer::new(params, key),
            },
            path,
        ))
    }

    fn sign(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Result<CertFiles> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        fs::write(&files.cert, cert.pem())?;
        fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}

impl TestPki {
    pub fn generate() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-pki-")
            .tempdir()
            .context("cannot create a folder for the certificates")?;
        let path = dir.path();
        let (ca, ca_file) = Authority::new("ferry test CA", path, "ca.crt")?;
        let (other, other_ca) = Authority::new("unrelated CA", path, "other-ca.crt")?;
        let local = ["127.0.0.1", "localhost"];
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        Ok(TestPki {
            ca: ca_file,
            other_ca,
            server: ca.sign(path, "server", &local, ServerAuth, false)?,
            client: ca.sign(path, "client", &["ferry"], ClientAuth, false)?,
            foreign_client: other.sign(path, "foreign-client", &["ferry"], ClientAuth, false)?,
            expired_server: ca.sign(path, "expired-server", &local, ServerAuth, true)?,
            wrong_name_server: ca.sign(
                path,
                "wrong-name-server",
                &["elsewhere.example"],
                ServerAuth,
                false,
            )?,
            dir,
        })
    }

    /// The folder holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// How a server started with [`crate::Server::start_with_tls`] serves TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: CertFiles,
    /// The CA that client certificates must be signed by.
    pub ca: PathBuf,
    /// `tls-auth-clients yes`: a client without a certificate is refused.
    pub require_client_cert: bool,
}

impl ServerTls {
    /// The server certificate of `pki`, client certificates required.
    pub fn mutual(pki: &TestPki) -> Self {
        ServerTls {
            cert: pki.server.clone(),
            ca: pki.ca.clone(),
            require_client_cert: true,
        }
    }

    /// The server's command-line arguments for a TLS port.
    pub(crate) fn args(&self, tls_port: u16) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(&self.cert.cert),
            "--tls-key-file".into(),
            path(&self.cert.key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            if self.require_client_cert {
                "yes"
            } else {
                "no"
            }
            .into(),
        ]
    }
}
