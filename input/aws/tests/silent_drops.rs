//! Nothing the AWS pullers read is acknowledged in silence (moto + a real Redis, the real runtime): JSON-lines
//! CloudTrail objects give their events through both inputs, digest files are discarded and counted, an object
//! whose bucket does not exist is set aside at its first reception with one readable cause.

mod common;

use common::*;
use logferry_input_aws::{AwsInput, SqsCollectorInput};
use logferry_testkit::wait_until;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// `n` CloudTrail events, one JSON object per line, as Firehose delivers them.
fn json_lines_events(n: usize) -> (Vec<Value>, Vec<u8>) {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "eventVersion": "1.08",
                "eventTime": format!("2024-01-02T03:04:{:02}Z", i % 60),
                "eventSource": if i % 2 == 0 { "s3.amazonaws.com" } else { "ec2.amazonaws.com" },
                "eventName": "GetObject",
                "awsRegion": "eu-west-1",
                "recipientAccountId": "123456789012",
                "seq": i,
            })
        })
        .collect();
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    (events, gz(text.as_bytes()))
}

/// The event of each delivered message, `@devo_pulling_id` removed.
fn delivered(f: &Fixture) -> Vec<(String, Value)> {
    f.events()
        .into_iter()
        .map(|e| {
            let mut v: Value = serde_json::from_str(&e.message).unwrap();
            v.as_object_mut().unwrap().remove("@devo_pulling_id");
            (e.tag, v)
        })
        .collect()
}

#[test]
fn json_lines_cloudtrail_objects_give_every_event_through_audit_events_all() {
    let log = CapturedLog::install();
    let f = Fixture::start();
    let q = f.bucket_to_queue("firehose", "firehose-q");
    let (events, object) = json_lines_events(40);
    f.put(
        "firehose",
        "AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/02/firehose-1.gz",
        object,
    );
    // A 3 s long poll ends the cycle: it is idle time, left out of the cycle's event rate.
    let input = f.aws_input(json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "firehose-q", "auto_event_type": true, "sqs_wait_timeout": 3}))}}));
    let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
    wait_until(T, "every event and an empty queue", || {
        f.events().len() == events.len() && f.queue_depth(&q) == 0
    });
    let mut got = delivered(&f);
    got.sort_by_key(|(_, v)| v["seq"].as_u64());
    for ((tag, event), expected) in got.iter().zip(&events) {
        assert_eq!(event, expected);
        let kind = if expected["seq"].as_u64().unwrap() % 2 == 0 {
            "s3"
        } else {
            "ec2"
        };
        // Tagged as the `Records` path tags: event type from `eventSource`, account and region from the event.
        assert_eq!(
            tag,
            &format!("cloud.aws.cloudtrail.{kind}.123456789012.eu-west-1.1")
        );
    }
    assert!(f.dead_letters().is_empty(), "{:?}", f.dead_letters());
    wait_until(T, "the statistics of the cycle", || {
        !log.lines_with("Number of events generated and sent: 40;")
            .is_empty()
    });
    let stats = log
        .lines_with("Number of events generated and sent: 40;")
        .remove(0);
    let rate: f64 = stats
        .rsplit("Average of events per second: ")
        .next()
        .and_then(|r| r.trim_end_matches('.').parse().ok())
        .unwrap_or_else(|| panic!("no rate in {stats}"));
    // 40 events over the time spent working (well under 2 s), not over the cycle with its idle 3 s long poll.
    assert!(rate > 20.0, "{stats}");
}

#[test]
fn json_lines_cloudtrail_objects_give_every_event_through_sqs_collector_format_cloudtrail() {
    init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("lake", "lake-q");
    let (events, object) = json_lines_events(25);
    f.put("lake", "exports/2024/01/02/part-0001.json.gz", object);
    let input = json!({
        "base_url": q,
        "region": "us-east-1",
        "endpoint": f.moto.url(),
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "ack_messages": true,
        "request_period_in_seconds": 1,
        "services": {"trail": {"format": "cloudtrail", "tag": "my.app.sqs.trail"}},
    });
    let _run = run(specs(&SqsCollectorInput, &input).remove(0), |s| {
        f.factory(s)
    });
    wait_until(T, "every event and an empty queue", || {
        f.events().len() == events.len() && f.queue_depth(&q) == 0
    });
    let mut got = delivered(&f);
    got.sort_by_key(|(_, v)| v["seq"].as_u64());
    let got_events: Vec<Value> = got.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(got_events, events);
    assert!(got.iter().all(|(tag, _)| tag == "my.app.sqs.trail"));
}

#[test]
fn a_digest_file_without_key_regex_is_discarded_and_counted() {
    let log = CapturedLog::install();
    let f = Fixture::start();
    let q = f.bucket_to_queue("trail", "trail-q");
    let digest = json!({
        "awsAccountId": "123456789012",
        "digestStartTime": "2024-01-02T00:00:00Z",
        "digestEndTime": "2024-01-02T01:00:00Z",
        "digestS3Bucket": "trail",
        "logFiles": [],
    });
    let digest_key = "AWSLogs/123456789012/CloudTrail-Digest/eu-west-1/2024/01/02/123456789012_CloudTrail-Digest_eu-west-1_t_eu-west-1_20240102T010000Z.json.gz";
    f.put("trail", digest_key, gz(digest.to_string().as_bytes()));
    let input = f.aws_input(json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "trail-q", "workers": 1}))}}));
    let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
    wait_until(T, "a cycle that counted the digest as discarded", || {
        !log.lines_with("discarded files: 1,").is_empty()
    });
    assert_eq!(f.queue_depth(&q), 0, "the digest's message is acknowledged");
    assert!(f.events().is_empty(), "nothing delivered: {:?}", f.events());
    assert!(f.dead_letters().is_empty(), "{:?}", f.dead_letters());
    let named = log.lines_with(&format!("DEBUG Discarded s3://trail/{digest_key}"));
    assert_eq!(named.len(), 1, "one DEBUG line names the digest");
    // The queue is empty now: an idle cycle writes one INFO line, `Data collection completed`.
    const COMPLETED: &str = "INFO Data collection completed";
    let completed = log.lines_with(COMPLETED).len();
    wait_until(T, "two more idle cycles", || {
        log.lines_with(COMPLETED).len() >= completed + 2
    });
    let info = log.lines_with("INFO ");
    let ends: Vec<usize> = (info.iter().enumerate())
        .filter(|(_, l)| l.contains(COMPLETED))
        .map(|(i, _)| i)
        .collect();
    let idle_cycle = &info[ends[ends.len() - 2] + 1..ends[ends.len() - 1]];
    assert!(
        idle_cycle.is_empty(),
        "INFO lines of an idle cycle: {idle_cycle:?}"
    );
}

#[test]
fn an_object_of_a_missing_bucket_is_set_aside_at_its_first_reception() {
    init_log();
    let f = Fixture::start();
    let q = f.queue("gone-q");
    f.send(
        &q,
        &json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "no-such-bucket"}, "object": {"key": "AWSLogs/1/CloudTrail/x.json.gz"}}}]})
        .to_string(),
    );
    // The visibility timeout (120 s) is far longer than the deadline: a message left for a retry cannot come back.
    let input = f.aws_input(
        json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "gone-q"}))}}),
    );
    let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
    wait_until(T, "the message set aside and deleted", || {
        f.dead_letters().len() == 1 && f.queue_depth(&q) == 0
    });
    let (origin, reason) = &f.dead_letters()[0];
    assert_eq!(origin, "s3://no-such-bucket/AWSLogs/1/CloudTrail/x.json.gz");
    // One readable cause: the AWS error code and message once, no debug struct.
    assert!(reason.starts_with("NoSuchBucket: "), "{reason}");
    assert_eq!(reason.matches("NoSuchBucket").count(), 1, "{reason}");
    assert!(!reason.contains("Error {"), "{reason}");
}
