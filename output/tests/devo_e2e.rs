//! End to end through the real `logferry` binary (built by this test with `cargo build -p logferry-supervisor`):
//! demo input -> Redis -> Devo sender over mutual TLS -> a TLS receiver started by the test. The receiver is down
//! for a while during a run, and the OutputProcess is killed with SIGKILL mid-send: nothing is lost.

use logferry_testkit::senders::{CaptureMode, CaptureServer, TestPki};
use logferry_testkit::{wait_until, ChildGuard, TempDir};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TAG: &str = "my.app.test.devo";

fn logferry_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", "logferry-supervisor"])
        .status()
        .expect("cargo build");
    assert!(st.success(), "cargo build -p logferry-supervisor failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/logferry")
}

struct Collector {
    _guard: ChildGuard,
    log: PathBuf,
}

impl Collector {
    fn start(dir: &Path, config: &str) -> Collector {
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("run.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(logferry_bin())
            .args(["run", "--config"])
            .arg(&path)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start logferry");
        Collector {
            _guard: ChildGuard {
                child,
                name: "logferry".into(),
            },
            log,
        }
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn child_pid(&self, role: &str) -> i32 {
        let needle = format!("{role} started (pid ");
        let text = self.log_text();
        let at = text
            .rfind(&needle)
            .unwrap_or_else(|| panic!("no '{needle}' in log:\n{text}"));
        text[at + needle.len()..]
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn config(dir: &Path, pki: &TestPki, port: u16, count: u64, rate: u64) -> String {
    format!(
        r#"globals:
  id: devo-e2e
  persistence: {{type: embedded, directory: "{state}"}}
  queue_max_size_in_messages: 2000
  queue_wrap_max_size_in_messages: 100
  sender_stats_period_in_sec: 1
  stop_drain_timeout_in_sec: 5
inputs:
  demo:
    id: 3
    services:
      trail:
        format: cloudtrail
        events_per_second: {rate}
        count: {count}
        request_period_in_seconds: 1
        tag: {TAG}
outputs:
  devo:
    type: devo_platform
    config:
      address: 127.0.0.1
      port: {port}
      chain: "{chain}"
      cert: "{cert}"
      key: "{key}"
      hostname: e2ehost
      concurrent_connections: 2
      connect_retries: 1
      send_retries: 2
      send_retry_initial_wait_in_seconds: 0.2
"#,
        state = dir.join("state").display(),
        chain = pki.cert("ca").display(),
        cert = pki.cert("client").display(),
        key = pki.key("client").display(),
    )
}

/// Demo sequence numbers in Devo lines of `TAG` (duplicates collapse).
fn seqs(bytes: &[u8]) -> BTreeSet<u64> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with("<14>") && l.contains(&format!(" e2ehost {TAG}: ")))
        .filter_map(|l| {
            let at = l.find("\"seq\":")? + 6;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn wait_all(receivers: &[&CaptureServer], count: u64, c: &Collector) {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let mut got = BTreeSet::new();
        for r in receivers {
            got.extend(seqs(&r.bytes()));
        }
        if got.len() as u64 == count {
            return;
        }
        if Instant::now() > until {
            let missing: Vec<_> = (0..count).filter(|s| !got.contains(s)).take(10).collect();
            let log = c.log_text();
            let tail: Vec<_> = log.lines().rev().take(40).collect();
            panic!(
                "{} of {count} received; first missing {missing:?}\n{}",
                got.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn devo_receiver_down_for_a_while_loses_nothing_and_backpressure_shows() {
    let pki = TestPki::generate();
    let dir = TempDir::new("devo-e2e-down");
    let mut first = CaptureServer::start(CaptureMode::Tls {
        pki: &pki,
        require_client: true,
    });
    let port = first.port;
    let count = 30_000;
    let c = Collector::start(dir.path(), &config(dir.path(), &pki, port, count, 5_000));
    wait_until(
        Duration::from_secs(60),
        "first events at the receiver",
        || seqs(&first.bytes()).len() > 2_000,
    );
    first.kill();
    // While the receiver is down the senders fail and back off, the queue fills, the input blocks.
    wait_until(
        Duration::from_secs(60),
        "sender failures in the log",
        || c.log_text().contains("cannot connect to 127.0.0.1"),
    );
    wait_until(Duration::from_secs(60), "the queue full in the log", || {
        c.log_text().contains("is full (limits: 2000 messages")
    });
    let second = CaptureServer::start_on(
        port,
        CaptureMode::Tls {
            pki: &pki,
            require_client: true,
        },
    );
    wait_all(&[&first, &second], count, &c);
}

#[test]
fn devo_output_process_killed_mid_send_loses_nothing() {
    let pki = TestPki::generate();
    let dir = TempDir::new("devo-e2e-kill");
    let rx = CaptureServer::start(CaptureMode::Tls {
        pki: &pki,
        require_client: true,
    });
    let count = 100_000;
    let c = Collector::start(
        dir.path(),
        &config(dir.path(), &pki, rx.port, count, 40_000),
    );
    wait_until(Duration::from_secs(60), "first events", || {
        seqs(&rx.bytes()).len() > 5_000
    });
    let pid = c.child_pid("OutputProcess");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(Duration::from_secs(30), "output restarted", || {
        c.child_pid("OutputProcess") != pid
    });
    wait_all(&[&rx], count, &c);
}
