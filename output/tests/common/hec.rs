//! The local Splunk HEC receiver (`tests/hec_receiver.py`) run by a test.

use logferry_testkit::senders::TestPki;
use logferry_testkit::{free_port, wait_until, ChildGuard, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `hec_receiver.py` on a free port, accepting the token `tok`; killed on drop.
pub struct Receiver {
    pub port: u16,
    scheme: &'static str,
    _guard: ChildGuard,
    _dir: TempDir,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_with(None)
    }

    /// `tls`: HTTPS with the PKI's server certificate.
    pub fn start_with(tls: Option<&TestPki>) -> Receiver {
        let dir = TempDir::new("hec");
        let port = free_port();
        let ready = dir.path().join("ready");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hec_receiver.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(port.to_string()).arg("tok").arg(&ready);
        if let Some(pki) = tls {
            cmd.arg(pki.cert("server")).arg(pki.key("server"));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let guard = ChildGuard {
            child,
            name: "hec_receiver.py".into(),
        };
        wait_until(Duration::from_secs(10), "HEC receiver ready", || {
            ready.exists()
        });
        Receiver {
            port,
            scheme,
            _guard: guard,
            _dir: dir,
        }
    }
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }
    pub fn control(&self, v: Value) {
        ureq::post(&format!("{}/control", self.url()))
            .send(v.to_string())
            .unwrap();
    }
    pub fn received(&self) -> Value {
        serde_json::from_str(
            &ureq::get(&format!("{}/received", self.url()))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap(),
        )
        .unwrap()
    }
    pub fn events(&self) -> Vec<Value> {
        self.received()["events"].as_array().unwrap().clone()
    }
}

impl Receiver {
    /// Seconds (since the receiver started) of every event post, refused ones included, per channel.
    pub fn post_times(&self) -> Vec<Vec<f64>> {
        self.received()["post_times"]
            .as_object()
            .map(|m| {
                m.values()
                    .map(|t| {
                        t.as_array()
                            .unwrap()
                            .iter()
                            .filter_map(Value::as_f64)
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
