//! Resuming inside an object after a crash, through the real `logferry` binary: gzip CloudTrail objects announced by
//! bucket notifications in moto are pulled by `sqs_collector` (`format: cloudtrail`) and sent to a TCP syslog
//! receiver; the InputProcess is killed with SIGKILL in the middle of objects. Each flush saved the object's
//! progress in the same transaction as its events, so the redelivered message resumes where the kill left it:
//! every eventID arrives, and a kill re-sends at most one flush per worker (before: the whole part already sent).
//! An object re-uploaded with new content (a new ETag) under the same key is read whole, never skipped into.

mod common;

use common::{Fixture, LinesCollectorConfig};
use logferry_testkit::collector::{logferry_bin, Collector};
use logferry_testkit::{wait_until, LineSink, TempDir};
use std::collections::HashMap;
use std::time::Duration;

const TAG: &str = "my.app.sqs.resume";
/// The collector's queue limit: the InputProcess is never more than this many events ahead of the receiver, so a
/// kill at a share of the receiver's count falls inside an object.
const QUEUE_MAX: u64 = 5_000;
/// The most one flush of a sink holds: 8 wraps of `queue_wrap_max_size_in_messages` (100).
const FLUSH_EVENTS: u64 = 800;

/// A gzip `{"Records": [...]}` CloudTrail object of `records` records whose eventIDs are `<prefix>-<n>`.
fn cloudtrail_gz(records: u64, prefix: &str) -> Vec<u8> {
    cloudtrail_object(records, prefix, Shape::Records)
}

/// How an object holds its CloudTrail records.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `{"Records": [...]}`, as CloudTrail writes.
    Records,
    /// One record per line, as Firehose and CloudTrail Lake exports write.
    JsonLines,
}

/// A gzip CloudTrail object of `records` records whose eventIDs are `<prefix>-<n>`, in `shape`.
fn cloudtrail_object(records: u64, prefix: &str, shape: Shape) -> Vec<u8> {
    let mut text = String::with_capacity(records as usize * 330 + 16);
    let (open, separator, close) = match shape {
        Shape::Records => ("{\"Records\":[", ",", "]}"),
        Shape::JsonLines => ("", "\n", "\n"),
    };
    text.push_str(open);
    for n in 0..records {
        if n > 0 {
            text.push_str(separator);
        }
        text.push_str(&format!(
            "{{\"eventVersion\":\"1.08\",\"eventID\":\"{prefix}-{n}\",\"eventTime\":\"2026-12-03T10:{:02}:{:02}Z\",\
             \"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\",\"awsRegion\":\"us-east-1\",\
             \"sourceIPAddress\":\"10.0.{}.{}\",\"recipientAccountId\":\"123456789012\",\"requestID\":\"{:016x}\"}}",
            (n / 60) % 60,
            n % 60,
            (n >> 8) & 0xff,
            n & 0xff,
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ));
    }
    text.push_str(close);
    gzip_fast(text.as_bytes())
}

/// `data` gzipped by the system's `gzip -1`: the test's own (unoptimised) deflate took most of a minute for 600,000
/// records.
fn gzip_fast(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let out = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(data).expect("write to gzip"));
        child.wait_with_output().expect("gzip output")
    });
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// The collector reading `queue_url` into the receiver at `sink_port` with one worker, its state in the fixture's
/// Redis.
fn config(f: &Fixture, queue_url: &str, sink_port: u16) -> String {
    LinesCollectorConfig {
        persistence: format!("{{type: redis, url: \"{}\"}}", f.redis.url()),
        queue_url,
        tag: TAG,
        queue_max: QUEUE_MAX,
        sink_port,
        input_keys: &[],
        output_keys: &[],
    }
    .yaml(f)
    .replace("format: lines", "format: cloudtrail")
}

/// How many times each eventID arrived.
fn arrivals(sink: &LineSink) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for line in sink.lines() {
        if let Some(at) = line.find("\"eventID\":\"") {
            let rest = &line[at + 11..];
            let id = &rest[..rest.find('"').unwrap_or(rest.len())];
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Kills the InputProcess, waits for its restart, and makes the message it was processing visible again.
fn kill_and_redeliver(c: &Collector, f: &Fixture, queue_url: &str) {
    let pid = c.kill_child("InputProcess");
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    make_in_flight_visible(f, queue_url);
}

/// Progress entries left in Redis (`...:object:<bucket>/<key>`).
fn progress_entries(f: &Fixture) -> Vec<String> {
    let mut c = redis::Client::open(f.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("KEYS")
        .arg("logferry:t:state:*:object:*")
        .query(&mut c)
        .unwrap()
}

/// Three kills, at 20 %, 50 % and 80 % of three 200,000-record objects read one after the other.
#[test]
fn a_killed_input_resumes_inside_the_object_and_resends_at_most_one_flush() {
    killed_input_resumes_inside_objects(Shape::Records);
}

/// The same kills inside gzip JSON-lines objects (one record per line): the position counts lines.
#[test]
fn a_killed_input_resumes_inside_json_lines_objects() {
    killed_input_resumes_inside_objects(Shape::JsonLines);
}

fn killed_input_resumes_inside_objects(shape: Shape) {
    common::init_log();
    const OBJECTS: u64 = 3;
    const RECORDS: u64 = 200_000;
    const TOTAL: u64 = OBJECTS * RECORDS;
    let setup = std::time::Instant::now();
    let f = Fixture::start();
    let q = f.bucket_to_queue("resume-bucket", "resume-queue");
    for o in 0..OBJECTS {
        f.put(
            "resume-bucket",
            &format!("AWSLogs/123456789012/CloudTrail/us-east-1/2026/12/03/trail-{o}.json.gz"),
            cloudtrail_object(RECORDS, &format!("o{o}"), shape),
        );
    }
    let dir = TempDir::new("aws-resume");
    let sink = LineSink::start();
    let c = Collector::start(&logferry_bin(), dir.path(), &config(&f, &q, sink.port));
    let started = std::time::Instant::now();
    eprintln!(
        "objects made and uploaded in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let kills = [20, 50, 80];
    for percent in kills {
        let at = TOTAL * percent / 100;
        wait_until(
            Duration::from_secs(300),
            &format!("{at} events at the receiver"),
            || sink.count() as u64 >= at,
        );
        kill_and_redeliver(&c, &f, &q);
    }
    wait_until(
        Duration::from_secs(300),
        "every event at the receiver and every message deleted",
        || {
            sink.count() as u64 >= TOTAL
                && arrivals(&sink).len() as u64 == TOTAL
                && f.queue_depth(&q) == 0
        },
    );
    let counts = arrivals(&sink);
    let duplicates: u64 = counts.values().map(|&n| u64::from(n) - 1).sum();
    eprintln!(
        "{} kills over {TOTAL} records ({shape:?}) in {:.1} s: {duplicates} duplicates",
        kills.len(),
        started.elapsed().as_secs_f64()
    );
    for o in 0..OBJECTS {
        for n in [0, RECORDS / 2, RECORDS - 1] {
            assert!(
                counts.contains_key(&format!("o{o}-{n}")),
                "o{o}-{n} missing"
            );
        }
    }
    // One worker: at most one flush of it per kill.
    assert!(
        duplicates <= kills.len() as u64 * FLUSH_EVENTS,
        "{duplicates} duplicates for {} kills",
        kills.len()
    );
    let log = c.log_text();
    let resumed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Resuming s3://resume-bucket/AWSLogs/"))
        .collect();
    assert_eq!(resumed.len(), kills.len(), "{resumed:#?}\n{}", c.log_tail());
    for line in &resumed {
        let n: u64 = line
            .split(" at record ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no record number in {line}"));
        assert!(n > 0 && n < RECORDS, "{line}");
        assert!(
            line.contains(&format!(": {n} events already queued")),
            "{line}"
        );
    }
    // The entries went with their messages.
    assert_eq!(progress_entries(&f), Vec::<String>::new());
}

/// The object's content changed (re-uploaded under the same key) while its message was away: the saved position
/// belongs to the old ETag, so the new content is read from its start.
#[test]
fn an_object_with_a_new_etag_is_read_whole() {
    common::init_log();
    const OLD: u64 = 100_000;
    const NEW: u64 = 30_000;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/12/03/same-key.json.gz";
    let f = Fixture::start();
    let q = f.bucket_to_queue("etag-bucket", "etag-queue");
    f.put("etag-bucket", key, cloudtrail_gz(OLD, "old"));
    let dir = TempDir::new("aws-resume-etag");
    let sink = LineSink::start();
    let c = Collector::start(&logferry_bin(), dir.path(), &config(&f, &q, sink.port));
    wait_until(
        Duration::from_secs(300),
        "the first 10,000 events at the receiver",
        || sink.count() >= 10_000,
    );
    let pid = c.kill_child("InputProcess");
    assert!(
        !progress_entries(&f).is_empty(),
        "no progress saved while reading"
    );
    // No notification for the new upload: only the old message, with its saved position, announces the object.
    f.rt.block_on(
        f.s3.put_bucket_notification_configuration()
            .bucket("etag-bucket")
            .notification_configuration(
                aws_sdk_s3::types::NotificationConfiguration::builder().build(),
            )
            .send(),
    )
    .unwrap();
    f.put("etag-bucket", key, cloudtrail_gz(NEW, "new"));
    assert_eq!(f.queue_depth(&q), 1);
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    make_in_flight_visible(&f, &q);
    wait_until(
        Duration::from_secs(300),
        "every event of the new content at the receiver and the message deleted",
        || {
            let counts = arrivals(&sink);
            (0..NEW).all(|n| counts.contains_key(&format!("new-{n}"))) && f.queue_depth(&q) == 0
        },
    );
    let counts = arrivals(&sink);
    let new_duplicates: u32 = (0..NEW).map(|n| counts[&format!("new-{n}")] - 1).sum();
    assert_eq!(new_duplicates, 0, "the new content was read once, whole");
    let log = c.log_text();
    assert!(
        log.contains(&format!(
            "s3://etag-bucket/{key} changed since its progress was saved"
        )),
        "{}",
        c.log_tail()
    );
    assert!(
        !log.contains("Resuming s3://etag-bucket/"),
        "{}",
        c.log_tail()
    );
    assert_eq!(progress_entries(&f), Vec::<String>::new());
}

/// Makes every in-flight message visible again at once (standing in for the end of the visibility timeout).
fn make_in_flight_visible(f: &Fixture, queue_url: &str) {
    for m in f.moto_messages() {
        if let Some(receipt) = m["receipt_handle"].as_str() {
            let _ = f.rt.block_on(
                f.sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send(),
            );
        }
    }
}
