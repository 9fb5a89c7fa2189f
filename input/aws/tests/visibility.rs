//! Through the real `logferry` binary (built by this test with `cargo build -p logferry-supervisor`): a gzip object
//! announced by a bucket notification in moto is pulled by `sqs_collector` with `sqs_visibility_timeout: 120` while
//! the syslog receiver reads nothing, so the InputProcess is stuck in the middle of the object (the queue in Redis is
//! full). Within the first timeout the puller extends the message's visibility: moto's model shows it invisible
//! until well past 120 s after it was handed out, received once, and a second SQS consumer gets nothing. Then the
//! receiver reads: every line arrives once and the message is deleted. Without the puller's `VisibilityKeeper` the
//! message's `visible_at` stays at 120 s and the test fails.

mod common;

use common::{seq_lines_gz, Fixture, LinesCollectorConfig};
use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::{wait_until, LineSink, TempDir};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TAG: &str = "my.app.sqs.visibility";
const BUCKET: &str = "visibility-bucket";
const KEY: &str = "logs/large object.json.gz";
/// How the key's name appears in the notification's body (form-encoded).
const KEY_IN_BODY: &str = "large+object.json.gz";
/// Lines of the object (~250 bytes each: ~50 MB uncompressed), far more than the queue limit plus the socket
/// buffers between the collector and the receiver.
const LINES: u64 = 200_000;
/// The collector's queue limit: the InputProcess waits for room once this many events are undelivered.
const QUEUE_MAX: u64 = 1_000;
/// `sqs_visibility_timeout` (the minimum the configuration accepts).
const VISIBILITY_S: u64 = 120;

fn config(f: &Fixture, queue_url: &str, sink_port: u16) -> String {
    LinesCollectorConfig {
        persistence: format!("{{type: redis, url: \"{}\"}}", f.redis.url()),
        queue_url,
        tag: TAG,
        queue_max: QUEUE_MAX,
        sink_port,
        input_keys: &[&format!("sqs_visibility_timeout: {VISIBILITY_S}")],
        output_keys: &["send_timeout_in_seconds: 300"],
    }
    .yaml(f)
}

/// The object's notification as moto holds it, if it was not deleted.
fn object_message(f: &Fixture) -> Option<Value> {
    f.moto_messages()
        .into_iter()
        .find(|m| m["body"].as_str().is_some_and(|b| b.contains(KEY_IN_BODY)))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// A second consumer's ReceiveMessage (1 s long poll): panics if it gets anything.
fn assert_second_consumer_gets_nothing(f: &Fixture, q: &str, since_received: Duration) {
    let r =
        f.rt.block_on(
            f.sqs
                .receive_message()
                .queue_url(q)
                .visibility_timeout(VISIBILITY_S as i32)
                .wait_time_seconds(1)
                .send(),
        )
        .expect("ReceiveMessage of the second consumer");
    if let Some(m) = r.messages().first() {
        panic!(
            "a second consumer received message {:?} {:.1} s after the puller received it, while the puller was \
             still processing it: its visibility timeout ({VISIBILITY_S} s) was not extended",
            m.message_id(),
            since_received.as_secs_f64()
        );
    }
}

#[test]
fn visibility_timeout_is_extended_while_a_large_object_is_processed() {
    common::init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue(BUCKET, "visibility-queue");
    f.put(BUCKET, KEY, seq_lines_gz(LINES, "visibility-test"));
    let dir = TempDir::new("aws-visibility");
    let sink = LineSink::start_paused();
    let c = Collector::start(&logferry_bin(), dir.path(), &config(&f, &q, sink.port));

    // The start mark: when moto handed the object's message to the puller.
    let mut received_at_ms = 0.0;
    wait_until(
        Duration::from_secs(120),
        "the object's message received by the puller",
        || {
            let first =
                object_message(&f).and_then(|m| m["approximate_first_receive_timestamp"].as_f64());
            received_at_ms = first.unwrap_or(0.0);
            first.is_some()
        },
    );
    let since_received = || Duration::from_millis((now_ms() - received_at_ms).max(0.0) as u64);
    // The message must stay in flight past its first timeout: the keeper's first extension (at half the timeout)
    // moves moto's `visible_at` well past `received + timeout`. SQS hands a message out only once `visible_at` has
    // passed, so this proves what waiting past the first timeout proved (the keeper's repeated extensions are
    // timed by tests/renewals.rs with a 2 s timeout). Until then the puller stays in the middle of the object (the
    // paused receiver read nothing, so at most the socket buffers and the queue limit of the ~50 MB object left the
    // collector) and the message is not deleted.
    let past_first_timeout = received_at_ms + 1.25 * (VISIBILITY_S * 1000) as f64;
    let mut visible_at = 0.0;
    wait_until(
        Duration::from_secs(VISIBILITY_S),
        "the visibility extended past the first timeout",
        || {
            assert_eq!(sink.count(), 0, "the paused receiver read something");
            let m = object_message(&f).unwrap_or_else(|| {
                panic!(
                    "the message was deleted before the object was delivered\n{}",
                    c.log_tail()
                )
            });
            visible_at = m["visible_at"].as_f64().unwrap_or(0.0);
            visible_at >= past_first_timeout
        },
    );
    let held = since_received();
    assert!(
        held < Duration::from_secs(VISIBILITY_S),
        "extended only after the first timeout ({held:?})"
    );
    assert_second_consumer_gets_nothing(&f, &q, held);
    let m = object_message(&f).expect("the message in moto");
    assert_eq!(
        m["visible"],
        Value::Bool(false),
        "message visible {held:?} after it was received: {m}"
    );
    assert_eq!(
        m["approximate_receive_count"], 1,
        "message received more than once: {m}"
    );
    let extended =
        c.log_count("Extended the visibility timeout of the message being processed by 120 s");
    eprintln!(
        "{:.1} s after the message was received: invisible until {:.1} s after it",
        held.as_secs_f64(),
        (visible_at - received_at_ms) / 1000.0
    );
    assert!(
        extended >= 1,
        "no extension line in the log\n{}",
        c.log_tail()
    );
    // The worker is waiting for room in the queue, which holds undelivered events (said after 60 s of waiting).
    wait_until(
        Duration::from_secs(90),
        "the puller reporting that it waits for room in the queue",
        || c.log_count("is full: the producer has been waiting for") >= 1,
    );
    assert!(f.queued_events() > 0);
    assert!(object_message(&f).is_some() && sink.count() == 0);

    // The receiver reads: every line arrives once, and the message is deleted only then.
    sink.resume();
    c.wait_all_seqs(LINES, Duration::from_secs(300), || {
        collector::seqs(sink.lines().iter().map(String::as_str), TAG)
    });
    wait_until(Duration::from_secs(60), "the message deleted", || {
        f.queue_depth(&q) == 0
    });
    let delivered = sink.lines().iter().filter(|l| l.contains(TAG)).count() as u64;
    assert_eq!(
        delivered, LINES,
        "lines delivered more than once: the object was processed again"
    );
    assert_eq!(
        c.log_count("Could not extend the visibility timeout"),
        0,
        "{}",
        c.log_tail()
    );
}
