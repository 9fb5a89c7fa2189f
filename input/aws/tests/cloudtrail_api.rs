//! `audit-events-all` with `types: [audit_apis]` (CloudTrail LookupEvents) through the real `logferry` binary,
//! against `tests/servers/cloudtrail_server.py`: a local server speaking CloudTrail's JSON 1.1 wire format (and
//! STS GetCallerIdentity), checking every request's SigV4 signature with botocore, paging by NextToken and
//! answering ThrottlingException beyond its requests-per-second budget. The server itself is proven with boto3's
//! own client first.

mod common;

use common::{LocalServer, KEY, SECRET};
use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::{wait_until, LineSink, TempDir};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TAG_MARK: &str = "cloud.aws.cloudtrail.";

/// One event of the server's history.
struct Ev {
    seq: u64,
    time: i64,
    source: &'static str,
    /// The region whose event history holds it (the server answers a request with its region's events).
    region: &'static str,
}

/// The local LookupEvents server (`tests/servers/cloudtrail_server.py`).
struct CloudTrailServer(LocalServer);

impl CloudTrailServer {
    fn start(dir: &Path, events: &[Ev], rate: f64) -> CloudTrailServer {
        let file = dir.join("events.jsonl");
        let mut text = String::new();
        for e in events {
            text.push_str(
                &json!({"id": format!("ev-{}", e.seq), "seq": e.seq, "time": e.time,
                    "source": e.source, "name": if e.seq % 10 == 9 { "ConsoleLogin" } else { "GetObject" },
                    "region": e.region, "account": "123456789012"})
                .to_string(),
            );
            text.push('\n');
        }
        std::fs::write(&file, text).unwrap();
        let rate = rate.to_string();
        let options: [(&str, &OsStr); 2] = [
            ("--events", file.as_os_str()),
            ("--rate", OsStr::new(&rate)),
        ];
        CloudTrailServer(LocalServer::start_signed("cloudtrail_server.py", &options))
    }

    fn url(&self) -> String {
        self.0.url()
    }

    fn lookups(&self, outcome: &str) -> usize {
        self.0
            .requests()
            .iter()
            .filter(|r| r["target"] == "LookupEvents" && r["outcome"] == outcome)
            .count()
    }
}

/// Now, in whole hours, minus `hours`.
fn hours_ago(hours: i64) -> i64 {
    let now = chrono::Utc::now().timestamp();
    now - now % 3600 - hours * 3600
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

/// A collector config with one or more `aws` inputs reading the server (`(input name, secret, start_time)`).
fn config(dir: &Path, endpoint: &str, sink_port: u16, inputs: &[(&str, &str, i64)]) -> String {
    config_with(dir, endpoint, sink_port, inputs, "")
}

/// [`config`] with `more` (YAML lines indented by 8) added to each `audit-events-all` service.
fn config_with(
    dir: &Path,
    endpoint: &str,
    sink_port: u16,
    inputs: &[(&str, &str, i64)],
    more: &str,
) -> String {
    let names: Vec<(&str, &str)> = inputs.iter().map(|(n, s, _)| (*n, *s)).collect();
    common::inputs_collector_yaml(dir, "ct", endpoint, sink_port, &names, |i| {
        format!(
            "      audit-events-all:\n        types: [audit_apis]\n        start_time: \"{}\"\n        gap_until_now_in_minutes: 0\n        time_slot_in_hours: 1\n        drop_event_names: [ConsoleLogin]\n        request_period_in_seconds: 5\n{more}",
            rfc3339(inputs[i].2)
        )
    })
}

/// How many times each seq arrived.
fn arrivals(lines: &[String]) -> BTreeMap<u64, usize> {
    let mut n = BTreeMap::new();
    for l in lines.iter().filter(|l| l.contains(TAG_MARK)) {
        if let Some(seq) = collector::seqs([l.as_str()], TAG_MARK).into_iter().next() {
            *n.entry(seq).or_insert(0) += 1;
        }
    }
    n
}

/// `n` S3 events of us-east-1, `step` seconds apart from `first`.
fn spaced(n: u64, first: i64, step: i64) -> Vec<Ev> {
    (0..n)
        .map(|i| Ev {
            seq: i,
            time: first + i as i64 * step,
            source: "s3.amazonaws.com",
            region: "us-east-1",
        })
        .collect()
}

/// Seqs that are not dropped (`ConsoleLogin`, every seq ending in 9, is in `drop_event_names`).
fn kept(events: &[Ev]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.seq)
        .filter(|s| s % 10 != 9)
        .collect()
}

#[test]
fn the_server_answers_boto3_as_cloudtrail_does() {
    let dir = TempDir::new("ct-boto3");
    let start = hours_ago(3);
    let events: Vec<Ev> = (0..120)
        .map(|i| Ev {
            seq: i,
            time: start + i as i64 * 60,
            region: "us-east-1",
            source: if i % 2 == 0 {
                "s3.amazonaws.com"
            } else {
                "iam.amazonaws.com"
            },
        })
        .collect();
    let server = CloudTrailServer::start(dir.path(), &events, 100.0);
    let script = format!(
        r#"
import boto3, datetime
kw = dict(endpoint_url="{url}", region_name="us-east-1", aws_access_key_id="{KEY}", aws_secret_access_key="{SECRET}")
ct = boto3.client("cloudtrail", **kw)
t = lambda s: datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
pages = list(ct.get_paginator("lookup_events").paginate(StartTime=t({start}), EndTime=t({end})))
assert len(pages) == 3, len(pages)
assert sum(len(p["Events"]) for p in pages) == 120
edge = ct.lookup_events(StartTime=t({start} + 60), EndTime=t({start} + 120))["Events"]
assert sorted(e["EventId"] for e in edge) == ["ev-1", "ev-2"], edge
s3 = ct.lookup_events(LookupAttributes=[{{"AttributeKey": "EventSource", "AttributeValue": "s3.amazonaws.com"}}],
                      StartTime=t({start}), EndTime=t({end}))
assert len(s3["Events"]) == 50 and all(e["EventSource"] == "s3.amazonaws.com" for e in s3["Events"])
assert boto3.client("sts", **kw).get_caller_identity()["Account"] == "123456789012"
other = boto3.client("cloudtrail", **dict(kw, region_name="eu-west-1"))
assert other.lookup_events(StartTime=t({start}), EndTime=t({end}))["Events"] == [], "another region's history"
bad = boto3.client("cloudtrail", **dict(kw, aws_secret_access_key="wrong"))
try:
    bad.lookup_events()
    raise SystemExit("a wrong secret was accepted")
except bad.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidSignatureException", e
print("ok")
"#,
        url = server.url(),
        end = start + 119 * 60,
    );
    common::assert_python_ok(&script, "boto3 against the server");
}

/// Twelve hourly slots of history: 60 events an hour, one event exactly on each slot edge, and one slot of
/// 10,000 events. The InputProcess is killed (SIGKILL) in the middle of the big slot: the restarted one resumes at
/// that slot (the earlier slots are not read again: each of their events arrives exactly once, edges included),
/// and every event arrives.
#[test]
fn a_backfill_killed_in_a_slot_resumes_at_that_slot_and_delivers_every_event() {
    let dir = TempDir::new("ct-backfill");
    let start = hours_ago(12);
    const BIG_SLOT: i64 = 4;
    let mut events = Vec::new();
    let mut seq = 0;
    let mut push = |time: i64, events: &mut Vec<Ev>| {
        events.push(Ev {
            seq,
            time,
            region: "us-east-1",
            source: "s3.amazonaws.com",
        });
        seq += 1;
    };
    for hour in 0..12 {
        let slot_start = start + hour * 3600;
        // One event exactly on the slot's start edge (the end edge of the slot before).
        push(slot_start, &mut events);
        let n = if hour == BIG_SLOT { 10_000 } else { 60 };
        for i in 0..n {
            push(slot_start + 1 + (i * 3598 / n), &mut events);
        }
    }
    let server = CloudTrailServer::start(dir.path(), &events, 2.0);
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(
            dir.path(),
            &server.url(),
            sink.port,
            &[("aws", SECRET, start)],
        ),
    );
    let before_big = kept(&events)
        .into_iter()
        .filter(|s| events[*s as usize].time <= start + BIG_SLOT * 3600)
        .count();
    wait_until(
        Duration::from_secs(120),
        "the slots before the big one, and part of it, at the receiver",
        || sink.count() >= before_big + 1_500,
    );
    let pid = c.kill_child("InputProcess");
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    let want = kept(&events);
    wait_until(
        Duration::from_secs(300),
        "every kept event at the receiver",
        || arrivals(&sink.lines()).len() == want.len(),
    );
    let got = arrivals(&sink.lines());
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), want);
    for (seq, n) in &got {
        let time = events[*seq as usize].time;
        if time <= start + BIG_SLOT * 3600 {
            assert_eq!(
                *n, 1,
                "seq {seq} (time {time}) of a slot committed before the kill arrived {n} times"
            );
        }
    }
    // `logferry status --json` shows the backfill of the restarted process done (its share and time left).
    let backfill =
        || collector::status_backfill(&dir.path().join("config.yaml"), "audit-events-all");
    wait_until(
        Duration::from_secs(30),
        "status showing the backfill done",
        || {
            backfill()
                .is_some_and(|b| b["done_ratio"] == json!(1.0) && b["seconds_left"] == json!(0.0))
        },
    );
    let screen = Command::new(logferry_bin())
        .args(["status", "--config"])
        .arg(dir.path().join("config.yaml"))
        .output()
        .expect("run logferry status");
    let screen = String::from_utf8_lossy(&screen.stdout);
    assert!(
        screen.contains("\n  backfill: 100.0% done, 0.0s left\n"),
        "{screen}"
    );
    let log = c.log_text();
    assert!(log.contains("Resuming the event history at"), "{log}");
    assert!(
        log.contains("Total number of time slots to be processed: 1"),
        "{log}"
    );
    assert!(
        log.contains("Number of processed time slots so far: "),
        "{log}"
    );
    assert!(
        log.contains("messages (total/dropped/other_region/duplicated/generated): "),
        "{log}"
    );
    assert!(
        log.contains("AwsCloudtrailApiPuller(aws,100,audit-events-all,predefined,us-east-1)"),
        "{log}"
    );
    assert_eq!(
        server.lookups("ThrottlingException"),
        0,
        "the client kept within 2 requests/s"
    );
}

/// The server allows 1 request/s while the puller asks at 2: throttled pages are asked again, none is lost. A
/// second input with a wrong secret fails its setup with an error naming its service, and the first one runs on.
/// Then `start_time` is moved back: the state is reset and the older events arrive.
#[test]
fn throttling_loses_no_page_a_wrong_secret_names_its_service_and_a_new_start_time_resets() {
    let t0 = std::time::Instant::now();
    let dir = TempDir::new("ct-throttle");
    let start = hours_ago(3);
    let events = spaced(600, start - 3600, 18);
    let server = CloudTrailServer::start(dir.path(), &events, 1.0);
    eprintln!("{:?} server started", t0.elapsed());
    let sink = LineSink::start();
    let mut c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(
            dir.path(),
            &server.url(),
            sink.port,
            &[
                ("aws", SECRET, start),
                ("aws_wrong", "not-the-secret", start),
            ],
        ),
    );
    let after_start: Vec<u64> = kept(&events)
        .into_iter()
        .filter(|s| events[*s as usize].time >= start)
        .collect();
    wait_until(
        Duration::from_secs(120),
        "every event after start_time at the receiver",
        || arrivals(&sink.lines()).len() == after_start.len(),
    );
    eprintln!("{:?} every event after start_time arrived", t0.elapsed());
    assert_eq!(
        arrivals(&sink.lines()).keys().copied().collect::<Vec<_>>(),
        after_start
    );
    assert!(
        server.lookups("ThrottlingException") > 0,
        "the server never throttled"
    );
    c.wait_log(
        "SetupError(101): service \"audit-events-all\"",
        Duration::from_secs(30),
    );
    let log = c.log_text();
    assert!(
        log.contains("AwsCloudtrailApiPullerSetup(aws_wrong,aws_wrong#101,audit-events-all#predefined,us-east-1)"),
        "{log}"
    );
    assert!(log.contains("SignatureDoesNotMatch"), "{log}");
    assert!(
        log.contains("LookupEvents throttled (ThrottlingException: Rate exceeded)"),
        "{log}"
    );
    eprintln!("{:?} setup error seen", t0.elapsed());
    c.stop();
    eprintln!("{:?} stopped", t0.elapsed());

    // start_time one hour earlier: the persistence is reset and the hour before arrives too.
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(
            dir.path(),
            &server.url(),
            sink.port,
            &[("aws", SECRET, start - 3600)],
        ),
    );
    let all = kept(&events);
    wait_until(
        Duration::from_secs(120),
        "the events of the hour before the first start_time",
        || arrivals(&sink.lines()).len() == all.len(),
    );
    eprintln!("{:?} the hour before arrived", t0.elapsed());
    let log = c.log_text();
    assert!(log.contains("The persistence has been reset"), "{log}");
}

/// A proxy in front of the server answers every third LookupEvents with HTTP 500 (InternalFailure): each failed
/// request is sent again (the same page), no page is lost and none is read twice.
#[test]
fn server_errors_are_retried_on_the_same_page_and_lose_nothing() {
    let dir = TempDir::new("ct-5xx");
    let start = hours_ago(3);
    let events = spaced(600, start, 18);
    let server = CloudTrailServer::start(dir.path(), &events, 100.0);
    let proxy = common::fault_proxy(&server.url(), "LookupEvents", 0.0, 3);
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(
            dir.path(),
            &proxy.url(),
            sink.port,
            &[("aws", SECRET, start)],
        ),
    );
    let want = kept(&events);
    wait_until(Duration::from_secs(120), "every kept event", || {
        arrivals(&sink.lines()).len() == want.len()
    });
    let got = arrivals(&sink.lines());
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), want);
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read twice: {twice:?}");
    let faults = proxy.http("GET", "/_faults", "");
    assert!(faults["failed"].as_u64().unwrap() >= 4, "{faults}");
    let log = c.log_text();
    assert!(
        log.contains("LookupEvents failed (InternalFailure: The request processing has failed"),
        "{log}"
    );
    assert!(log.contains("attempt 2 of 5"), "{log}");
}

/// With `event_id: true` every event carries `@logferry_id` from its eventId: two collectors reading the same
/// history give the same ids, different events different ones.
#[test]
fn stable_ids_come_from_the_event_id() {
    let dir = TempDir::new("ct-ids");
    let start = hours_ago(2);
    let events: Vec<Ev> = (0..300)
        .map(|seq| Ev {
            seq,
            time: start + 1 + seq as i64 * 20,
            source: "s3.amazonaws.com",
            region: "us-east-1",
        })
        .collect();
    let server = CloudTrailServer::start(dir.path(), &events, 10.0);
    let want = kept(&events).len();
    let ids = |sink: &LineSink| -> BTreeMap<u64, String> {
        sink.lines()
            .iter()
            .filter(|l| l.contains(TAG_MARK))
            .filter_map(|l| {
                let seq = collector::seqs([l.as_str()], TAG_MARK).into_iter().next()?;
                let rest = &l[l.find("\"@logferry_id\":\"")? + 16..];
                Some((seq, rest[..rest.find('"')?].to_owned()))
            })
            .collect()
    };
    let (dir_a, dir_b) = (TempDir::new("ct-ids-a"), TempDir::new("ct-ids-b"));
    let (sink_a, sink_b) = (LineSink::start(), LineSink::start());
    let run = |dir: &TempDir, sink: &LineSink| {
        let inputs = [("aws", SECRET, start)];
        let config = config_with(
            dir.path(),
            &server.url(),
            sink.port,
            &inputs,
            "        event_id: true\n",
        );
        Collector::start(&logferry_bin(), dir.path(), &config)
    };
    let (a, b) = (run(&dir_a, &sink_a), run(&dir_b, &sink_b));
    wait_until(Duration::from_secs(120), "every event at both", || {
        ids(&sink_a).len() == want && ids(&sink_b).len() == want
    });
    drop((a, b));
    let (first, second) = (ids(&sink_a), ids(&sink_b));
    assert_eq!(first, second, "the same events, the same ids");
    let distinct: std::collections::HashSet<&String> = first.values().collect();
    assert_eq!(distinct.len(), want, "different events, different ids");
}

/// `regions: [us-east-1, eu-west-1]` runs one puller per region against the regional server (each region's history
/// answers requests signed for that region). eu-west-1 has a short history and finishes; us-east-1 has a slot of
/// 3,000 events and is killed (SIGKILL of the InputProcess) in the middle of it. After the restart eu-west-1 resumes
/// where it stood (its state untouched: none of its events is read again) and us-east-1 at its big slot; every
/// event arrives with its own region in the tag.
#[test]
fn two_regions_run_one_puller_each_and_keep_their_own_state_across_a_kill() {
    let dir = TempDir::new("ct-regions");
    const HOURS: i64 = 8;
    const BIG_SLOT: i64 = 3;
    let start = hours_ago(HOURS);
    let mut events = Vec::new();
    for (region, big) in [("us-east-1", 3_000), ("eu-west-1", 40)] {
        for hour in 0..HOURS {
            let n = if hour == BIG_SLOT { big } else { 40 };
            for i in 0..n {
                events.push(Ev {
                    seq: events.len() as u64,
                    time: start + hour * 3600 + i * 3599 / n,
                    source: "s3.amazonaws.com",
                    region,
                });
            }
        }
    }
    let of_region = |region: &str| -> Vec<u64> {
        kept(&events)
            .into_iter()
            .filter(|s| events[*s as usize].region == region)
            .collect()
    };
    let server = CloudTrailServer::start(dir.path(), &events, 2.0);
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config_with(
            dir.path(),
            &server.url(),
            sink.port,
            &[("aws", SECRET, start)],
            "        regions: [us-east-1, eu-west-1]\n",
        ),
    );
    let eu = of_region("eu-west-1");
    let us_before_big = of_region("us-east-1")
        .into_iter()
        .filter(|s| events[*s as usize].time < start + BIG_SLOT * 3600)
        .count();
    // eu-west-1's backfill done (its last slot committed before this line), us-east-1 inside its big slot.
    wait_until(
        Duration::from_secs(120),
        "eu-west-1 done and us-east-1 into its big slot",
        || {
            let got = arrivals(&sink.lines());
            c.log_text().lines().any(|l| {
                l.contains("audit-events-all,predefined,eu-west-1)") && l.contains("(100.0%)")
            }) && eu.iter().all(|s| got.contains_key(s))
                && got.len() >= eu.len() + us_before_big + 500
        },
    );
    let pid = c.kill_child("InputProcess");
    let seen_before_kill = server.0.requests().len();
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    let want = kept(&events);
    wait_until(
        Duration::from_secs(300),
        "every kept event of both regions at the receiver",
        || arrivals(&sink.lines()).len() == want.len(),
    );
    let lines = sink.lines();
    let got = arrivals(&lines);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), want);
    for (seq, n) in &got {
        let e = &events[*seq as usize];
        if e.region == "eu-west-1" || e.time < start + BIG_SLOT * 3600 {
            assert_eq!(
                *n, 1,
                "seq {seq} ({}, time {}) committed before the kill arrived {n} times",
                e.region, e.time
            );
        }
    }
    // Each event carries its own region: in the tag and in the event.
    for line in lines.iter().filter(|l| l.contains(TAG_MARK)) {
        let Some(seq) = collector::seqs([line.as_str()], TAG_MARK)
            .into_iter()
            .next()
        else {
            continue;
        };
        let region = events[seq as usize].region;
        assert!(
            line.contains(&format!(".{region}."))
                && line.contains(&format!("\"awsRegion\":\"{region}\"")),
            "seq {seq} of {region}: {line}"
        );
    }
    // After the restart eu-west-1 asks nothing older than the end of its history (its state was kept).
    let requests = server.0.requests();
    let eu_after: Vec<&serde_json::Value> = requests[seen_before_kill..]
        .iter()
        .filter(|r| r["target"] == "LookupEvents" && r["region"] == "eu-west-1")
        .collect();
    assert!(
        eu_after
            .iter()
            .all(|r| r["start"].as_f64().unwrap() >= (start + HOURS * 3600) as f64),
        "eu-west-1 read its history again after the restart: {eu_after:?}"
    );
    let log = c.log_text();
    for region in ["us-east-1", "eu-west-1"] {
        let thread =
            format!("AwsCloudtrailApiPuller(aws,100,audit-events-all,predefined,{region})");
        assert!(
            log.lines()
                .any(|l| l.contains(&thread) && l.contains("Resuming the event history at")),
            "{region} did not resume from its own state: {log}"
        );
    }
    assert!(
        log.contains(&format!(
            "Resuming the event history at {}",
            rfc3339(start + BIG_SLOT * 3600)
        )),
        "us-east-1 did not resume at its big slot: {log}"
    );
    assert_eq!(
        server.lookups("ThrottlingException"),
        0,
        "each region kept within its 2 requests/s"
    );
}
