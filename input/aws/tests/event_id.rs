//! Stable event ids (`event_id: true`) against moto and a real Redis: 100,000 records in four objects (gzip and
//! plain, `{"Records": [...]}` documents and JSON lines) get one distinct `@logferry_id` each, and the same objects
//! read again by a second collector (another puller, the notifications sent again) get the same ids.

mod common;

use common::*;
use logferry_input_aws::AwsInput;
use logferry_testkit::wait_until;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const PER_OBJECT: u64 = 25_000;

/// The four objects: (key, body) with records `{"o": <object>, "n": <index>, ...}`.
fn objects() -> Vec<(String, Vec<u8>)> {
    let record = |o: u64, n: u64| {
        format!(
            "{{\"o\":{o},\"n\":{n},\"eventSource\":\"s3.amazonaws.com\",\"eventTime\":\"2026-12-03T10:00:00Z\",\"awsRegion\":\"us-east-1\"}}"
        )
    };
    let records_doc = |o: u64| {
        let records: Vec<String> = (0..PER_OBJECT).map(|n| record(o, n)).collect();
        format!("{{\"Records\":[{}]}}", records.join(",")).into_bytes()
    };
    let json_lines = |o: u64| {
        (0..PER_OBJECT)
            .map(|n| record(o, n) + "\n")
            .collect::<String>()
            .into_bytes()
    };
    let key = |o: u64, ext: &str| {
        format!("AWSLogs/123456789012/CloudTrail/us-east-1/2026/12/03/ids-{o}.{ext}")
    };
    vec![
        (key(0, "json.gz"), gz(&records_doc(0))),
        (key(1, "json"), records_doc(1)),
        (key(2, "jsonl.gz"), gz(&json_lines(2))),
        (key(3, "jsonl"), json_lines(3)),
    ]
}

/// Runs a new puller of `audit-events-all` with event ids on until it queued `expected` events and the queue is
/// empty; returns each record's id by (object, index), after checking every event has one.
fn collect_ids(f: &Fixture, q: &str, expected: u64) -> HashMap<(u64, u64), String> {
    let input = f.aws_input(json!({"services": {"audit-events-all": fast(json!({
        "sqs_queue_name": "ids-q", "event_id": true}))}}));
    let run = run(specs(&AwsInput, &input).remove(0), |stop| f.factory(stop));
    wait_until(
        Duration::from_secs(120),
        "every record queued and every message deleted",
        || f.queued_events() >= expected && f.queue_depth(q) == 0,
    );
    drop(run);
    let mut ids = HashMap::new();
    for e in f.events() {
        let v: Value = serde_json::from_str(&e.message).expect("a JSON event");
        let id = v["@logferry_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no @logferry_id in {}", e.message))
            .to_owned();
        let at = (v["o"].as_u64().unwrap(), v["n"].as_u64().unwrap());
        assert!(ids.insert(at, id).is_none(), "{at:?} twice");
    }
    assert_eq!(ids.len() as u64, expected);
    ids
}

#[test]
fn ids_are_distinct_and_the_same_for_a_second_collector() {
    common::init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("ids", "ids-q");
    let objects = objects();
    let total = PER_OBJECT * objects.len() as u64;
    for (key, body) in &objects {
        f.put("ids", key, body.clone());
    }
    let first = collect_ids(&f, &q, total);
    let distinct: std::collections::HashSet<&String> = first.values().collect();
    assert_eq!(distinct.len() as u64, total, "two records share an id");

    // A second collector reads the same objects: the notifications again, a new puller, an empty queue.
    let mut c = redis::Client::open(f.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("DEL")
        .arg(f.keys.stream(logferry::event::EventClass::Standard))
        .arg(f.keys.stream_size(logferry::event::EventClass::Standard))
        .query::<()>(&mut c)
        .unwrap();
    for (key, _) in &objects {
        f.send(
            &q,
            &json!({"Records": [{"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "ids"}, "object": {"key": key}}}]})
            .to_string(),
        );
    }
    let second = collect_ids(&f, &q, total);
    assert_eq!(first, second, "the same records got other ids");
}
