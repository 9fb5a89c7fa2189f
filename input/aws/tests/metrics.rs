//! CloudWatch Metrics through the real `logferry` binary against moto's server (PutMetricData to fill it,
//! ListMetrics and GetMetricData read by the puller): every period of every metric arrives with its statistics,
//! in batches of 500 queries; the InputProcess killed with SIGKILL resumes at the committed period end without
//! loss; a service with `regions: [...]` runs one puller per region (thread names, tags and state keys carry the
//! region) and a state stored by a version before regions is adopted by the puller of its region; a bad period is
//! refused by `logferry validate` with the seed's error.

mod common;

use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use logferry_testkit::collector::{logferry_bin, Collector};
use logferry_testkit::moto::MotoServer;
use logferry_testkit::{wait_until, LineSink, RedisServer, TempDir};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

const NAMESPACE: &str = "Test/Ferry";
const PERIOD_S: i64 = 5;
/// moto's account id.
const ACCOUNT: &str = "123456789012";

/// CloudWatch clients of moto, one per region.
struct Cw {
    rt: tokio::runtime::Runtime,
    moto: MotoServer,
}

impl Cw {
    fn start() -> Cw {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Cw {
            rt,
            moto: MotoServer::start(),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        let sdk = common::moto_sdk_config(&self.rt, &self.moto);
        let conf = aws_sdk_cloudwatch::config::Builder::from(&sdk)
            .region(aws_sdk_cloudwatch::config::Region::new(region.to_owned()))
            .build();
        aws_sdk_cloudwatch::Client::from_conf(conf)
    }

    /// One data point every `step` seconds from `from_s` to `to_s` (excluded) for each host `h<i>` of `hosts` of
    /// metric `Requests`, the value being the point's offset from `from_s` in seconds.
    fn put(&self, region: &str, hosts: Range<usize>, (from_s, to_s): (i64, i64), step: i64) {
        let client = self.client(region);
        let mut data = Vec::new();
        for h in hosts {
            for t in (from_s..to_s).step_by(step as usize) {
                data.push(
                    MetricDatum::builder()
                        .metric_name("Requests")
                        .dimensions(
                            Dimension::builder()
                                .name("Host")
                                .value(format!("h{h}"))
                                .build(),
                        )
                        .timestamp(AwsTime::from_secs(t))
                        .value((t - from_s) as f64)
                        .storage_resolution(1)
                        .build(),
                );
            }
        }
        for chunk in data.chunks(1000) {
            self.rt
                .block_on(
                    client
                        .put_metric_data()
                        .namespace(NAMESPACE)
                        .set_metric_data(Some(chunk.to_vec()))
                        .send(),
                )
                .unwrap();
        }
    }
}

fn config(persistence: &str, endpoint: &str, sink_port: u16, service: &str) -> String {
    let input = common::AwsInputYaml::moto(endpoint).with(service);
    common::collector_yaml_with(persistence, "met", &input, sink_port)
}

fn custom_service(regions: &str) -> String {
    format!(
        "      app_metrics:\n        types: [metrics]\n        metric_namespaces: [\"{NAMESPACE}\"]\n        request_period_in_seconds: {PERIOD_S}\n        requests_per_second: 25\n{regions}"
    )
}

/// The metric events received: (region, host, period start in s) -> each arrival's event.
fn received(sink: &LineSink) -> BTreeMap<(String, String, i64), Vec<Value>> {
    let mut out: BTreeMap<_, Vec<Value>> = BTreeMap::new();
    for line in sink.lines() {
        if !line.contains("cloud.aws.cloudwatch.metrics.") {
            continue;
        }
        let Some(start) = line.find('{') else {
            continue;
        };
        let Ok(e) = serde_json::from_str::<Value>(&line[start..]) else {
            panic!("not a JSON event: {line}")
        };
        let ts = chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp();
        let key = (
            e["region"].as_str().unwrap().to_owned(),
            e["dimensions"]["Host"].as_str().unwrap().to_owned(),
            ts,
        );
        assert!(
            line.contains(&format!(
                "cloud.aws.cloudwatch.metrics.{ACCOUNT}.{}.1",
                key.0
            )),
            "tag of {key:?}: {line}"
        );
        out.entry(key).or_default().push(e);
    }
    out
}

/// The whole periods of `[from_s, to_s)`.
fn periods(from_s: i64, to_s: i64) -> impl Iterator<Item = i64> {
    (from_s..to_s).step_by(PERIOD_S as usize)
}

/// Checks one period's statistics: a data point every `step` seconds whose value is its offset from `data_start`.
fn check_period(e: &Value, period: i64, data_start: i64, step: i64) {
    let points: Vec<f64> = (period..period + PERIOD_S)
        .step_by(step as usize)
        .map(|t| (t - data_start) as f64)
        .collect();
    let sum: f64 = points.iter().sum();
    let v = &e["values"];
    assert_eq!(v["SampleCount"], json!(points.len() as f64), "{e}");
    assert_eq!(v["Sum"], json!(sum), "{e}");
    assert_eq!(v["Minimum"], json!(points[0]), "{e}");
    assert_eq!(v["Maximum"], json!(points[points.len() - 1]), "{e}");
    assert_eq!(v["Average"], json!(sum / points.len() as f64), "{e}");
    assert_eq!(e["namespace"], NAMESPACE);
    assert_eq!(e["metricName"], "Requests");
    assert_eq!(e["period"], json!(PERIOD_S));
    assert!(e["@devo_pulling_id"].is_u64(), "{e}");
}

/// [`wait_until`], with the collector's last log lines in the failure message.
fn wait_logged(c: &Collector, deadline: Duration, what: &str, cond: impl FnMut() -> bool) {
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(deadline, what, cond)
    }));
    if let Err(e) = waited {
        let why = e.downcast_ref::<String>().cloned().unwrap_or_default();
        let text = c.log_text();
        let cycles: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("Received")
                    || l.contains("Time range")
                    || l.contains("ERROR")
                    || l.contains("WARN")
            })
            .collect();
        panic!(
            "{why}; the collector's cycles:\n{}\nits log ends with:\n{}",
            cycles[cycles.len().saturating_sub(40)..].join("\n"),
            c.log_tail()
        );
    }
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An aligned period start at least `ahead` seconds from now.
fn aligned_after(ahead: i64) -> i64 {
    (now_s() + ahead + PERIOD_S).div_euclid(PERIOD_S) * PERIOD_S
}

#[test]
fn every_period_arrives_in_batches_and_a_killed_input_process_resumes_without_loss() {
    let bin = logferry_bin();
    let cw = Cw::start();
    // 110 metrics x 5 statistics = 550 queries: two GetMetricData batches per period. One data point per metric
    // and period (moto's PutMetricData takes ~20 ms per data point on this machine).
    const HOSTS: usize = 110;
    let data_start = (now_s() - 30).div_euclid(PERIOD_S) * PERIOD_S;
    let data_end = data_start + 45;
    cw.put("us-east-1", 0..HOSTS, (data_start, data_end), PERIOD_S);
    // The data are in the past once moto has them: the retrieval delay makes the fresh puller start 15 s before
    // them and read a period at a time from there, as if they were coming in.
    let delay = now_s() - data_start + 15;
    let dir = TempDir::new("metrics-kill");
    let sink = LineSink::start();
    let persistence = format!(
        "{{type: embedded, directory: \"{}\"}}",
        dir.path().join("state").display()
    );
    let service = custom_service(&format!("        retrieval_delay_in_seconds: {delay}\n"));
    let mut c = Collector::start(
        &bin,
        dir.path(),
        &config(&persistence, &cw.moto.url(), sink.port, &service),
    );
    let complete = |sink: &LineSink, until: i64| {
        let got = received(sink);
        periods(data_start, until).all(|p| {
            (0..HOSTS).all(|h| got.contains_key(&("us-east-1".into(), format!("h{h}"), p)))
        })
    };
    wait_logged(
        &c,
        Duration::from_secs(90),
        "the first three periods of every metric",
        || complete(&sink, data_start + 3 * PERIOD_S),
    );
    let pid = c.kill_child("InputProcess");
    c.wait_restarted("InputProcess", pid, Duration::from_secs(60));
    wait_logged(
        &c,
        Duration::from_secs(120),
        "every period of every metric",
        || complete(&sink, data_end),
    );
    c.stop();
    let got = received(&sink);
    for ((_, _, period), events) in &got {
        if (data_start..data_end).contains(period) {
            check_period(&events[0], *period, data_start, PERIOD_S);
        }
    }
    let twice = got.values().filter(|e| e.len() > 1).count();
    eprintln!(
        "{} metric periods received, {twice} more than once (the window read when the InputProcess was killed)",
        got.len()
    );
    let log = c.log_text();
    for needle in [
        "AwsCloudwatchMetricPuller(aws,123,app_metrics,custom,us-east-1)",
        "AwsCloudwatchMetricPullerSetup(aws,aws#123,app_metrics#custom,us-east-1)",
        "Starting a new pulling from \"['Test/Ferry']\" namespaces at",
        "Time range: \"",
        "Applied an offset to wait, retrieval_offset: -",
        "tag used: \"cloud.aws.cloudwatch.metrics.123456789012.us-east-1.1\"",
        "Resuming after the periods read up to",
    ] {
        assert!(log.contains(needle), "{needle} not in the log:\n{log}");
    }
}

#[test]
fn two_regions_run_two_pullers_and_a_state_from_before_regions_is_adopted() {
    let bin = logferry_bin();
    let cw = Cw::start();
    let redis = RedisServer::start();
    // Data a fresh puller would not read (it starts at the last complete period): only the adopted state of
    // us-east-1 reaches back to it.
    let old_start = (now_s() - 120).div_euclid(PERIOD_S) * PERIOD_S;
    cw.put("us-east-1", 0..2, (old_start, old_start + 2 * PERIOD_S), 1);
    // The state a version before regions stored for us-east-1 (its defining values name the region).
    let legacy_key = "logferry:met:state:aws:123:app_metrics:custom";
    let stored = json!({
        "defining": {"namespaces": [NAMESPACE], "period": PERIOD_S, "region": "us-east-1"},
        "data": {"last_end": old_start * 1000},
    });
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET")
        .arg(legacy_key)
        .arg(stored.to_string())
        .query::<()>(&mut conn)
        .unwrap();
    let data_start = aligned_after(10);
    let data_end = data_start + 2 * PERIOD_S;
    cw.put("us-east-1", 0..2, (data_start, data_end), 1);
    cw.put("eu-west-1", 0..3, (data_start, data_end), 1);
    let dir = TempDir::new("metrics-regions");
    let sink = LineSink::start();
    let persistence = format!("{{type: redis, url: \"{}\"}}", redis.url());
    let service = custom_service("        regions: [us-east-1, eu-west-1]\n");
    let mut c = Collector::start(
        &bin,
        dir.path(),
        &config(&persistence, &cw.moto.url(), sink.port, &service),
    );
    let expected = |got: &BTreeMap<(String, String, i64), Vec<Value>>| {
        let old = periods(old_start, old_start + 2 * PERIOD_S)
            .all(|p| (0..2).all(|h| got.contains_key(&("us-east-1".into(), format!("h{h}"), p))));
        let new = periods(data_start, data_end).all(|p| {
            (0..2).all(|h| got.contains_key(&("us-east-1".into(), format!("h{h}"), p)))
                && (0..3).all(|h| got.contains_key(&("eu-west-1".into(), format!("h{h}"), p)))
        });
        old && new
    };
    wait_logged(
        &c,
        Duration::from_secs(120),
        "the old periods of us-east-1 and the new ones of both regions",
        || expected(&received(&sink)),
    );
    c.stop();
    let got = received(&sink);
    for ((_, _, period), events) in &got {
        if (old_start..old_start + 2 * PERIOD_S).contains(period) {
            check_period(&events[0], *period, old_start, 1);
        }
        if (data_start..data_end).contains(period) {
            check_period(&events[0], *period, data_start, 1);
        }
    }
    let log = c.log_text();
    for needle in [
        "AwsCloudwatchMetricPuller(aws,123,app_metrics,custom,us-east-1)",
        "AwsCloudwatchMetricPuller(aws,123,app_metrics,custom,eu-west-1)",
        "tag used: \"cloud.aws.cloudwatch.metrics.123456789012.eu-west-1.1\"",
        "Persistence found under the key of an earlier version (logferry:met:state:aws:123:app_metrics:custom): moved to logferry:met:state:aws:123:app_metrics:custom:us-east-1",
    ] {
        assert!(log.contains(needle), "{needle} not in the log:\n{log}");
    }
    let exists = |key: &str, conn: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS").arg(key).query::<i64>(conn).unwrap() == 1
    };
    assert!(!exists(legacy_key, &mut conn), "the old key was not moved");
    for region in ["us-east-1", "eu-west-1"] {
        let key = format!("{legacy_key}:{region}");
        assert!(exists(&key, &mut conn), "no state under {key}");
    }
}

/// `metrics_list_refresh_in_seconds: 15`: the metric list is not asked for every cycle (ListMetrics counted by a
/// proxy in front of moto), and a metric that appears while running is picked up at the next refresh with its
/// periods since the list before read back: every period of both metrics arrives, once.
#[test]
fn the_metric_list_is_refreshed_on_its_period_and_a_new_metric_is_read_back() {
    let bin = logferry_bin();
    let cw = Cw::start();
    let proxy = common::fault_proxy(&cw.moto.url(), "", 0.0, 0);
    const REFRESH_S: i64 = 15;
    let data_start = aligned_after(5);
    let data_end = data_start + 6 * PERIOD_S;
    cw.put("us-east-1", 0..1, (data_start, data_end), 1);
    let dir = TempDir::new("metrics-listing");
    let sink = LineSink::start();
    let persistence = format!(
        "{{type: embedded, directory: \"{}\"}}",
        dir.path().join("state").display()
    );
    let service = custom_service(&format!(
        "        metrics_list_refresh_in_seconds: {REFRESH_S}\n"
    ));
    let started = std::time::Instant::now();
    let mut c = Collector::start(
        &bin,
        dir.path(),
        &config(&persistence, &proxy.url(), sink.port, &service),
    );
    let has =
        |host: &str, p: i64| received(&sink).contains_key(&("us-east-1".into(), host.into(), p));
    wait_logged(&c, Duration::from_secs(60), "h0's first period", || {
        has("h0", data_start)
    });
    // h1 appears after the first listing, with data since data_start.
    cw.put("us-east-1", 1..2, (data_start, data_end), 1);
    wait_logged(
        &c,
        Duration::from_secs(90),
        "every period of h0 and h1",
        || periods(data_start, data_end).all(|p| has("h0", p) && has("h1", p)),
    );
    let elapsed = started.elapsed().as_secs() as i64;
    c.stop();
    let got = received(&sink);
    for ((_, host, period), events) in &got {
        if (data_start..data_end).contains(period) {
            assert_eq!(
                events.len(),
                1,
                "{host} {period} arrived {} times",
                events.len()
            );
            check_period(&events[0], *period, data_start, 1);
        }
    }
    let log = c.log_text();
    let cycles = log.matches("Time range: \"").count() as i64;
    let lists = proxy.http("GET", "/_faults", "")["operations"]["ListMetrics"]
        .as_i64()
        .unwrap_or(0);
    eprintln!("{cycles} cycles, {lists} ListMetrics in {elapsed} s");
    assert!(cycles >= 6, "{cycles} cycles");
    assert!(
        lists >= 2 && lists <= elapsed / REFRESH_S + 1,
        "{lists} ListMetrics in {elapsed} s with a refresh every {REFRESH_S} s ({cycles} cycles)"
    );
    assert!(
        log.contains("1 metric(s) new since the last listing: reading them back from"),
        "{log}"
    );
}

#[test]
fn validate_refuses_a_bad_period_and_missing_namespaces_with_the_seeds_errors() {
    let bin = logferry_bin();
    let dir = TempDir::new("metrics-validate");
    let moto_url = "http://127.0.0.1:1";
    let service = "      app_metrics:\n        types: [metrics]\n        request_period_in_seconds: 45\n      ec2:\n        request_period_in_seconds: 90\n        regions: [us-east-1, us-east-1]\n";
    let yaml = format!(
        "globals:\n  id: met\ninputs:\n  aws:\n    id: 123\n    region: us-east-1\n    endpoint: {moto_url}\n    services:\n{service}outputs:\n  o:\n    type: console\n"
    );
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        "\"inputs.aws.services.app_metrics.request_period_in_seconds\": AwsServiceConfigurationError(1): When a service uses \"metrics\" type, the property \"request_period_in_seconds\" must have one of the following values: 1, 5, 10, 30, 60, or any multiple of 60 (found 45)",
        "\"inputs.aws.services.app_metrics.metric_namespaces\": AwsServiceConfigurationError(0): Mandatory property \"metric_namespaces\" is missing",
        "\"inputs.aws.services.ec2.request_period_in_seconds\": AwsServiceConfigurationError(1)",
        "\"inputs.aws.services.ec2.regions\": region \"us-east-1\" is given twice",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
}
