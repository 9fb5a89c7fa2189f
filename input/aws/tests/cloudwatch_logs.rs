//! CloudWatch Logs (a custom service with `types: [logs]`) through the real `logferry` binary against moto's
//! server (DescribeLogGroups, DescribeLogStreams, FilterLogEvents): every event of the selected groups arrives,
//! a log group created while running is picked up, and a restart sends nothing twice (positions per stream); with
//! a proxy that throttles (tests/servers/fault_proxy.py), a kill -9 of the InputProcess mid-run loses nothing and
//! a steady stream is not read again.

mod common;

use logferry_testkit::collector::{logferry_bin, Collector};
use logferry_testkit::moto::MotoServer;
use logferry_testkit::{wait_until, LineSink, TempDir};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const TAG: &str = "cloud.aws.cloudwatch.logs";

struct Logs {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_cloudwatchlogs::Client,
}

impl Logs {
    fn new(moto: &MotoServer) -> Logs {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sdk = common::moto_sdk_config(&rt, moto);
        let client = aws_sdk_cloudwatchlogs::Client::new(&sdk);
        Logs { rt, client }
    }

    fn group(&self, group: &str, streams: &[&str]) {
        self.rt
            .block_on(self.client.create_log_group().log_group_name(group).send())
            .unwrap();
        for s in streams {
            self.rt
                .block_on(
                    self.client
                        .create_log_stream()
                        .log_group_name(group)
                        .log_stream_name(*s)
                        .send(),
                )
                .unwrap();
        }
    }

    /// Puts events `line seq=N of the test` for each seq in `seqs`, one millisecond apart, ending a minute ago.
    fn put(&self, group: &str, stream: &str, seqs: std::ops::Range<u64>) {
        use aws_sdk_cloudwatchlogs::types::InputLogEvent;
        let end = chrono::Utc::now().timestamp_millis() - 60_000;
        let n = seqs.end - seqs.start;
        let events: Vec<InputLogEvent> = seqs
            .clone()
            .map(|seq| {
                InputLogEvent::builder()
                    .timestamp(end - (n - (seq - seqs.start)) as i64)
                    .message(format!("line seq={seq} of the test"))
                    .build()
                    .unwrap()
            })
            .collect();
        self.rt
            .block_on(
                self.client
                    .put_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .set_log_events(Some(events))
                    .send(),
            )
            .unwrap();
    }
}

fn config(dir: &Path, endpoint: &str, sink_port: u16, start: &str, optimized: bool) -> String {
    let input = common::AwsInputYaml {
        input_keys: "    requests_per_second: 10\n",
        ..common::AwsInputYaml::moto(endpoint)
    };
    let services = format!(
        "      cwl_1:\n        types: [logs]\n        log_group: /app/\n        start_time: \"{start}\"\n        use_first_optimized_retrieval: {optimized}\n        request_period_in_seconds: 1\n"
    );
    common::collector_yaml(dir, "cwl", &input.with(&services), sink_port)
}

/// How many times each seq arrived.
fn arrivals(sink: &LineSink) -> BTreeMap<u64, usize> {
    let mut n = BTreeMap::new();
    for l in sink.lines() {
        let seq = l
            .contains(TAG)
            .then(|| common::number_after(&l, "seq="))
            .flatten();
        if let Some(seq) = seq {
            *n.entry(seq).or_insert(0) += 1;
        }
    }
    n
}

#[test]
fn log_groups_are_read_new_groups_are_found_and_a_restart_sends_nothing_twice() {
    let moto = MotoServer::start();
    let logs = Logs::new(&moto);
    logs.group("/app/one", &["s1", "s2"]);
    logs.put("/app/one", "s1", 0..300);
    logs.put("/app/one", "s2", 300..500);
    logs.group("/other/skip", &["x"]);
    logs.put("/other/skip", "x", 10_000..10_010);
    let dir = TempDir::new("cwl");
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    let sink = LineSink::start();
    let mut c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(dir.path(), &moto.url(), sink.port, &start, false),
    );
    wait_until(
        Duration::from_secs(60),
        "the 500 events of /app/one",
        || arrivals(&sink).len() == 500,
    );
    // A group created while running, and new events in a known stream.
    logs.group("/app/two", &["t1"]);
    logs.put("/app/two", "t1", 500..650);
    logs.put("/app/one", "s1", 650..700);
    wait_until(
        Duration::from_secs(60),
        "the events of the new group and the new ones",
        || arrivals(&sink).len() == 700,
    );
    c.stop();
    let log = c.log_text();
    assert!(log.contains("New log group \"/app/two\""), "{log}");
    assert!(
        log.contains("AwsCloudwatchLogsPuller(aws,123,cwl_1,custom,us-east-1)"),
        "{log}"
    );
    // Restarted with the optimized first retrieval (the state is kept: same log_group and start_time keys
    // are defining, that one is not): nothing is sent again, only the events put meanwhile arrive.
    logs.put("/app/two", "t1", 700..720);
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(dir.path(), &moto.url(), sink.port, &start, true),
    );
    wait_until(
        Duration::from_secs(60),
        "the events put while stopped",
        || arrivals(&sink).len() == 720,
    );
    c.wait_log(
        "Persistence: positions of 2 log group(s) retrieved",
        Duration::from_secs(30),
    );
    let got = arrivals(&sink);
    assert!(
        !got.contains_key(&10_000),
        "a group outside the prefix was read"
    );
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}

/// The `duplicated` figures of the `messages (total/duplicated/generated)` lines of `log`, from line `from` on.
fn duplicated_per_cycle(log: &str, from: usize) -> Vec<u64> {
    let marker = "messages (total/duplicated/generated): ";
    log.lines()
        .filter(|l| l.contains(marker))
        .skip(from)
        .filter_map(|l| l.split(marker).nth(1)?.split('/').nth(1)?.parse().ok())
        .collect()
}

/// 20 streams of 100 events, read stream by stream through a proxy that throttles FilterLogEvents and
/// DescribeLogStreams beyond 2 requests/s while the puller asks at 10: throttled requests are sent again, no
/// page is lost. The InputProcess is killed (SIGKILL) mid-run: the restarted one resumes per stream and every
/// event arrives. Then events put in one stream are read from that stream's position: the 1,999 others are not
/// read again.
#[test]
fn throttled_and_killed_mid_run_it_resumes_per_stream_without_loss_and_rereads_no_steady_stream() {
    let moto = MotoServer::start();
    let logs = Logs::new(&moto);
    let streams: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();
    logs.group("/app/steady", &names);
    for (i, s) in names.iter().enumerate() {
        let first = i as u64 * 100;
        logs.put("/app/steady", s, first..first + 100);
    }
    let proxy = common::fault_proxy(&moto.url(), "FilterLogEvents,DescribeLogStreams", 2.0, 0);
    let dir = TempDir::new("cwl-faults");
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    let sink = LineSink::start();
    let c = Collector::start(
        &logferry_bin(),
        dir.path(),
        &config(dir.path(), &proxy.url(), sink.port, &start, false),
    );
    wait_until(Duration::from_secs(60), "a quarter of the events", || {
        arrivals(&sink).len() >= 500
    });
    let pid = c.kill_child("InputProcess");
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    wait_until(Duration::from_secs(120), "every event", || {
        arrivals(&sink).len() == 2_000
    });
    let got = arrivals(&sink);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..2_000).collect::<Vec<_>>()
    );
    let twice = got.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 100,
        "{twice} events twice: more than the stream read when killed"
    );
    let faults = proxy.http("GET", "/_faults", "");
    assert!(faults["throttled"].as_u64().unwrap() > 0, "{faults}");
    c.wait_log(
        "Persistence: positions of 1 log group(s) retrieved",
        Duration::from_secs(10),
    );
    assert!(c
        .log_text()
        .contains("FilterLogEvents throttled (ThrottlingException: Rate exceeded)"));

    // The steady state: new events in one stream; the cycles that read them re-read at most the edge millisecond.
    let cycles_before = duplicated_per_cycle(&c.log_text(), 0).len();
    logs.put("/app/steady", "s07", 5_000..5_050);
    wait_until(Duration::from_secs(60), "the new events", || {
        arrivals(&sink).len() == 2_050
    });
    let done = c.log_count("Data collection completed");
    wait_until(Duration::from_secs(60), "two more cycles", || {
        c.log_count("Data collection completed") >= done + 2
    });
    let reread = duplicated_per_cycle(&c.log_text(), cycles_before);
    assert!(
        !reread.is_empty() && reread.iter().all(|n| *n <= 1),
        "duplicates per cycle: {reread:?}"
    );
}
