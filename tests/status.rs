//! `logferry status`, `/metrics`, `/health` and `/ready` against the real binary: a demo input sending to a line
//! receiver (or to a port where nothing listens), read back through the command, the HTTP endpoint, `promtool` and
//! a real Prometheus server that scrapes it.

use logferry_testkit::collector::Collector;
use logferry_testkit::demo::{self, Demo};
use logferry_testkit::{free_port, wait_for_port, wait_until, ChildGuard, LineSink, TempDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_logferry"))
}

/// The demo collector's configuration with `globals.metrics.listen` on `metrics_port`.
fn config(dir: &Path, demo: &Demo, sink_port: u16, metrics_port: u16) -> String {
    demo.config(dir, sink_port).replacen(
        "globals:\n",
        &format!("globals:\n  metrics: {{listen: \"127.0.0.1:{metrics_port}\"}}\n"),
        1,
    )
}

/// `logferry status --config dir/config.yaml [args]`: exit code and standard output.
fn status(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("status")
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .args(args)
        .output()
        .expect("run logferry status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn status_json(dir: &Path) -> Value {
    let (_, text) = status(dir, &["--json"]);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{text}"))
}

/// The record of `process` in a `status --json` reading.
fn process<'a>(v: &'a Value, process: &str) -> &'a Value {
    v["snapshot"]["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["process"] == process))
        .unwrap_or(&Value::Null)
}

fn standard_output(v: &Value) -> &Value {
    process(v, "OutputProcess")["outputs"]
        .as_array()
        .and_then(|os| os.iter().find(|o| o["class"] == "standard"))
        .unwrap_or(&Value::Null)
}

fn stream<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["snapshot"]["streams"]
        .as_array()
        .and_then(|ss| ss.iter().find(|s| s["stream"] == name))
        .unwrap_or(&Value::Null)
}

fn child<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["snapshot"]["supervisor"]["children"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["process"] == name))
        .unwrap_or(&Value::Null)
}

/// A plain HTTP/1.1 GET on 127.0.0.1: status code and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_owned())
}

/// The value of the sample of `page` whose line starts with `series` (`name{labels}`).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus server on a free port scraping `target_port` every second (killed by pid on drop).
struct Prometheus {
    port: u16,
    _guard: ChildGuard,
}

impl Prometheus {
    fn start(dir: &Path, target_port: u16) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: logferry\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus (Debian package prometheus; scripts/install-deps.sh)");
        let guard = ChildGuard {
            child,
            name: "prometheus".into(),
        };
        wait_for_port(port, DEADLINE, "prometheus");
        Prometheus {
            port,
            _guard: guard,
        }
    }

    /// The value of an instant query returning one sample (None while it returns none).
    fn query(&self, expr: &str) -> Option<f64> {
        let (code, body) = http_get(
            self.port,
            &format!("/api/v1/query?query={}", percent_encode(expr)),
        );
        if code != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

#[test]
fn status_metrics_and_prometheus_agree_with_what_the_receiver_counted() {
    let dir = TempDir::new("status-agree");
    let sink = LineSink::start();
    let metrics_port = free_port();
    let count = 3000;
    let demo = Demo {
        count,
        ..Demo::default()
    };
    let mut c = Collector::start(
        bin(),
        dir.path(),
        &config(dir.path(), &demo, sink.port, metrics_port),
    );
    c.wait_all_seqs(count, DEADLINE, || demo::seqs(&sink.lines()));
    let received = demo::seqs(&sink.lines()).len() as f64;

    // The command: the output's and the puller's totals, an empty queue, every process running.
    wait_until(DEADLINE, "status shows every event sent", || {
        let v = status_json(dir.path());
        standard_output(&v)["sent"].as_f64() == Some(received)
            && stream(&v, "standard")["events"] == 0
    });
    let v = status_json(dir.path());
    assert_eq!(v["running"], true);
    let puller = &process(&v, "InputProcess")["pullers"][0];
    assert_eq!(puller["events_total"].as_f64(), Some(received), "{puller}");
    assert_eq!(puller["input"], "demo");
    assert_eq!(puller["service"], "trail");
    assert!(puller["last_success_ms"].is_i64(), "{puller}");
    assert!(standard_output(&v)["failing_since_ms"].is_null());
    for name in ["InputProcess", "OutputProcess", "MetricsProcess"] {
        assert_eq!(child(&v, name)["restarts"], 0, "{name}");
        assert!(
            process(&v, name)["rss_bytes"].as_u64().unwrap() > 0,
            "{name}"
        );
    }
    assert!(v["snapshot"]["redis"]["rss_bytes"].as_u64().unwrap() > 0);
    let (code, screen) = status(dir.path(), &[]);
    assert_eq!(code, 0, "{screen}");
    for shown in [
        "running, pid",
        "health: ok",
        "ready:  ok",
        "relay/standard (syslog)",
        "DemoPuller(demo,7,trail,predefined)",
    ] {
        assert!(screen.contains(shown), "no '{shown}' in:\n{screen}");
    }

    // The endpoint: the same figures, probes answering, a page promtool accepts.
    let (code, page) = http_get(metrics_port, "/metrics");
    assert_eq!(code, 200, "{page}");
    let sent = "logferry_events_sent_total{output=\"relay\",class=\"standard\",kind=\"syslog\"}";
    assert_eq!(sample(&page, sent), Some(received), "{page}");
    let got = "logferry_events_received_total{input=\"demo\",service=\"trail\",puller=\"DemoPuller(demo,7,trail,predefined)\"}";
    assert_eq!(sample(&page, got), Some(received), "{page}");
    assert_eq!(
        sample(&page, "logferry_queue_events{stream=\"standard\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&page, "logferry_deadletter_items"), Some(0.0));
    assert!(page.contains("logferry_build_info{version=\""), "{page}");
    assert!(page.contains("# TYPE logferry_events_sent_total counter"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let (code, body) = http_get(metrics_port, "/health");
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(metrics_port, "/ready");
    assert_eq!(code, 200, "{body}");
    assert_eq!(http_get(metrics_port, "/nothing").0, 404);

    // A real Prometheus scrapes it: the total read back through its HTTP API.
    let prometheus = Prometheus::start(dir.path(), metrics_port);
    wait_until(
        DEADLINE,
        "Prometheus has scraped logferry_events_sent_total",
        || {
            prometheus.query("sum(logferry_events_sent_total{class=\"standard\"})")
                == Some(received)
        },
    );
    assert_eq!(prometheus.query("up{job=\"logferry\"}"), Some(1.0));
    c.stop();
}

#[test]
fn a_dead_receiver_a_killed_child_and_a_stopped_collector_show_in_status() {
    let dir = TempDir::new("status-failing");
    // Nothing listens there: every connection is refused.
    let dead_port = free_port();
    let metrics_port = free_port();
    let count = 2000;
    let demo = Demo {
        count,
        ..Demo::default()
    };
    let mut c = Collector::start(
        bin(),
        dir.path(),
        &config(dir.path(), &demo, dead_port, metrics_port),
    );

    // The queue grows to every event while the output fails with its error.
    let mut seen_waiting = Vec::new();
    wait_until(
        DEADLINE,
        "every event waiting and the output failing",
        || {
            let v = status_json(dir.path());
            let waiting = stream(&v, "standard")["events"].as_u64().unwrap_or(0);
            seen_waiting.push(waiting);
            let out = standard_output(&v);
            waiting == count
                && out["failing_since_ms"].is_i64()
                && out["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Connection refused"))
                && out["retries"].as_u64().unwrap_or(0) > 0
                && out["sent"] == 0
        },
    );
    assert!(
        seen_waiting.windows(2).all(|w| w[0] <= w[1]),
        "the queue only grows: {seen_waiting:?}"
    );
    let (code, screen) = status(dir.path(), &[]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("FAILING for"), "{screen}");
    assert!(screen.contains("Connection refused"), "{screen}");
    let (_, page) = http_get(metrics_port, "/metrics");
    assert_eq!(
        sample(&page, "logferry_queue_events{stream=\"standard\"}"),
        Some(count as f64)
    );
    assert_eq!(
        sample(
            &page,
            "logferry_sender_failing{output=\"relay\",class=\"standard\",kind=\"syslog\"}"
        ),
        Some(1.0)
    );
    // A failing destination is no liveness failure: a restart would not fix it.
    assert_eq!(http_get(metrics_port, "/health").0, 200);

    // A killed child shows as restarted, with its new pid.
    let old = c.kill_child("InputProcess");
    c.wait_restarted("InputProcess", old, DEADLINE);
    let new = c.child_pid("InputProcess");
    wait_until(DEADLINE, "status shows the restart", || {
        let v = status_json(dir.path());
        let input = child(&v, "InputProcess");
        input["restarts"] == 1 && input["pid"] == new && process(&v, "InputProcess")["pid"] == new
    });
    let v = status_json(dir.path());
    assert_eq!(child(&v, "OutputProcess")["restarts"], 0);
    let (_, page) = http_get(metrics_port, "/metrics");
    assert_eq!(
        sample(
            &page,
            "logferry_process_restarts_total{process=\"InputProcess\"}"
        ),
        Some(1.0)
    );

    // Stopped: the command says so (exit code 1), as JSON too.
    c.stop();
    let (code, screen) = status(dir.path(), &[]);
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("The collector (id e2e) is not running"),
        "{screen}"
    );
    let v = status_json(dir.path());
    assert_eq!(v["running"], false, "{v}");
}
