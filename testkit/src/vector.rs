//! Vector 0.58 (`../shared/tools/vector-0.58.xz`, see that folder's README) as a real Splunk HEC receiver with
//! indexer acknowledgements: its `splunk_hec` source (`acknowledgements.enabled: true`) forwards each event's
//! `event` text, one line per event, to a TCP `socket` sink, so a test or benchmark counts what Vector accepted.
//! Vector acknowledges a post only once the sink wrote its events. Not part of logferry (shared/tools/README.md:
//! whatever uses it must skip with a message where it is absent): tests ask [`absent`] first and skip, saying where
//! the archive was looked for; [`vector_binary`] panics with that message.

use crate::{free_port, wait_for_port, ChildGuard, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The archive's name under `shared/tools`.
const ARCHIVE: &str = "vector-0.58.xz";

/// The HEC token the receiver accepts.
pub const VECTOR_HEC_TOKEN: &str = "logferry-test-token";

/// Where the archive is: `$LOGFERRY_VECTOR_XZ`, else `shared/tools/vector-0.58.xz` beside the workspace or beside
/// one of its parent folders (a git worktree lives deeper than the main checkout).
fn archive() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("LOGFERRY_VECTOR_XZ") {
        return Ok(PathBuf::from(p));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates: Vec<PathBuf> = workspace
        .canonicalize()
        .unwrap_or(workspace)
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared/tools").join(ARCHIVE))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "Vector 0.58 is needed as the Splunk HEC receiver with acknowledgements, and {ARCHIVE} is in none of: {} \
             (set LOGFERRY_VECTOR_XZ to its path)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Why Vector cannot be used here (the places looked at), or None when its archive is present. A test that needs it
/// prints the reason as `SKIPPED: ...` and returns.
pub fn absent() -> Option<String> {
    archive().err()
}

/// The unpacked `vector` binary (unpacked once into `target/vector-0.58/`, atomically, so parallel tests share it);
/// panics with the places looked at when the archive is missing.
pub fn vector_binary() -> PathBuf {
    let xz = archive().unwrap_or_else(|e| panic!("{e}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vector-0.58");
    let bin = dir.join("vector");
    if bin.is_file() {
        return bin;
    }
    std::fs::create_dir_all(&dir).expect("create target/vector-0.58");
    let partial = dir.join(format!("vector.{}.partial", std::process::id()));
    let out = std::fs::File::create(&partial).expect("create the unpacked vector");
    let status = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .stdout(out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "run xz to unpack {} (apt-get install xz-utils): {e}",
                xz.display()
            )
        });
    assert!(status.success(), "xz -dc {} failed: {status}", xz.display());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
        .expect("chmod vector");
    std::fs::rename(&partial, &bin).expect("move the unpacked vector in place");
    bin
}

/// A running Vector: `splunk_hec` source with acknowledgements on a free port, events to `127.0.0.1:sink_port`.
pub struct VectorHec {
    pub port: u16,
    sink_port: u16,
    bin: PathBuf,
    dir: TempDir,
    guard: Option<ChildGuard>,
}

impl VectorHec {
    /// Starts Vector and waits until its HEC source listens.
    pub fn start(sink_port: u16) -> VectorHec {
        let mut v = VectorHec {
            port: free_port(),
            sink_port,
            bin: vector_binary(),
            dir: TempDir::new("vector"),
            guard: None,
        };
        v.launch();
        v
    }

    fn launch(&mut self) {
        let config = self.dir.path().join("vector.yaml");
        std::fs::create_dir_all(self.dir.path().join("data")).expect("vector data dir");
        std::fs::write(
            &config,
            format!(
                r#"data_dir: "{data}"
sources:
  hec:
    type: splunk_hec
    address: "127.0.0.1:{port}"
    valid_tokens: ["{VECTOR_HEC_TOKEN}"]
    acknowledgements:
      enabled: true
sinks:
  lines:
    type: socket
    inputs: ["hec"]
    mode: tcp
    address: "127.0.0.1:{sink}"
    encoding:
      codec: text
    framing:
      method: newline_delimited
"#,
                data = self.dir.path().join("data").display(),
                port = self.port,
                sink = self.sink_port,
            ),
        )
        .expect("write vector.yaml");
        let log = std::fs::File::create(self.dir.path().join("vector.log")).expect("vector log");
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&config)
            .env("VECTOR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display()));
        self.guard = Some(ChildGuard {
            child,
            name: "vector".into(),
        });
        wait_for_port(
            self.port,
            Duration::from_secs(30),
            "Vector's HEC source to listen",
        );
    }

    /// The base URL for a `splunk_hec` output.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The YAML lines (under `outputs:`) of a `splunk_hec` output named `hec` posting to this Vector with its token,
    /// at default settings but for `extra` (lines under `config`, indented 6 spaces).
    pub fn hec_output(&self, extra: &str) -> String {
        format!(
            "  hec:\n    type: splunk_hec\n    config:\n      url: \"{url}\"\n      token: \"{VECTOR_HEC_TOKEN}\"\n{extra}\n",
            url = self.url()
        )
    }

    pub fn pid(&self) -> u32 {
        self.guard.as_ref().map(|g| g.pid()).unwrap_or(0)
    }

    /// Kills Vector (SIGKILL: its pending acknowledgements are lost) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.guard = None;
        wait_until_port_free(self.port);
        self.launch();
    }

    /// Vector's own log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vector.log")).unwrap_or_default()
    }
}

fn wait_until_port_free(port: u16) {
    crate::wait_until(
        Duration::from_secs(10),
        "Vector's port to be released",
        || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
    );
}
