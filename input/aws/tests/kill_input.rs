//! Through the real `logferry` binary (built by this test with `cargo build -p logferry-supervisor`): a large gzip
//! object announced by a bucket notification in moto is pulled by `sqs_collector` into the embedded Redis and sent
//! to a TCP syslog receiver; the InputProcess is killed with SIGKILL in the middle of the object. The supervisor
//! restarts it, the message (never deleted) comes back, and every line of the object reaches the receiver.

mod common;

use common::{seq_lines_gz, Fixture, LinesCollectorConfig};
use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::{wait_until, LineSink, TempDir};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const TAG: &str = "my.app.sqs.kill";
/// Lines of the object (~250 bytes each: ~50 MB uncompressed).
const LINES: u64 = 200_000;
/// The collector's queue limit: the InputProcess can never be more than this many events ahead of the receiver.
const QUEUE_MAX: u64 = 5_000;

fn config(dir: &Path, f: &Fixture, queue_url: &str, sink_port: u16) -> String {
    LinesCollectorConfig {
        persistence: format!(
            "{{type: embedded, directory: \"{}\"}}",
            dir.join("state").display()
        ),
        queue_url,
        tag: TAG,
        queue_max: QUEUE_MAX,
        sink_port,
        input_keys: &[],
        output_keys: &[],
    }
    .yaml(f)
}

/// Sequence numbers received (duplicates collapse).
fn seqs(lines: &[String]) -> BTreeSet<u64> {
    collector::seqs(lines.iter().map(String::as_str), TAG)
}

/// Receipt handles of the messages moto holds.
fn receipt_handles(f: &Fixture) -> Vec<String> {
    f.moto_messages()
        .iter()
        .filter_map(|m| m["receipt_handle"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn killing_the_input_process_in_the_middle_of_an_object_loses_nothing() {
    common::init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("kill-bucket", "kill-queue");
    f.put(
        "kill-bucket",
        "logs/big object.json.gz",
        seq_lines_gz(LINES, "kill-test"),
    );
    let dir = TempDir::new("aws-kill-in");
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(dir.path(), &f, &q, sink.port),
    );

    wait_until(
        Duration::from_secs(180),
        "the first 20,000 lines at the receiver",
        || sink.count() >= 20_000,
    );
    let pid = c.kill_child("InputProcess");
    let at_kill = sink.count() as u64;
    // The InputProcess is at most QUEUE_MAX events ahead of the receiver: it was in the middle of the object,
    // and the message was not deleted.
    assert!(
        at_kill + QUEUE_MAX < LINES,
        "{at_kill} lines already received: not the middle of the object"
    );
    assert_eq!(
        f.queue_depth(&q),
        1,
        "the message must still be in the queue"
    );
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    // Stand in for the end of the 120 s visibility timeout: make the in-flight message visible now.
    for receipt in receipt_handles(&f) {
        let _ = f.rt.block_on(
            f.sqs
                .change_message_visibility()
                .queue_url(&q)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send(),
        );
    }
    wait_until(
        Duration::from_secs(300),
        "every line of the object at the receiver and the message deleted",
        || seqs(&sink.lines()).len() as u64 == LINES && f.queue_depth(&q) == 0,
    );
    let lines = sink.lines();
    let got = seqs(&lines);
    eprintln!(
        "killed with {at_kill} of {LINES} lines received; {} lines in all ({} duplicates re-sent after the restart)",
        lines.len(),
        lines.len() as u64 - LINES
    );
    assert_eq!(got.first(), Some(&0));
    assert_eq!(got.last(), Some(&(LINES - 1)));
    let log = c.log_text();
    assert!(
        log.matches("InputProcess started (pid ").count() >= 2,
        "no restart in the log:\n{log}"
    );
}
