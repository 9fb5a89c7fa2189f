//! TLS client configuration (rustls with ring, TLS 1.2+): server verified against a CA `chain`, optional client
//! certificate + key for mutual authentication. Problems are reported as config errors naming the file.

use logferry::config::{ConfigErrorKind, Section};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS client configuration cannot be built; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read certificates from \"{file}\": {reason}")]
    BadCertificates { file: PathBuf, reason: String },
    #[error("\"{file}\" holds no PEM certificate")]
    NoCertificate { file: PathBuf },
    #[error("CA certificate in \"{file}\" is not usable: {reason}")]
    BadAuthority { file: PathBuf, reason: String },
    #[error("cannot read a private key from \"{file}\": {reason}")]
    BadKey { file: PathBuf, reason: String },
    #[error("client certificate \"{cert}\" and key \"{key}\" do not belong together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl TlsConfigError {
    /// The config key the error is about (`chain`, `cert`, `key`).
    pub fn key(&self) -> &'static str {
        match self {
            TlsConfigError::BadCertificates { .. } | TlsConfigError::NoCertificate { .. } => "cert",
            TlsConfigError::BadAuthority { .. } => "chain",
            TlsConfigError::BadKey { .. } | TlsConfigError::Mismatch { .. } => "key",
        }
    }
}

fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(file)
        .map_err(|e| TlsConfigError::BadCertificates {
            file: file.into(),
            reason: e.to_string(),
        })?
        .collect();
    let certs = certs.map_err(|e| TlsConfigError::BadCertificates {
        file: file.into(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { file: file.into() });
    }
    Ok(certs)
}

/// Builds a client configuration: TLS 1.2 and 1.3, ring provider, roots from `chain`, client auth when given.
pub fn client_config(
    chain: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let cas = read_certs(chain).map_err(|e| match e {
        TlsConfigError::BadCertificates { file, reason } => {
            TlsConfigError::BadAuthority { file, reason }
        }
        TlsConfigError::NoCertificate { file } => TlsConfigError::BadAuthority {
            file,
            reason: "no PEM certificate".into(),
        },
        other => other,
    })?;
    for ca in cas {
        roots.add(ca).map_err(|e| TlsConfigError::BadAuthority {
            file: chain.into(),
            reason: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = read_certs(cert)?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| TlsConfigError::BadKey {
                    file: key.into(),
                    reason: e.to_string(),
                })?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| TlsConfigError::Mismatch {
                    cert: cert.into(),
                    key: key.into(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(Arc::new(config))
}

/// Reads `chain` (+ `cert`, `key`) from a section and builds the client configuration; `mutual` requires all three.
/// Every problem is recorded on the section with the key it concerns.
pub fn from_section(s: &Section<'_>, mutual: bool) -> Option<Arc<ClientConfig>> {
    let chain = s.file("chain", true);
    let cert = s.file("cert", mutual);
    let key = s.file("key", mutual || cert.is_some());
    if !mutual && s.contains("key") && !s.contains("cert") {
        s.error(
            "cert",
            ConfigErrorKind::Missing,
            "a client key needs its certificate (\"cert\")",
        );
        return None;
    }
    let chain = chain?;
    let client = match (&cert, &key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) if !mutual => None,
        _ => return None,
    };
    match client_config(&chain, client) {
        Ok(c) => Some(c),
        Err(e) => {
            let kind = ConfigErrorKind::InvalidValue;
            s.error(e.key(), kind, e.to_string());
            None
        }
    }
}
