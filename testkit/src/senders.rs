//! Peers for the sender tests: a generated test PKI (CA, server, client, foreign and expired client certificates)
//! and a capturing TCP/TLS receiver (Python's `ssl` module, an independent TLS implementation), both stopped by
//! pid on drop.

use crate::{free_port, wait_until, ChildGuard, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PKI_PY: &str = include_str!("senders/pki.py");
const CAPTURE_PY: &str = include_str!("senders/capture.py");

/// `python3` (PATH).
pub fn python3() -> &'static str {
    "python3"
}

/// Files of the generated PKI (all PEM): `ca`, `other_ca`, `server`, `client`, `foreign_client`, `expired_client`,
/// each as `<name>.pem` + `<name>.key`.
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    pub fn generate() -> TestPki {
        let dir = TempDir::new("pki");
        let script = dir.path().join("pki.py");
        std::fs::write(&script, PKI_PY).unwrap();
        let st = Command::new(python3())
            .arg(&script)
            .arg(dir.path())
            .status()
            .expect("run python3 (pip install cryptography)");
        assert!(st.success(), "pki.py failed");
        TestPki { dir }
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pem"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }

    /// A rustls server with the `server` certificate that requires a client certificate from this CA (the
    /// Devo relay's mutual TLS), for in-process sinks.
    pub fn rustls_server_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::Arc;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.cert("ca")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let certs: Vec<_> = CertificateDer::pem_file_iter(self.cert("server"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(self.key("server")).unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)
                .unwrap(),
        )
    }
}

/// How the capture receiver listens.
pub enum CaptureMode<'a> {
    Plain,
    /// TLS with the server certificate of `pki`; `require_client` = mutual TLS against the PKI's CA.
    Tls {
        pki: &'a TestPki,
        require_client: bool,
    },
}

/// A receiver storing each connection's bytes; stopped by pid on drop.
pub struct CaptureServer {
    pub port: u16,
    dir: TempDir,
    guard: Option<ChildGuard>,
}

impl CaptureServer {
    pub fn start(mode: CaptureMode<'_>) -> CaptureServer {
        Self::start_on(free_port(), mode)
    }

    pub fn start_on(port: u16, mode: CaptureMode<'_>) -> CaptureServer {
        let dir = TempDir::new("capture");
        let script = dir.path().join("capture.py");
        std::fs::write(&script, CAPTURE_PY).unwrap();
        let mut cmd = Command::new(python3());
        cmd.arg(&script).arg(port.to_string()).arg(dir.path());
        if let CaptureMode::Tls {
            pki,
            require_client,
        } = mode
        {
            cmd.arg(pki.cert("server")).arg(pki.key("server"));
            if require_client {
                cmd.arg(pki.cert("ca"));
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 capture receiver");
        let guard = ChildGuard {
            child,
            name: "capture.py".into(),
        };
        let ready = dir.path().join("ready");
        wait_until(
            Duration::from_secs(10),
            "capture receiver to listen",
            || ready.exists(),
        );
        CaptureServer {
            port,
            dir,
            guard: Some(guard),
        }
    }

    /// Kills the receiver (SIGKILL): open connections are reset.
    pub fn kill(&mut self) {
        self.guard = None;
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let n = name
                            .strip_prefix("conn_")?
                            .strip_suffix(ext)?
                            .parse()
                            .ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// Bytes of every connection so far (finished or not), in accept order, concatenated.
    pub fn bytes(&self) -> Vec<u8> {
        let mut all: Vec<PathBuf> = self.files(".bin");
        all.extend(self.files(".part"));
        let mut numbered: Vec<(u64, PathBuf)> = all
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                let n = name
                    .strip_prefix("conn_")?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()?;
                Some((n, p))
            })
            .collect();
        numbered.sort();
        numbered
            .into_iter()
            .flat_map(|(_, p)| std::fs::read(p).unwrap_or_default())
            .collect()
    }

    /// Bytes of each finished (closed) connection.
    pub fn closed_connections(&self) -> Vec<Vec<u8>> {
        self.files(".bin")
            .into_iter()
            .map(|p| std::fs::read(p).unwrap_or_default())
            .collect()
    }

    /// Handshake and connection errors the receiver saw.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default()
    }

    /// Waits until at least `n` bytes arrived.
    pub fn wait_bytes(&self, n: usize, deadline: Duration) -> Vec<u8> {
        wait_until(
            deadline,
            &format!("{n} bytes at the capture receiver"),
            || self.bytes().len() >= n,
        );
        self.bytes()
    }
}

/// A real `rsyslogd` (Debian `rsyslog`, `rsyslog-gnutls` for TLS) receiving on a free port and writing each
/// message as `HOSTNAME|PROGRAMNAME|MSG` (one line per message) to a file; killed by pid on drop.
pub struct Rsyslog {
    pub port: u16,
    dir: TempDir,
    _guard: ChildGuard,
}

impl Rsyslog {
    /// `tls`: TLS with the PKI's server certificate; client certificates are then required and verified
    /// against the PKI's CA (`x509/certvalid`) when `require_client`.
    pub fn start(tls: Option<(&TestPki, bool)>) -> Rsyslog {
        let dir = TempDir::new("rsyslog");
        let port = free_port();
        let out = dir.path().join("out.log");
        let mut conf = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"64k\")\n",
            dir.path().display()
        );
        match tls {
            None => conf.push_str(&format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n"
            )),
            Some((pki, require_client)) => {
                conf.push_str(&format!(
                    "global(defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" \
                     defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\")\n",
                    pki.cert("ca").display(),
                    pki.cert("server").display(),
                    pki.key("server").display()
                ));
                let auth = if require_client { "x509/certvalid" } else { "anon" };
                conf.push_str(&format!(
                    "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"{auth}\")\n\
                     input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n"
                ));
            }
        }
        conf.push_str(&format!(
            "template(name=\"fields\" type=\"string\" string=\"%hostname%|%programname%|%msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{}\" template=\"fields\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n",
            out.display()
        ));
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ))
            .spawn()
            .expect("start rsyslogd (apt-get install rsyslog rsyslog-gnutls)");
        let guard = ChildGuard {
            child,
            name: "rsyslogd".into(),
        };
        crate::wait_for_port(port, Duration::from_secs(10), "rsyslogd to listen");
        Rsyslog {
            port,
            dir,
            _guard: guard,
        }
    }

    /// Lines written so far (`HOSTNAME|PROGRAMNAME|MSG`).
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("out.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// rsyslogd's own error output.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}
