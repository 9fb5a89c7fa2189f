//! `aws-guardduty` through the real `logferry` binary, against `tests/servers/guardduty_server.py`: a local
//! server speaking GuardDuty's REST-JSON wire format (and STS GetCallerIdentity), checking every request's SigV4
//! signature with botocore, paging with nextToken and answering TooManyRequestsException beyond its budget. The
//! server itself is proven with boto3's own guardduty client first.

mod common;

use common::{LocalServer, KEY, SECRET};
use logferry_testkit::collector::{logferry_bin, Collector};
use logferry_testkit::{wait_until, LineSink, TempDir};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

const TAG: &str = "cloud.aws.guardduty.findings";

/// One finding of the server: (detector, seq, updatedAt in epoch ms).
struct Finding {
    detector: &'static str,
    seq: u64,
    updated: i64,
}

/// The local GuardDuty server (`tests/servers/guardduty_server.py`).
struct GuardDutyServer(LocalServer);

impl GuardDutyServer {
    fn start(dir: &Path, findings: &[Finding], detectors: &[&str], rate: f64) -> GuardDutyServer {
        let file = dir.join("findings.jsonl");
        let mut text = String::new();
        for f in findings {
            let line = json!({"detector": f.detector, "id": finding_id(f.seq), "seq": f.seq,
                "updated": f.updated});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(&file, text).unwrap();
        let (detectors, rate) = (detectors.join(","), rate.to_string());
        let options: [(&str, &OsStr); 3] = [
            ("--findings", file.as_os_str()),
            ("--detectors", OsStr::new(&detectors)),
            ("--rate", OsStr::new(&rate)),
        ];
        GuardDutyServer(LocalServer::start_signed("guardduty_server.py", &options))
    }

    fn url(&self) -> String {
        self.0.url()
    }

    /// Updates a finding (updatedAt = now, one more occurrence).
    fn update(&self, detector: &str, seq: u64) {
        let body = json!({"detector": detector, "id": finding_id(seq)}).to_string();
        self.0.http("POST", "/_update", &body);
    }
}

fn finding_id(seq: u64) -> String {
    format!("f{seq:032x}")
}

/// How many times each (seq, version) arrived: the description says `seq=N version=M`.
fn arrivals(sink: &LineSink) -> BTreeMap<(u64, u64), usize> {
    let number_after = common::number_after;
    let mut n = BTreeMap::new();
    for l in sink.lines().iter().filter(|l| l.contains(TAG)) {
        if let (Some(seq), Some(version)) = (number_after(l, "seq="), number_after(l, "version=")) {
            *n.entry((seq, version)).or_insert(0) += 1;
        }
    }
    n
}

fn config(dir: &Path, server: &GuardDutyServer, sink_port: u16, inputs: &[(&str, &str)]) -> String {
    config_with(dir, server, sink_port, inputs, "")
}

/// [`config`] with `more` (YAML lines) in the service.
fn config_with(
    dir: &Path,
    server: &GuardDutyServer,
    sink_port: u16,
    inputs: &[(&str, &str)],
    more: &str,
) -> String {
    let service = format!(
        "      aws-guardduty:\n        requests_per_second: 8\n        request_period_in_seconds: 1\n{more}"
    );
    common::inputs_collector_yaml(dir, "gd", &server.url(), sink_port, inputs, |_| {
        service.clone()
    })
}

#[test]
fn the_server_answers_boto3_as_guardduty_does() {
    let dir = TempDir::new("gd-boto3");
    let t0 = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let findings: Vec<Finding> = (0..120)
        .map(|seq| Finding {
            detector: "d1",
            seq,
            updated: t0 + seq as i64 * 1000,
        })
        .collect();
    let server = GuardDutyServer::start(dir.path(), &findings, &["d1", "d2", "d3"], 3.0);
    let script = format!(
        r#"
import boto3, botocore.config
kw = dict(endpoint_url="{url}", region_name="us-east-1", aws_access_key_id="{KEY}", aws_secret_access_key="{SECRET}")
gd = boto3.client("guardduty", config=botocore.config.Config(retries={{"mode": "standard", "max_attempts": 10}}), **kw)
pages = list(gd.get_paginator("list_detectors").paginate(PaginationConfig={{"PageSize": 2}}))
assert [p["DetectorIds"] for p in pages] == [["d1", "d2"], ["d3"]], pages
crit = {{"Criterion": {{"updatedAt": {{"GreaterThanOrEqual": {t0} + 30000}}}}}}
sort = {{"AttributeName": "updatedAt", "OrderBy": "ASC"}}
pages = list(gd.get_paginator("list_findings").paginate(DetectorId="d1", FindingCriteria=crit, SortCriteria=sort))
ids = [i for p in pages for i in p["FindingIds"]]
assert len(pages) == 2 and len(ids) == 90, (len(pages), len(ids))
got = gd.get_findings(DetectorId="d1", FindingIds=ids[:50])["Findings"]
assert len(got) == 50 and got[0]["Id"] == ids[0] and got[0]["Service"]["Count"] == 1, got[0]
assert got[0]["UpdatedAt"].endswith("Z") and got[0]["Resource"]["ResourceType"] == "Instance"
assert boto3.client("sts", **kw).get_caller_identity()["Account"] == "123456789012"
bad = boto3.client("guardduty", **dict(kw, aws_secret_access_key="wrong"))
try:
    bad.list_detectors()
    raise SystemExit("a wrong secret was accepted")
except bad.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidSignatureException", e.response
eager = boto3.client("guardduty", config=botocore.config.Config(retries={{"total_max_attempts": 1}}), **kw)
codes = set()
for _ in range(10):
    try:
        eager.list_detectors()
    except eager.exceptions.ClientError as e:
        codes.add((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]))
assert codes == {{("TooManyRequestsException", 429)}}, codes
print("ok")
"#,
        url = server.url(),
    );
    common::assert_python_ok(&script, "boto3 against the server");
}

/// 2,000 findings in two detectors. The InputProcess is killed (SIGKILL) while it reads the first detector: the
/// restarted one resumes at its last committed batch and every finding arrives. Then a finding is updated twice:
/// both versions arrive. A second input with a wrong secret fails its setup with an error naming its service, and
/// the first runs on.
#[test]
fn findings_arrive_a_killed_input_resumes_without_loss_and_each_update_arrives_again() {
    let dir = TempDir::new("gd-run");
    let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let findings: Vec<Finding> = (0..2_000)
        .map(|seq| Finding {
            detector: if seq < 1_900 { "d1" } else { "d2" },
            seq,
            // Three findings per millisecond: batches end in the middle of a millisecond.
            updated: t0 + seq as i64 / 3,
        })
        .collect();
    let server = GuardDutyServer::start(dir.path(), &findings, &[], 10.0);
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(
            dir.path(),
            &server,
            sink.port,
            &[("aws", SECRET), ("aws_wrong", "not-the-secret")],
        ),
    );
    wait_until(Duration::from_secs(120), "a third of the findings", || {
        arrivals(&sink).len() >= 700
    });
    let pid = c.kill_child("InputProcess");
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    wait_until(Duration::from_secs(180), "every finding", || {
        arrivals(&sink).len() == findings.len()
    });
    let got = arrivals(&sink);
    let want: Vec<(u64, u64)> = findings.iter().map(|f| (f.seq, 1)).collect();
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), want);
    let again = got.values().filter(|n| **n > 1).count();
    assert!(
        again <= 50,
        "{again} findings arrived twice: more than the batch read when killed"
    );

    for version in [2, 3] {
        server.update("d1", 7);
        wait_until(
            Duration::from_secs(60),
            &format!("version {version} of finding 7"),
            || arrivals(&sink).contains_key(&(7, version)),
        );
    }
    let got = arrivals(&sink);
    assert_eq!(
        got.len(),
        findings.len() + 2,
        "only the updated finding again"
    );
    let log = c.log_text();
    assert!(
        log.contains("AwsGuardDutyApiPuller(aws,100,aws-guardduty,predefined,us-east-1) -> Total event received: "),
        "{log}"
    );
    assert!(
        log.contains("Persistence: positions of 1 detector(s) retrieved"),
        "{log}"
    );
    c.wait_log(
        "SetupError(101): service \"aws-guardduty\"",
        Duration::from_secs(30),
    );
    assert!(
        c.log_text().contains(
            "AwsGuardDutyApiPullerSetup(aws_wrong,aws_wrong#101,aws-guardduty#predefined,us-east-1)"
        ),
        "{}",
        c.log_text()
    );
    let throttled = server
        .0
        .requests()
        .iter()
        .filter(|r| r["outcome"] == "TooManyRequestsException")
        .count();
    assert_eq!(
        throttled, 0,
        "the client kept within its 8 requests/s of the server's 10"
    );
}

/// The server allows 1 request/s while the puller asks at 8: every `TooManyRequestsException` (HTTP 429) is
/// waited out on the same request, every finding arrives once.
#[test]
fn throttled_requests_are_sent_again_and_no_finding_is_lost() {
    let dir = TempDir::new("gd-throttle");
    let t0 = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let findings: Vec<Finding> = (0..400)
        .map(|seq| Finding {
            detector: "d1",
            seq,
            updated: t0 + seq as i64 * 10,
        })
        .collect();
    let server = GuardDutyServer::start(dir.path(), &findings, &[], 1.0);
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(dir.path(), &server, sink.port, &[("aws", SECRET)]),
    );
    wait_until(Duration::from_secs(120), "every finding", || {
        arrivals(&sink).len() == findings.len()
    });
    let got = arrivals(&sink);
    assert!(got.values().all(|n| *n == 1), "a finding arrived twice");
    let throttled = server
        .0
        .requests()
        .iter()
        .filter(|r| r["outcome"] == "TooManyRequestsException")
        .count();
    assert!(throttled > 0, "the server never throttled");
    assert!(
        c.log_text().contains(
            "throttled (TooManyRequestsException: Rate exceeded); the same request is sent again"
        ),
        "{}",
        c.log_text()
    );
}

/// The `@logferry_id` of each (seq, version) a sink received (the last one when repeated).
fn ids(sink: &LineSink) -> BTreeMap<(u64, u64), String> {
    let id_of = |l: &str| -> Option<String> {
        let rest = &l[l.find("\"@logferry_id\":\"")? + 16..];
        Some(rest[..rest.find('"')?].to_owned())
    };
    sink.lines()
        .iter()
        .filter(|l| l.contains(TAG))
        .filter_map(|l| {
            let key = (
                common::number_after(l, "seq=")?,
                common::number_after(l, "version=")?,
            );
            Some((key, id_of(l).expect("every finding has an id")))
        })
        .collect()
}

/// With `event_id: true` every finding carries `@logferry_id` from its id and `updatedAt`: two collectors reading
/// the same findings give the same ids, different findings (and a finding's new version) different ones.
#[test]
fn stable_ids_come_from_the_finding_id_and_its_update_time() {
    const FINDINGS: u64 = 200;
    let dir = TempDir::new("gd-ids");
    let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let findings: Vec<Finding> = (0..FINDINGS)
        .map(|seq| Finding {
            detector: "d1",
            seq,
            updated: t0 + seq as i64,
        })
        .collect();
    let server = GuardDutyServer::start(dir.path(), &findings, &[], 50.0);
    let (dir_a, dir_b) = (TempDir::new("gd-ids-a"), TempDir::new("gd-ids-b"));
    let (sink_a, sink_b) = (LineSink::start(), LineSink::start());
    let more = "        event_id: true\n";
    let start = |dir: &TempDir, sink: &LineSink| {
        let config = config_with(dir.path(), &server, sink.port, &[("aws", SECRET)], more);
        Collector::start(&logferry_bin(), dir.path(), &config)
    };
    let (a, b) = (start(&dir_a, &sink_a), start(&dir_b, &sink_b));
    wait_until(Duration::from_secs(120), "every finding at both", || {
        ids(&sink_a).len() as u64 == FINDINGS && ids(&sink_b).len() as u64 == FINDINGS
    });
    server.update("d1", 7);
    wait_until(Duration::from_secs(60), "the new version at both", || {
        ids(&sink_a).contains_key(&(7, 2)) && ids(&sink_b).contains_key(&(7, 2))
    });
    drop((a, b));
    let (first, second) = (ids(&sink_a), ids(&sink_b));
    assert_eq!(first, second, "the same findings, the same ids");
    let distinct: std::collections::HashSet<&String> = first.values().collect();
    assert_eq!(
        distinct.len() as u64,
        FINDINGS + 1,
        "different findings and versions, different ids"
    );
}
