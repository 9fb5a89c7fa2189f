//! No secret of the configuration reaches anything the collector prints or delivers, through the real `logferry`
//! binary with `debug: true`: servers that echo the request (headers, query) in their refusals (a Splunk HEC
//! output with a bad token, an Alibaba ActionTrail and an AWS SQS endpoint override pointing at the same echoing
//! server), a wrong Redis password, an unreachable Redis, an unparsable Redis URL, and `logferry validate`.

mod common;

use common::hec::Receiver;
use logferry_testkit::collector::{logferry_bin, Collector};
use logferry_testkit::{free_port, wait_until, RedisServer, TempDir};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const HEC_TOKEN: &str = "hec-Secret-Token-4711";
/// The token the receiver accepts (the `siem` output, which receives the internal events).
const SIEM_TOKEN: &str = "hec-Accepted-Token-4710";
const ALIBABA_SECRET: &str = "ali-AccessKeySecret-4712";
const ALIBABA_STS: &str = "ali-Sts-Security-Token-4713";
const AWS_SECRET: &str = "aws-Secret-Access-Key-4714";
const AWS_SESSION: &str = "aws-Session-Token-4715";
const REDIS_PASSWORD: &str = "redis-Password-4716";
/// A password with a character that must be percent-encoded in a URL.
const REDIS_PASSWORD_SLASH: &str = "redis-Pass/word-4717";

/// Every secret of the tests, and the forms a server or the URL syntax may show it in.
fn secret_forms() -> Vec<String> {
    let mut forms: Vec<String> = [
        HEC_TOKEN,
        SIEM_TOKEN,
        ALIBABA_SECRET,
        ALIBABA_STS,
        AWS_SECRET,
        AWS_SESSION,
        REDIS_PASSWORD,
        REDIS_PASSWORD_SLASH,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    forms.push(REDIS_PASSWORD_SLASH.replace('/', "%2F"));
    forms
}

/// What the echoing server repeats of the HEC post and of the ActionTrail request (the secret follows each).
const ECHOED: [&str; 2] = ["authorization: Splunk ", "x-acs-security-token: "];

fn assert_no_secret(what: &str, text: &str) {
    for secret in secret_forms() {
        assert!(
            !text.contains(&secret),
            "{what} shows the secret {secret}:\n{text}"
        );
    }
}

fn run_config(dir: &Path, persistence: &str, inputs: &str, outputs: &str) -> String {
    format!(
        "globals:\n  id: secrets\n  debug: true\n  sender_stats_period_in_sec: 60\n  stop_drain_timeout_in_sec: 2\n  \
         persistence: {persistence}\ninputs:\n{inputs}outputs:\n{outputs}",
        persistence = persistence.replace("STATE", &dir.join("state").display().to_string()),
    )
}

#[test]
fn secrets_echoed_by_servers_are_masked_in_the_log_and_in_internal_events() {
    let rx = Receiver::start();
    rx.control(json!({"echo_headers": true, "token": SIEM_TOKEN}));
    let url = rx.url();
    let dir = TempDir::new("secrets-echo");
    let inputs = format!(
        r#"  demo:
    id: 1
    services:
      trail: {{format: cloudtrail, events_per_second: 0, count: 20, request_period_in_seconds: 1, tag: my.app.secrets}}
  alibaba:
    id: 2
    credentials: {{access_key_id: LTAIkeyid, access_key_secret: "{ALIBABA_SECRET}", security_token: "{ALIBABA_STS}"}}
    services:
      actiontrail: {{endpoint: "{url}", initial_start_time_in_utc: "2026-01-01T00:00:00Z"}}
  aws:
    id: 3
    region: us-east-1
    credentials: {{access_key: AKIAKEYID, access_secret: "{AWS_SECRET}", session_token: "{AWS_SESSION}"}}
    endpoint: "{url}"
    services:
      audit-events-all: {{sqs_queue_name: q1}}
"#
    );
    // `refused` has the wrong token; `siem` the right one: it receives the internal events.
    let outputs = format!(
        r#"  refused:
    type: splunk_hec
    config: {{url: "{url}", token: "{HEC_TOKEN}", batch_max_wait_in_ms: 100}}
  siem:
    type: splunk_hec
    config: {{url: "{url}", token: "{SIEM_TOKEN}", batch_max_wait_in_ms: 100, ack_poll_interval_in_ms: 100}}
"#
    );
    let config = run_config(
        dir.path(),
        "{type: embedded, directory: \"STATE\"}",
        &inputs,
        &outputs,
    );
    let mut c = Collector::start(&logferry_bin(), dir.path(), &config);
    let internal = || -> Vec<String> {
        rx.events()
            .iter()
            .filter(|e| {
                e["fields"]["tag"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("devo.collectors.out"))
            })
            .filter_map(|e| e["event"].as_str().map(str::to_owned))
            .collect()
    };
    // The refusal of each echoing request reached the log and, through the internal events, the SIEM.
    let echoed = |text: &str, what: &str| text.contains("request headers") && text.contains(what);
    wait_until(
        Duration::from_secs(90),
        "echoed refusals delivered as internal events",
        || {
            let events = internal();
            ECHOED
                .iter()
                .all(|what| events.iter().any(|e| echoed(e, what)))
        },
    );
    assert_no_secret("the internal events", &internal().join("\n"));
    let log = c.log_text();
    assert_no_secret("the log", &log);
    for what in ECHOED {
        assert!(
            log.lines().any(|l| echoed(l, &format!("{what}***"))),
            "no masked echo of {what} in the log:\n{}",
            c.log_tail()
        );
    }
    let (code, _) = c.stop();
    assert_eq!(code, 0, "{}", c.log_tail());
    assert_no_secret("the log", &c.log_text());
}

#[test]
fn redis_passwords_are_never_printed() {
    let redis = RedisServer::start_with(&["--requirepass", "the-right-password"]);
    let unused = free_port();
    let urls = [
        format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", redis.port),
        format!("redis://logferry:{REDIS_PASSWORD}@127.0.0.1:{unused}/0"),
        format!("redis://logferry:{REDIS_PASSWORD}@127.0.0.1:notaport/0"),
        format!("redis://logferry:{REDIS_PASSWORD_SLASH}@127.0.0.1:{unused}/0"),
        format!(
            "redis://logferry:{}@127.0.0.1:{unused}/0",
            REDIS_PASSWORD_SLASH.replace('/', "%2F")
        ),
    ];
    let dirs: Vec<TempDir> = urls.iter().map(|_| TempDir::new("secrets-redis")).collect();
    let inputs = "  demo:\n    id: 1\n    services:\n      trail: {format: cloudtrail, tag: my.app.secrets}\n";
    let mut collectors: Vec<Collector> = urls
        .iter()
        .zip(&dirs)
        .map(|(url, dir)| {
            let persistence = format!("{{type: redis, url: \"{url}\"}}");
            let config = run_config(
                dir.path(),
                &persistence,
                inputs,
                "  console: {type: console}\n",
            );
            Collector::start(&logferry_bin(), dir.path(), &config)
        })
        .collect();
    for (c, url) in collectors.iter_mut().zip(&urls) {
        let code = c.wait_exit(Duration::from_secs(60));
        let log = c.log_text();
        assert_ne!(code, 0, "{url}: {log}");
        assert!(
            log.contains("cannot reach Redis at redis://"),
            "{url}: {log}"
        );
        assert!(log.contains(":***@127.0.0.1:"), "{url}: {log}");
        assert_no_secret(url, &log);
    }
    // `validate` repeats a bad URL in its message: without the password.
    let dir = &dirs[0];
    let path = dir.path().join("bad.yaml");
    let config = run_config(
        dir.path(),
        "{type: embedded}",
        inputs,
        &format!(
            "  hec:\n    type: splunk_hec\n    config: {{url: \"ftp://user:{REDIS_PASSWORD}@h\", token: \"{HEC_TOKEN}\"}}\n"
        ),
    );
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(logferry_bin())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ftp://user:***@h"), "{text}");
    assert_no_secret("validate", &text);
}
