//! Splunk HEC through the real `logferry` binary (demo input -> Redis -> `splunk_hec` output -> `hec_receiver.py`):
//! a refused token and a busy indexer asking `Retry-After: 5` are retried with backoff (at most 3 posts per
//! channel in 10 s), reported once per state change instead of once per post, and everything is delivered once
//! the indexer accepts again.

mod common;

use common::hec::Receiver;
use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::{hold_until, wait_until, TempDir};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const TAG: &str = "my.app.test.hec";
const COUNT: u64 = 300;

fn config(dir: &Path, rx: &Receiver, token: &str) -> String {
    format!(
        r#"globals:
  id: hec-backoff
  persistence: {{type: embedded, directory: "{state}"}}
  sender_stats_period_in_sec: 60
  stop_drain_timeout_in_sec: 2
inputs:
  demo:
    id: 4
    services:
      trail:
        format: cloudtrail
        events_per_second: 0
        count: {COUNT}
        request_period_in_seconds: 1
        tag: {TAG}
outputs:
  hec:
    type: splunk_hec
    config:
      url: "{url}"
      token: "{token}"
      batch_max_wait_in_ms: 100
      ack_poll_interval_in_ms: 100
"#,
        state = dir.join("state").display(),
        url = rx.url(),
    )
}

/// The demo sequence numbers the receiver accepted.
fn delivered(rx: &Receiver) -> BTreeSet<u64> {
    let events: Vec<String> = rx
        .events()
        .iter()
        .filter(|e| e["fields"]["tag"] == TAG)
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect();
    collector::seqs(events.iter().map(String::as_str), "\"seq\":")
}

/// The most event posts one channel made in any 10 s.
fn most_posts_in_10_s(rx: &Receiver) -> usize {
    rx.post_times()
        .iter()
        .map(|times| {
            times
                .iter()
                .map(|&t| times.iter().filter(|&&u| u >= t && u < t + 10.0).count())
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

/// Runs the collector against a failing receiver for 10 s from its first post, checking the post rate all along,
/// then lets `recover` make the receiver accept and waits for every event.
/// Returns the collector with its directory (dropped after it).
fn failing_then_recovered(
    rx: &Receiver,
    token: &str,
    failure_line: &str,
    recover: impl FnOnce(),
) -> (Collector, TempDir) {
    let dir = TempDir::new("hec-backoff");
    let c = Collector::start(&logferry_bin(), dir.path(), &config(dir.path(), rx, token));
    wait_until(Duration::from_secs(60), "a first refused post", || {
        !rx.post_times().is_empty() && c.log_text().contains(failure_line)
    });
    hold_until(
        Instant::now() + Duration::from_secs(10),
        Duration::from_millis(250),
        || {
            let most = most_posts_in_10_s(rx);
            assert!(
                most <= 3,
                "{most} posts on one channel in 10 s: {:?}\n{}",
                rx.post_times(),
                c.log_tail()
            );
        },
    );
    let channels = rx.post_times().len();
    let lines = c.log_count(failure_line);
    assert!(
        (1..=channels).contains(&lines),
        "{lines} lines for {channels} failing channel(s): one per state change expected\n{}",
        c.log_tail()
    );
    assert!(
        delivered(rx).is_empty(),
        "nothing is accepted while failing"
    );
    recover();
    c.wait_all_seqs(COUNT, Duration::from_secs(60), || delivered(rx));
    c.wait_log("delivering again after", Duration::from_secs(10));
    (c, dir)
}

#[test]
fn refused_token_is_an_error_naming_the_output_and_is_retried_slowly() {
    let rx = Receiver::start();
    let (c, _dir) = failing_then_recovered(
        &rx,
        "rotated-token-1",
        "set outputs.hec.config.token to a valid",
        || rx.control(json!({"token": "rotated-token-1"})),
    );
    let text = c.log_text();
    let line = text
        .lines()
        .find(|l| l.contains("set outputs.hec.config.token"))
        .unwrap();
    assert!(line.contains(" ERROR "), "{line}");
    assert!(
        line.contains("status 403") && line.contains("Invalid token"),
        "{line}"
    );
}

#[test]
fn busy_indexer_is_left_alone_for_its_retry_after() {
    let rx = Receiver::start();
    rx.control(json!({"busy": 1_000_000, "retry_after": 5}));
    let (c, _dir) = failing_then_recovered(&rx, "tok", "is busy (status 503)", || {
        rx.control(json!({"busy": 0}))
    });
    let text = c.log_text();
    let line = text
        .lines()
        .find(|l| l.contains("is busy (status 503)"))
        .unwrap();
    assert!(
        line.contains(" WARNING ") && line.contains("retrying in 5.0 s"),
        "{line}"
    );
}
