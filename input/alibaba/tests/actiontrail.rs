//! The `actiontrail` puller against a local LookupEvents server that speaks the real JSON wire format, pages with
//! NextToken, throttles, and VERIFIES the V3 / V2 signatures (a wrong signature fails the test).

mod common;

use chrono::{TimeZone, Utc};
use common::*;
use logferry_input_alibaba::actiontrail::{api_time, ActionTrailClient};
use logferry_input_alibaba::config::{ActionTrailConfig, Credentials, SignatureVersion};
use logferry_input_alibaba::sign;
use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::log_capture::LogCapture;
use logferry_testkit::senders::{CaptureMode, CaptureServer, TestPki};
use logferry_testkit::{seed_lines, wait_until, RedisServer, TempDir};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const AK: &str = "testid";
const SECRET: &str = "testsecret";

/// The server's view of the world.
struct Trail {
    events: Mutex<Vec<Value>>,
    throttle_next: AtomicU32,
    /// Requests for windows starting at or after this time (epoch seconds) wait until it is lifted ([`Hold`]).
    hold_from: Mutex<Option<i64>>,
    held: Condvar,
}

/// Holds the windows from a time on while it lives (lifted when dropped, also when the test fails).
struct Hold(Arc<Trail>);

impl Hold {
    fn from(trail: &Arc<Trail>, time: i64) -> Hold {
        *trail.hold_from.lock().unwrap() = Some(time);
        Hold(trail.clone())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        *self.0.hold_from.lock().unwrap() = None;
        self.0.held.notify_all();
    }
}

fn event(id: &str, t: i64) -> Value {
    json!({
        "eventId": id,
        "eventVersion": if t % 2 == 0 { json!(1) } else { json!("1") },
        "eventName": "ConsoleSignin",
        "eventTime": api_time(Utc.timestamp_opt(t, 0).unwrap()),
        "eventType": "ConsoleSignin",
        "eventRW": "Write",
        "acsRegion": "cn-hangzhou",
        "sourceIpAddress": "198.51.100.7",
        "userIdentity": {"type": "ram-user", "principalId": "2046", "accountId": "1234567890", "userName": "alice"},
    })
}

/// Checks the request's signature the way ActionTrail does; None when it matches.
fn signature_problem(req: &Req) -> Option<String> {
    if let Some(auth) = req.header("Authorization") {
        let rest = auth.strip_prefix("ACS3-HMAC-SHA256 ")?;
        let mut cred = "";
        let mut signed = "";
        let mut sig = "";
        for part in rest.split(',') {
            let (k, v) = part.split_once('=').unwrap();
            match k.trim() {
                "Credential" => cred = v,
                "SignedHeaders" => signed = v,
                "Signature" => sig = v,
                _ => {}
            }
        }
        if cred != AK {
            return Some(format!("unknown AccessKeyId {cred}"));
        }
        for needed in [
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version",
        ] {
            if !signed.split(';').any(|h| h == needed) {
                return Some(format!("header {needed} is not signed"));
            }
        }
        let headers: Vec<(&str, &str)> = signed
            .split(';')
            .map(|h| (h, req.header(h).unwrap_or("")))
            .collect();
        let q = sign::canonical_query(&req.query);
        let ours = sign::acs3_sign(SECRET, &req.method, &req.path, &q, &headers, &req.body);
        if ours.signature != sig {
            return Some(format!(
                "server string to sign is: ACS3-HMAC-SHA256\n{}",
                ours.hashed_canonical_request
            ));
        }
        if req.header("x-acs-action") != Some("LookupEvents")
            || req.header("x-acs-version") != Some("2020-07-06")
        {
            return Some("wrong action or version".into());
        }
        let date =
            chrono::DateTime::parse_from_rfc3339(req.header("x-acs-date").unwrap_or("")).ok()?;
        if (Utc::now().timestamp() - date.timestamp()).abs() > 900 {
            return Some("x-acs-date skew".into());
        }
        None
    } else {
        let sig = req.param("Signature").unwrap_or("").to_owned();
        let rest: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "Signature")
            .cloned()
            .collect();
        if req.param("AccessKeyId") != Some(AK) || req.param("Action") != Some("LookupEvents") {
            return Some("missing common parameters".into());
        }
        let ours = sign::rpc_v2_signature(SECRET, &req.method, &rest);
        (ours != sig).then(|| {
            format!(
                "server string to sign is: {}",
                sign::rpc_v2_string_to_sign(&req.method, &rest)
            )
        })
    }
}

fn parse(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

fn handle(trail: &Trail, req: &Req) -> Resp {
    if let Some(p) = signature_problem(req) {
        return Resp::json(
            400,
            &json!({"RequestId": "r1", "HostId": "h", "Code": "SignatureDoesNotMatch", "Message": format!("Specified signature is not matched with our calculation. {p}")}),
        );
    }
    if trail.throttle_next.load(Ordering::SeqCst) > 0 {
        trail.throttle_next.fetch_sub(1, Ordering::SeqCst);
        return Resp::json(
            400,
            &json!({"RequestId": "r2", "HostId": "h", "Code": "Throttling", "Message": "Request was denied due to request throttling."}),
        );
    }
    let (Some(st), Some(et)) = (req.param("StartTime"), req.param("EndTime")) else {
        return Resp::json(
            400,
            &json!({"RequestId": "r3", "Code": "InvalidParameter", "Message": "StartTime and EndTime"}),
        );
    };
    let (s, e) = (parse(st), parse(et));
    // Bounded, so that a test that never lifts its hold still ends.
    let _lifted = trail
        .held
        .wait_timeout_while(
            trail.hold_from.lock().unwrap(),
            Duration::from_secs(120),
            |hold| hold.is_some_and(|from| s >= from),
        )
        .unwrap();
    if e > Utc::now().timestamp() {
        return Resp::json(
            400,
            &json!({"RequestId": "r4", "Code": "InvalidParameterStartTimeExceedsCurrent", "Message": "future"}),
        );
    }
    let max: usize = req.param("MaxResults").unwrap().parse().unwrap();
    assert!((1..=50).contains(&max));
    let mut matching: Vec<Value> = trail
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|ev| (s..=e).contains(&parse(ev["eventTime"].as_str().unwrap())))
        .cloned()
        .collect();
    matching.sort_by_cached_key(|ev| std::cmp::Reverse(parse(ev["eventTime"].as_str().unwrap())));
    // The token holds characters that need percent-encoding (and must come back intact).
    let offset = match req.param("NextToken") {
        None => 0,
        Some(t) => match t.strip_prefix("pg/").and_then(|r| r.strip_suffix("+=")) {
            Some(n) => n.parse().unwrap(),
            None => {
                return Resp::json(
                    400,
                    &json!({"RequestId": "r5", "Code": "InvalidNextToken", "Message": t}),
                )
            }
        },
    };
    let page: Vec<Value> = matching.iter().skip(offset).take(max).cloned().collect();
    let mut body = json!({"RequestId": "ok", "StartTime": st, "EndTime": et, "Events": page});
    if offset + max < matching.len() {
        body["NextToken"] = json!(format!("pg/{}+=", offset + max));
    }
    Resp::json(200, &body)
}

fn server(events: Vec<Value>) -> (HttpServer, Arc<Trail>) {
    let trail = Arc::new(Trail {
        events: Mutex::new(events),
        throttle_next: AtomicU32::new(0),
        hold_from: Mutex::new(None),
        held: Condvar::new(),
    });
    let t2 = trail.clone();
    (HttpServer::start(move |r| handle(&t2, r)), trail)
}

fn config(endpoint: &str, start: &str, sig: &str) -> Value {
    json!({"alibaba": {"id": 12341, "credentials": {"access_key_id": AK, "access_key_secret": SECRET},
        "services": {"actiontrail": {"region": "cn-hangzhou", "endpoint": endpoint, "initial_start_time_in_utc": start,
            "signature_version": sig, "max_results": 7, "requests_per_second": 10, "window_size_in_seconds": 1800}}}})
}

/// The pull requests (not the setup's authentication test, which asks for 1 result).
fn pulls(reqs: &[Req]) -> Vec<Req> {
    reqs.iter()
        .filter(|r| r.param("MaxResults") != Some("1") && signature_problem(r).is_none())
        .cloned()
        .collect()
}

fn ids(p: &Pipeline) -> Vec<String> {
    p.events()
        .iter()
        .map(|e| {
            assert_eq!(e.tag, "cloud.alibaba.actiontrail.events");
            let v: Value = serde_json::from_str(&e.message).unwrap();
            assert!(v["@devo_pulling_id"].as_u64().is_some());
            v["eventId"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn windows_paging_dedup_state_and_restart() {
    for sig in ["v3", "v2"] {
        let now = Utc::now().timestamp();
        let start = now - 3 * 3600;
        // Events every 97 s over 3 hours, three sharing one second; some newer than now-600 (not yet due).
        let mut events: Vec<Value> = (0..110)
            .map(|i| event(&format!("e{i}"), start + i * 97))
            .collect();
        events.push(event("same-a", start + 1800));
        events.push(event("same-b", start + 1800));
        events.push(event("too-old", start - 10));
        let due: HashSet<String> = events
            .iter()
            .filter(|e| (start..=now - 601).contains(&parse(e["eventTime"].as_str().unwrap())))
            .map(|e| e["eventId"].as_str().unwrap().to_owned())
            .collect();
        let (srv, trail) = server(events);
        trail.throttle_next.store(1, Ordering::SeqCst);
        let p = Pipeline::start("at");
        let cfg = config(
            &srv.url(),
            &api_time(Utc.timestamp_opt(start, 0).unwrap()),
            sig,
        );
        let (mut specs, errs) = configure(cfg.clone());
        assert!(errs.is_empty(), "{errs:?}");
        let run = Running::start(specs.remove(0), p.factory());
        wait_until(
            Duration::from_secs(30),
            "every due event in Redis and the state committed",
            || {
                ids(&p).len() >= due.len()
                    && p.state(&["alibaba", "12341", "actiontrail", "predefined"])
                        .is_some_and(|s| s["data"]["next_start"].is_string())
            },
        );
        run.stop();
        let got = ids(&p);
        assert_eq!(got.len(), due.len(), "{sig}: no duplicates");
        assert_eq!(
            got.iter().cloned().collect::<HashSet<_>>(),
            due,
            "{sig}: exactly the due events"
        );
        let state = p
            .state(&["alibaba", "12341", "actiontrail", "predefined"])
            .unwrap();
        let next = parse(state["data"]["next_start"].as_str().unwrap());
        // The puller's clock ran on after `now` (later cycles move the window on): bound by the time of the check.
        let checked_at = Utc::now().timestamp();
        assert!(
            (now - 602..=checked_at - 600).contains(&next),
            "{sig}: window ends at the end of the previous second of now-600: {state}"
        );
        // Every request repeated StartTime/EndTime inside the windows; the throttled one was retried.
        let reqs = srv.requests();
        assert!(
            reqs.len() > due.len() / 7,
            "{sig}: paged ({} requests)",
            reqs.len()
        );

        // A late event lands in the edge second; another event at the same second was already sent.
        trail.events.lock().unwrap().push(event("late-edge", next));
        let edge_sent: Vec<String> = state["data"]["edge_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let (mut specs, _) = configure(cfg.clone());
        let before = srv.requests().len();
        let run = Running::start(specs.remove(0), p.factory());
        wait_until(Duration::from_secs(30), "the late event", || {
            ids(&p).contains(&"late-edge".to_owned())
        });
        run.stop();
        let restarted = pulls(&srv.requests()[before..]);
        assert_eq!(
            parse(restarted[0].param("StartTime").unwrap()),
            next,
            "{sig}: resumed from the state"
        );
        let got = ids(&p);
        assert_eq!(
            got.len(),
            due.len() + 1,
            "{sig}: only the late event is new (edge ids {edge_sent:?} filtered)"
        );

        // Changing initial_start_time_in_utc resets the persistence: everything is read again.
        let cfg2 = config(
            &srv.url(),
            &api_time(Utc.timestamp_opt(start + 3600, 0).unwrap()),
            sig,
        );
        let (mut specs, _) = configure(cfg2);
        let before = srv.requests().len();
        let run = Running::start(specs.remove(0), p.factory());
        wait_until(Duration::from_secs(30), "requests after reset", || {
            !pulls(&srv.requests()[before..]).is_empty()
                && p.state(&["alibaba", "12341", "actiontrail", "predefined"])
                    .is_some_and(|s| {
                        s["defining"]["initial_start_time_in_utc"]
                            != cfg["alibaba"]["services"]["actiontrail"]
                                ["initial_start_time_in_utc"]
                    })
        });
        run.stop();
        assert_eq!(
            parse(
                pulls(&srv.requests()[before..])[0]
                    .param("StartTime")
                    .unwrap()
            ),
            start + 3600,
            "{sig}: reset to the new start"
        );
    }
}

/// A catch-up over many windows is cut by `max_cycle_seconds`: its events carry several `@devo_pulling_id`s, one
/// per cycle, in order; the next cycle starts at once (not after `request_period_in_seconds`, 60 s here); nothing is
/// repeated or lost across the cuts.
#[test]
fn a_catch_up_is_cut_into_cycles_of_max_cycle_seconds() {
    let now = Utc::now().timestamp();
    let start = now - 1800;
    // One event per 60 s window from 30 min ago; those of the last 10 min are not due yet.
    let events: Vec<Value> = (0..30)
        .map(|i| event(&format!("w{i}"), start + i * 60 + 30))
        .collect();
    let due = events
        .iter()
        .filter(|e| parse(e["eventTime"].as_str().unwrap()) <= now - 601)
        .count();
    let (srv, _trail) = server(events);
    let mut cfg = config(
        &srv.url(),
        &api_time(Utc.timestamp_opt(start, 0).unwrap()),
        "v3",
    );
    let service = &mut cfg["alibaba"]["services"]["actiontrail"];
    // ~20 windows at 5 requests/s take ~4 s: at least 3 cycles of 1 s.
    service["window_size_in_seconds"] = json!(60);
    service["requests_per_second"] = json!(5);
    service["max_cycle_seconds"] = json!(1);
    let (mut specs, errs) = configure(cfg);
    assert!(errs.is_empty(), "{errs:?}");
    let p = Pipeline::start("at-cycles");
    let run = Running::start(specs.remove(0), p.factory());
    wait_until(Duration::from_secs(30), "every due event in Redis", || {
        p.events().len() >= due
    });
    run.stop();
    let got: Vec<(String, u64, i64)> = p
        .events()
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.message).unwrap();
            (
                v["eventId"].as_str().unwrap().to_owned(),
                v["@devo_pulling_id"].as_u64().unwrap(),
                parse(v["eventTime"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(got.len(), due, "nothing repeated across the cuts: {got:?}");
    let cycles: std::collections::BTreeSet<u64> = got.iter().map(|g| g.1).collect();
    assert!(
        cycles.len() >= 3,
        "the catch-up ran in several bounded cycles: {got:?}"
    );
    assert!(
        got.windows(2).all(|w| w[0].2 < w[1].2 && w[0].1 <= w[1].1),
        "windows in time order, each cycle after the previous one: {got:?}"
    );
}

/// A server certificate the system does not trust is an ERROR naming the certificate, not a WARNING retried as a
/// passing network error (`max_retries` times, every cycle).
#[test]
fn a_refused_certificate_is_an_error_not_retried_as_a_network_error() {
    let log = LogCapture::install();
    let pki = TestPki::generate();
    let srv = CaptureServer::start(CaptureMode::Tls {
        pki: &pki,
        require_client: false,
    });
    let start = api_time(Utc::now() - chrono::TimeDelta::hours(1));
    let (mut specs, errs) = configure(config(
        &format!("https://127.0.0.1:{}", srv.port),
        &start,
        "v3",
    ));
    assert!(errs.is_empty(), "{errs:?}");
    let p = Pipeline::start("at-tls");
    let run = Running::start(specs.remove(0), p.factory());
    const FAILED: &str = "Authentication test failed";
    wait_until(Duration::from_secs(30), "the setup's failure line", || {
        log.count(FAILED) > 0
    });
    run.stop();
    let lines = log.lines();
    let failed = lines.iter().find(|l| l.contains(FAILED)).unwrap();
    assert!(
        failed.starts_with("ERROR ") && failed.contains("certificate"),
        "{failed}"
    );
    let warnings: Vec<&String> = lines.iter().filter(|l| l.starts_with("WARN ")).collect();
    assert!(
        warnings.is_empty(),
        "retried as a network error: {warnings:?}"
    );
}

fn client_cfg(endpoint: &str, sig: SignatureVersion) -> ActionTrailConfig {
    let (mut specs, errs) = configure(
        json!({"alibaba": {"id": 1, "credentials": {"access_key_id": AK, "access_key_secret": SECRET},
        "services": {"actiontrail": {"endpoint": endpoint}}}}),
    );
    assert!(errs.is_empty(), "{errs:?}");
    drop(specs.remove(0));
    ActionTrailConfig {
        region: "cn-hangzhou".into(),
        endpoint: endpoint.into(),
        initial_start_time_in_utc: None,
        request_period: Duration::from_secs(60),
        lag: Duration::from_secs(600),
        window: Duration::from_secs(3600),
        max_cycle: Duration::from_secs(60),
        max_results: 50,
        requests_per_second: 2.0,
        max_retries: 3,
        signature_version: sig,
        lookup_attributes: vec![],
        tag: "t".into(),
        timeout: Duration::from_secs(5),
        event_id_field: None,
    }
}

/// A client of the test server signing with `secret` (the server knows [`SECRET`]).
fn trail_client(url: &str, sig: SignatureVersion, secret: &str) -> ActionTrailClient {
    let creds = Credentials {
        access_key_id: AK.into(),
        access_key_secret: logferry::config::Secret(secret.into()),
        security_token: None,
    };
    ActionTrailClient::new(
        client_cfg(url, sig),
        creds,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap()
}

#[test]
fn wrong_secret_is_refused_by_the_server() {
    let (srv, _) = server(vec![]);
    for sig in [SignatureVersion::V3, SignatureVersion::V2] {
        let odd_token_lookup = |secret: &str| {
            let mut c = trail_client(&srv.url(), sig, secret);
            c.lookup(
                "2024-01-01T00:00:00Z",
                "2024-01-01T01:00:00Z",
                50,
                Some("a b*c~d/é+=&"),
            )
            .unwrap_err()
        };
        let e = odd_token_lookup("wrong");
        assert_eq!(e.code(), "SignatureDoesNotMatch", "{sig:?}");
        let e = odd_token_lookup(SECRET);
        assert_eq!(
            e.code(),
            "InvalidNextToken",
            "{sig:?}: the signature of an odd token is accepted; only the token is refused"
        );
    }
}

#[test]
fn throttling_is_retried_within_the_request_budget() {
    let (srv, trail) = server(vec![]);
    trail.throttle_next.store(2, Ordering::SeqCst);
    let mut c = trail_client(&srv.url(), SignatureVersion::V3, SECRET);
    let page = c
        .lookup("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", 50, None)
        .unwrap();
    assert!(page.events.is_empty() && page.next_token.is_none());
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 3, "two throttled, then accepted");
    for w in reqs.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(450),
            "2 requests/s budget kept: {:?}",
            w[1].at - w[0].at
        );
    }
    trail.throttle_next.store(10, Ordering::SeqCst);
    let e = c
        .lookup("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", 50, None)
        .unwrap_err();
    assert_eq!(e.code(), "Throttling", "gives up after max_retries");
}

#[test]
fn config_errors_follow_the_seed_table() {
    let (_, errs) = configure(config("http://127.0.0.1:1", "2999-01-01T00:00:00Z", "v3"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .to_string()
            .contains("InitVariablesError(3): Date 2999-01-01T00:00:00Z is in the future"),
        "{}",
        errs[0]
    );
    let (_, errs) = configure(config("http://127.0.0.1:1", "2024-01-01 00:00:00", "v3"));
    assert!(errs[0].to_string().contains("InitVariablesError(2): initial_start_time_in_utc is not set as per the datetime_format : %Y-%m-%dT%H:%M:%SZ"), "{}", errs[0]);
    let (_, errs) = configure(config("http://127.0.0.1:1", "2024-01-01T00:00:00Z", "v9"));
    assert_eq!(
        errs[0].path,
        "inputs.alibaba.services.actiontrail.signature_version"
    );
    let (_, errs) = configure(
        json!({"alibaba": {"id": 1, "credentials": {"access_key_id": "a"}, "services": {"actiontrail": {"bogus": 1}, "nope": {}}}}),
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"inputs.alibaba.credentials.access_key_secret"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"inputs.alibaba.services.actiontrail.region"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"inputs.alibaba.services.actiontrail.bogus"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"inputs.alibaba.services.nope.type"),
        "{paths:?}"
    );
}

#[test]
fn example_configs_validate() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("alibaba") {
            continue;
        }
        let file = logferry::config::ConfigFile::load(&path).unwrap();
        let (specs, errs) = configure(file.root["inputs"].clone());
        assert!(errs.is_empty(), "{name}: {errs:?}");
        assert!(!specs.is_empty(), "{name}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// A real run (the binary) writes the ActionTrail lines of seed 000 as the seed shows them: thread names, the
/// setup thread, wording and levels, compared after removing times and numbers.
#[test]
fn a_run_writes_the_seed_000_lines() {
    let now = Utc::now().timestamp();
    let start = now - 1800;
    // 74 due events: two pages of 50, as in the seed's example.
    let events: Vec<Value> = (0..74)
        .map(|i| event(&format!("s{i}"), start + 10 + i * 15))
        .collect();
    let (srv, _trail) = server(events);
    let redis = RedisServer::start();
    let dir = TempDir::new("seed-000");
    let config = json!({
        "globals": {"id": "seed", "persistence": {"type": "redis", "url": redis.url()}},
        "inputs": {"alibaba": {"id": 12341, "credentials": {"access_key_id": AK, "access_key_secret": SECRET},
            "services": {"actiontrail": {"region": "cn-hangzhou", "endpoint": srv.url(),
                "initial_start_time_in_utc": api_time(Utc.timestamp_opt(start, 0).unwrap()),
                "requests_per_second": 10}}}},
        "outputs": {"console": {"type": "console"}},
    });
    let mut c = Collector::start(&logferry_bin(), dir.path(), &config.to_string());
    c.wait_log("Data collection completed", Duration::from_secs(30));
    c.stop();
    let examples = include_str!("fixtures/seed_000_actiontrail.log");
    let missing = seed_lines::missing_lines(examples, &c.log_text());
    assert!(
        missing.is_empty(),
        "seed lines not written:\n{}\n\nlog:\n{}",
        missing.join("\n"),
        c.log_text()
    );
}

/// A start 2 hours back read in 60 s windows is a backfill: while the server holds the windows of its second hour,
/// `logferry status --json` shows it under way (a share strictly between 0 and 1 and a time left); lifted, it shows
/// it done once the data is up to date.
#[test]
fn status_shows_the_backfill_of_windows() {
    let now = Utc::now().timestamp();
    let start = now - 7200;
    let events: Vec<Value> = (0..40)
        .map(|i| event(&format!("b{i}"), start + 10 + i * 150))
        .collect();
    let (srv, trail) = server(events);
    let hold = Hold::from(&trail, start + 3600);
    let redis = RedisServer::start();
    let dir = TempDir::new("at-backfill");
    let config = json!({
        "globals": {"id": "backfill", "persistence": {"type": "redis", "url": redis.url()}},
        "inputs": {"alibaba": {"id": 12341, "credentials": {"access_key_id": AK, "access_key_secret": SECRET},
            "services": {"actiontrail": {"region": "cn-hangzhou", "endpoint": srv.url(),
                "initial_start_time_in_utc": api_time(Utc.timestamp_opt(start, 0).unwrap()),
                "window_size_in_seconds": 60, "requests_per_second": 10}}}},
        "outputs": {"console": {"type": "console"}},
    });
    let mut c = Collector::start(&logferry_bin(), dir.path(), &config.to_string());
    let backfill = || collector::status_backfill(&dir.path().join("config.yaml"), "actiontrail");
    let under_way = |b: &Value| {
        b["done_ratio"].as_f64().is_some_and(|r| r > 0.0 && r < 1.0)
            && b["seconds_left"].as_f64().is_some_and(|s| s > 0.0)
    };
    let mut seen = Value::Null;
    wait_until(
        Duration::from_secs(60),
        "status showing the backfill under way (0 < done_ratio < 1, a time left)",
        || {
            seen = backfill().unwrap_or(Value::Null);
            under_way(&seen)
        },
    );
    // Held at the middle of the range: the share grows to about half (the windows before the hold, of the 2 hours
    // up to the start) and stays under way there.
    wait_until(
        Duration::from_secs(60),
        "status showing the backfill reach the held middle",
        || {
            seen = backfill().unwrap_or(Value::Null);
            seen["done_ratio"].as_f64().is_some_and(|r| r >= 0.45)
        },
    );
    assert!(
        under_way(&seen) && seen["done_ratio"].as_f64() < Some(0.55),
        "{seen}"
    );
    drop(hold);
    c.wait_log("The data is up to date!", Duration::from_secs(60));
    wait_until(
        Duration::from_secs(30),
        "status showing the backfill of windows done",
        || {
            backfill()
                .is_some_and(|b| b["done_ratio"] == json!(1.0) && b["seconds_left"] == json!(0.0))
        },
    );
    c.stop();
}

/// The eventId of every event a collector printed on its console (repeated ones included).
fn console_event_ids(c: &Collector) -> Vec<String> {
    c.log_text()
        .lines()
        .filter(|l| l.contains("cloud.alibaba.actiontrail.events"))
        .filter_map(|l| {
            let at = l.find("\"eventId\":\"")? + 11;
            Some(l[at..].split('"').next()?.to_owned())
        })
        .collect()
}

/// `kill -9` of the InputProcess twice inside one window of 3,000 events (100 pages of 30: a flush of 800 ends inside a page), through the binary: each
/// write saved the window's page and the events of it done, so the restarted process goes on at that page. Every
/// event arrives, a kill repeats at most one flush (measured: printed), and the log says where it resumed.
#[test]
fn a_killed_input_resumes_inside_the_window() {
    const EVENTS: i64 = 3_000;
    /// The most one flush of a sink holds: 8 wraps of `queue_wrap_max_size_in_messages` (100).
    const FLUSH_EVENTS: usize = 800;
    let now = Utc::now().timestamp();
    let start = now - 3000;
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| event(&format!("k{i}"), start + 10 + i * 2300 / EVENTS))
        .collect();
    let (srv, _trail) = server(events);
    let redis = RedisServer::start();
    let dir = TempDir::new("at-resume");
    let config = json!({
        "globals": {"id": "resume", "persistence": {"type": "redis", "url": redis.url()},
            "queue_max_size_in_messages": 2000, "queue_wrap_max_size_in_messages": 100},
        "inputs": {"alibaba": {"id": 12341, "credentials": {"access_key_id": AK, "access_key_secret": SECRET},
            "services": {"actiontrail": {"region": "cn-hangzhou", "endpoint": srv.url(),
                "initial_start_time_in_utc": api_time(Utc.timestamp_opt(start, 0).unwrap()),
                "window_size_in_seconds": 3600, "max_results": 30, "requests_per_second": 10}}}},
        "outputs": {"console": {"type": "console"}},
    });
    let mut c = Collector::start(&logferry_bin(), dir.path(), &config.to_string());
    let kills = [30, 65];
    kill_input_at(&c, &kills, EVENTS as usize, || console_event_ids(&c).len());
    wait_until(
        Duration::from_secs(60),
        "every event on the console",
        || console_event_ids(&c).iter().collect::<HashSet<_>>().len() == EVENTS as usize,
    );
    c.wait_log("The data is up to date!", Duration::from_secs(30));
    let got = console_event_ids(&c);
    let duplicates = got.len() - EVENTS as usize;
    eprintln!(
        "{} kills inside a window of {EVENTS} events: {duplicates} duplicates",
        kills.len()
    );
    assert!(
        duplicates <= kills.len() * FLUSH_EVENTS,
        "{duplicates} duplicates for {} kills",
        kills.len()
    );
    let log = c.log_text();
    let resumed: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("<14>") && l.contains("Resuming window "))
        .collect();
    assert_eq!(resumed.len(), kills.len(), "{resumed:#?}\n{}", c.log_tail());
    for line in &resumed {
        assert!(line.contains(" at page pg/"), "inside the window: {line}");
        let n: u64 = line
            .split(" event ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no event number in {line}"));
        assert!(n > 0 && n <= 30, "{line}");
        assert!(
            line.contains(&format!(": {n} events of that page already queued")),
            "{line}"
        );
    }
    c.stop();
}

/// With `event_id: true` every event carries `@logferry_id` from its eventId: the same events read by two pullers
/// (two collectors) get the same ids, different events different ones.
#[test]
fn stable_ids_come_from_the_event_id() {
    const EVENTS: i64 = 40;
    let now = Utc::now().timestamp();
    let start = now - 3000;
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| event(&format!("id{i}"), start + 10 + i * 30))
        .collect();
    let (srv, _trail) = server(events);
    let read = |id: &str| -> HashMap<String, String> {
        let mut cfg = config(
            &srv.url(),
            &api_time(Utc.timestamp_opt(start, 0).unwrap()),
            "v3",
        );
        cfg["alibaba"]["services"]["actiontrail"]["event_id"] = json!(true);
        let (mut specs, errs) = configure(cfg);
        assert!(errs.is_empty(), "{errs:?}");
        let p = Pipeline::start(id);
        let run = Running::start(specs.remove(0), p.factory());
        wait_until(Duration::from_secs(30), "every event", || {
            p.events().len() as i64 >= EVENTS
        });
        run.stop();
        p.events()
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.message).unwrap();
                let id = v["@logferry_id"].as_str().expect("an id").to_owned();
                (v["eventId"].as_str().unwrap().to_owned(), id)
            })
            .collect()
    };
    let (first, second) = (read("ids-a"), read("ids-b"));
    assert_eq!(first.len() as i64, EVENTS);
    assert_eq!(first, second, "the same events, the same ids");
    let distinct: HashSet<&String> = first.values().collect();
    assert_eq!(
        distinct.len() as i64,
        EVENTS,
        "different events, different ids"
    );
    assert_eq!(
        first["id7"],
        logferry_input::event_id::source_hash(&["actiontrail", "id7"])
    );
}
