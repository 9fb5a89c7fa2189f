//! TLS client configuration (rustls with ring, TLS 1.2+): server verified against a CA `chain` (or, where the output
//! allows it, the system trust store read with `rustls-native-certs`), optional client certificate + key for mutual
//! authentication. Problems are reported as config errors naming the file.

use logferry::config::{ConfigErrorKind, Key, Section};
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
    #[error(
        "no usable CA certificate in the system trust store ({reason}); set \"chain\" to a CA file"
    )]
    NoSystemRoots { reason: String },
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
            TlsConfigError::BadAuthority { .. } | TlsConfigError::NoSystemRoots { .. } => "chain",
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

/// What the server certificate is verified against.
#[derive(Debug, Clone, Copy)]
pub enum Roots<'a> {
    /// Only the CA certificates of this PEM file (`chain`).
    Chain(&'a Path),
    /// The system trust store (`rustls-native-certs`: the distribution's CA bundle, or the PEM file named by
    /// `SSL_CERT_FILE` / the directory named by `SSL_CERT_DIR` when set).
    System,
}

fn chain_roots(chain: &Path) -> Result<RootCertStore, TlsConfigError> {
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
    Ok(roots)
}

/// The system trust store; an error when it yields no usable certificate (unreadable files alone are logged).
fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
    if added == 0 {
        let reason = match errors.is_empty() {
            true => format!("{ignored} unusable certificates"),
            false => errors.join("; "),
        };
        return Err(TlsConfigError::NoSystemRoots { reason });
    }
    if !errors.is_empty() || ignored > 0 {
        log::debug!(
            "system trust store: {added} CA certificates, {ignored} unusable, errors: {errors:?}"
        );
    }
    Ok(roots)
}

/// Builds a client configuration: TLS 1.2 and 1.3, ring provider, `roots`, client auth when given.
pub fn client_config(
    roots: Roots<'_>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let roots = match roots {
        Roots::Chain(chain) => chain_roots(chain)?,
        Roots::System => system_roots()?,
    };
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

/// The TLS keys of an output, declared by its kind: `chain`, `cert` and `key` all declared mandatory means mutual
/// TLS without the system trust store (Devo); otherwise `chain` is optional (the system trust store when absent)
/// and `cert` + `key` optional, together (syslog).
pub struct TlsKeys {
    /// `tls`: a boolean with its default.
    pub tls: Key,
    pub chain: Key,
    pub cert: Key,
    pub key: Key,
}

impl TlsKeys {
    fn mutual(&self) -> bool {
        self.cert.required
    }
}

/// Reads `tls`, `chain`, `cert` and `key`: `Some(Some(config))` for TLS, `Some(None)` for plain TCP (certificate
/// files are then refused, never ignored), `None` when unusable. With `tls_refused` (a kind that is always TLS) the
/// `tls` key is refused with that reason. Every problem is recorded on the section.
pub fn read(
    s: &Section<'_>,
    keys: &TlsKeys,
    tls_refused: Option<&'static str>,
) -> Option<Option<Arc<ClientConfig>>> {
    let use_tls = match tls_refused {
        None => s.get_bool(&keys.tls),
        Some(why) => {
            if s.get_value(&keys.tls).is_some() {
                s.error(keys.tls.name, ConfigErrorKind::InvalidValue, why);
            }
            true
        }
    };
    if use_tls {
        return from_section(s, keys).map(Some);
    }
    let mut usable = true;
    for k in [&keys.chain, &keys.cert, &keys.key] {
        if s.get_value(k).is_some() {
            usable = false;
            s.error(
                k.name,
                ConfigErrorKind::Conflict,
                "certificate files are only used with \"tls: true\"",
            );
        }
    }
    usable.then_some(None)
}

/// Reads `chain`, `cert` and `key` as `keys` declares them and builds the client configuration.
pub fn from_section(s: &Section<'_>, keys: &TlsKeys) -> Option<Arc<ClientConfig>> {
    let mutual = keys.mutual();
    let chain = s.get_file(&keys.chain);
    let cert = s.get_file(&keys.cert);
    let key = s.get_file_needed(&keys.key, keys.key.required || cert.is_some());
    if !mutual && s.has(&keys.key) && !s.has(&keys.cert) {
        s.error(
            keys.cert.name,
            ConfigErrorKind::Missing,
            "a client key needs its certificate (\"cert\")",
        );
        return None;
    }
    let roots = match (&chain, s.has(&keys.chain)) {
        (Some(c), _) => Roots::Chain(c),
        (None, false) if !mutual => Roots::System,
        (None, _) => return None,
    };
    let client = match (&cert, &key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) if !mutual => None,
        _ => return None,
    };
    match client_config(roots, client) {
        Ok(c) => Some(c),
        Err(e) => {
            s.error(e.key(), ConfigErrorKind::InvalidValue, e.to_string());
            None
        }
    }
}
