//! End to end through the real `logferry` binary (built by this test with `cargo build -p logferry-supervisor`):
//! demo input -> Redis -> Devo sender over mutual TLS -> a TLS receiver started by the test. The receiver is down
//! for a while during a run, and the OutputProcess is killed with SIGKILL mid-send: nothing is lost.

use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::senders::{CaptureMode, CaptureServer, TestPki};
use logferry_testkit::{wait_until, TempDir};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const TAG: &str = "my.app.test.devo";

fn start(dir: &Path, config: &str) -> Collector {
    Collector::start(&logferry_bin(), dir, config)
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
    let text = String::from_utf8_lossy(bytes);
    let marker = format!(" e2ehost {TAG}: ");
    collector::seqs(text.lines().filter(|l| l.starts_with("<14>")), &marker)
}

fn wait_all(receivers: &[&CaptureServer], count: u64, c: &Collector) {
    // Generous: while the receiver was down the pool's backoff may have grown to its 60 s cap (slow, loaded CI
    // machines fail more attempts before the queue fills), and the first retry after the receiver is back waits
    // that long.
    c.wait_all_seqs(count, Duration::from_secs(300), || {
        receivers.iter().flat_map(|r| seqs(&r.bytes())).collect()
    });
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
    let c = start(dir.path(), &config(dir.path(), &pki, port, count, 5_000));
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
    let c = start(
        dir.path(),
        &config(dir.path(), &pki, rx.port, count, 40_000),
    );
    wait_until(Duration::from_secs(60), "first events", || {
        seqs(&rx.bytes()).len() > 5_000
    });
    c.kill_and_wait_restart("OutputProcess");
    wait_all(&[&rx], count, &c);
}
