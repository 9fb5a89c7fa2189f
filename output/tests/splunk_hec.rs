//! Splunk HEC sender against a local receiver implementing the reference: only acknowledged posts complete their
//! entries, unacknowledged ones are posted again (after the ack timeout, or by a new sender after a restart), one
//! invalid event is isolated and set aside while the others are delivered, busy answers are retried, a bad token
//! is never taken as success.

mod common;

use common::hec::Receiver;
use common::*;
use logferry::event::Event;
use logferry_output::senders::rejects::{RejectSink, Rejected};
use logferry_output::senders::splunk_hec::{HecConfig, SplunkHecKind, SplunkHecSender};
use logferry_output::{SendError, Sender};
use logferry_testkit::senders::TestPki;
use logferry_testkit::wait_until;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Recorder(Mutex<Vec<Rejected>>);
impl RejectSink for Recorder {
    fn reject(&self, r: &Rejected) {
        self.0.lock().unwrap().push(r.clone());
    }
}

fn hec_config(rx: &Receiver, extra: Value) -> HecConfig {
    let mut cfg = json!({"url": rx.url(), "token": "tok", "host": "h1", "index": "main", "sourcetype": "logferry",
        "batch_max_wait_in_ms": 0, "ack_poll_interval_in_ms": 50,
        "tag_mapping": {"cloud.aws": {"index": "aws", "sourcetype": "aws:cloudtrail"}, "cloud.aws.guardduty": {"source": "gd"}}});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let map = cfg.as_object().unwrap().clone();
    let d = logferry::config::Diagnostics::default();
    let s = logferry::config::Section::new("outputs.hec.config", &map, d.clone(), Path::new("/"));
    let c = HecConfig::read(&s);
    s.finish();
    assert!(d.is_empty(), "{:?}", d.take());
    c.unwrap()
}

fn sender(rx: &Receiver, extra: Value, rejects: Arc<Recorder>) -> SplunkHecSender {
    SplunkHecSender::new(&hec_config(rx, extra), &info(globals()), "hec", rejects)
}

fn events(n: usize, tag: &str, label: &str) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new(tag, T + i as i64, format!("{label} {i} é")))
        .collect()
}

/// Calls `poll` until `cond` holds.
fn poll_until(s: &mut SplunkHecSender, what: &str, mut cond: impl FnMut(&SplunkHecSender) -> bool) {
    wait_until(Duration::from_secs(10), what, || {
        let _ = s.poll();
        cond(s)
    });
}

#[test]
fn entries_complete_only_after_indexer_acknowledgement() {
    let rx = Receiver::start();
    rx.control(json!({"ack": "late", "late_polls": 3}));
    let mut s = sender(&rx, json!({}), Arc::default());
    let (b1, acks) = batch(events(3, "cloud.aws.cloudtrail.events", "a"), "1-0");
    let mut v = vec![b1];
    s.send(&mut v).unwrap();
    assert!(
        v.is_empty(),
        "the sender holds the batch until acknowledged"
    );
    assert_eq!(s.in_flight(), 1);
    assert!(acks.try_recv().is_err(), "not acknowledged yet");
    assert_eq!(rx.events().len(), 3, "posted at once (batch_max_wait 0)");
    poll_until(&mut s, "acknowledgement", |s| s.in_flight() == 0);
    assert_eq!(acks.try_recv().unwrap(), ("1-0".to_string(), 3, 0));
    assert!(rx.received()["ack_polls"].as_u64().unwrap() >= 3);
    let e = &rx.events()[0];
    assert_eq!(e["time"], json!(1685694675.123));
    assert_eq!(e["host"], "h1");
    assert_eq!(e["index"], "aws");
    assert_eq!(e["sourcetype"], "aws:cloudtrail");
    assert_eq!(e["event"], "a 0 é");
    assert_eq!(e["fields"]["tag"], "cloud.aws.cloudtrail.events");
    assert!(rx.received()["gzip_posts"].as_u64().unwrap() >= 1);

    // Mapping: longest prefix wins, unset fields fall back to the output's.
    let (b2, _a2) = batch(
        vec![
            Event::new("cloud.aws.guardduty.x", T, "g"),
            Event::new("other", T, "o"),
        ],
        "2-0",
    );
    s.send(&mut vec![b2]).unwrap();
    let ev = rx.events();
    assert_eq!(
        (
            ev[3]["index"].as_str(),
            ev[3]["source"].as_str(),
            ev[3]["sourcetype"].as_str()
        ),
        (Some("main"), Some("gd"), Some("logferry"))
    );
    assert_eq!(
        (ev[4]["index"].as_str(), ev[4].get("source")),
        (Some("main"), None)
    );
}

/// With `event_id_field`, the stable id an input spliced into a JSON event also goes into `fields`.
#[test]
fn the_event_id_goes_into_fields() {
    let rx = Receiver::start();
    let mut s = sender(
        &rx,
        json!({"event_id_field": "@logferry_id"}),
        Arc::default(),
    );
    let with_id = r#"{"eventID":"x","@devo_pulling_id":1,"@logferry_id":"0f1e2d-7"}"#;
    let (b, _acks) = batch(
        vec![
            Event::new("cloud.aws.cloudtrail.events", T, with_id),
            Event::new("cloud.aws.cloudtrail.events", T, "a line without id"),
        ],
        "1-0",
    );
    s.send(&mut vec![b]).unwrap();
    poll_until(&mut s, "acknowledgement", |s| s.in_flight() == 0);
    let ev = rx.events();
    assert_eq!(ev[0]["fields"]["@logferry_id"], "0f1e2d-7");
    assert_eq!(ev[0]["event"], with_id);
    assert_eq!(ev[1]["fields"].get("@logferry_id"), None);
    let rx2 = Receiver::start();
    let d = logferry::config::Diagnostics::default();
    let map = json!({"url": rx2.url(), "token": "t", "event_id_field": "a\"b"});
    let s2 = logferry::config::Section::new(
        "outputs.hec.config",
        map.as_object().unwrap(),
        d.clone(),
        Path::new("/"),
    );
    HecConfig::read(&s2);
    s2.finish();
    let errors = format!("{:?}", d.take());
    assert!(errors.contains("event_id_field"), "{errors}");
}

#[test]
fn entry_split_over_several_posts_completes_when_all_are_acked() {
    let rx = Receiver::start();
    rx.control(json!({"ack": "late", "late_polls": 1}));
    let mut s = sender(&rx, json!({"batch_max_bytes": 1024}), Arc::default());
    let (b, acks) = batch(events(40, "t", "split"), "7-0");
    s.send(&mut vec![b]).unwrap();
    let posts = rx.received()["posts"].as_u64().unwrap();
    assert!(
        posts >= 4,
        "40 events of ~150 bytes in posts of 1 KiB: {posts} posts"
    );
    poll_until(&mut s, "all posts acknowledged", |s| {
        s.counters.acked_posts == posts
    });
    assert_eq!(acks.try_recv().unwrap().0, "7-0");
    assert_eq!(rx.events().len(), 40);
}

#[test]
fn unacknowledged_posts_are_sent_again_after_timeout_and_after_restart() {
    let rx = Receiver::start();
    rx.control(json!({"ack": "never"}));
    let mut s = sender(&rx, json!({"ack_timeout_in_seconds": 1}), Arc::default());
    let (b, acks) = batch(events(2, "t", "never"), "3-0");
    s.send(&mut vec![b]).unwrap();
    poll_until(&mut s, "a re-post after the ack timeout", |s| {
        s.counters.reposts_after_ack_timeout >= 1 && s.counters.posts >= 2
    });
    assert!(
        acks.try_recv().is_err(),
        "never acknowledged, never completed"
    );
    // A restart: the old sender stops with the entry unacknowledged (it stays in Redis) ...
    s.close();
    drop(s);
    assert!(acks.try_recv().is_err());
    // ... and the new process re-sends it.
    rx.control(json!({"ack": "immediate"}));
    let mut s2 = sender(&rx, json!({}), Arc::default());
    let (b, acks2) = batch(events(2, "t", "never"), "3-0");
    s2.send(&mut vec![b]).unwrap();
    poll_until(&mut s2, "ack after restart", |s| s.in_flight() == 0);
    assert_eq!(acks2.try_recv().unwrap().0, "3-0");
    let n = rx
        .events()
        .iter()
        .filter(|e| e["event"] == "never 0 é")
        .count();
    assert!(
        n >= 3,
        "posted, re-posted after timeout, re-sent after restart: {n}"
    );
}

#[test]
fn one_invalid_event_is_set_aside_and_the_others_delivered() {
    let rx = Receiver::start();
    rx.control(json!({"invalid_marker": "BAD"}));
    let rec = Arc::new(Recorder::default());
    let mut s = sender(&rx, json!({}), rec.clone());
    let mut evs = events(9, "t", "good");
    evs.insert(5, Event::new("t", T, "this one is BAD"));
    let (b1, acks1) = batch(evs, "5-0");
    let (b2, acks2) = batch(events(3, "t", "next"), "6-0");
    s.send(&mut vec![b1, b2]).unwrap();
    poll_until(&mut s, "both entries completed", |s| s.in_flight() == 0);
    assert_eq!(acks1.try_recv().unwrap().0, "5-0");
    assert_eq!(acks2.try_recv().unwrap().0, "6-0");
    let got: Vec<String> = rx
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        got.iter().filter(|e| e.starts_with("good")).count(),
        9,
        "{got:?}"
    );
    assert_eq!(got.iter().filter(|e| e.starts_with("next")).count(), 3);
    assert!(!got.iter().any(|e| e.contains("BAD")));
    let r = rec.0.lock().unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].origin.contains("entry 5-0"), "{}", r[0].origin);
    assert!(r[0].reason.contains("code 6"), "{}", r[0].reason);
    assert!(String::from_utf8_lossy(&r[0].payload).contains("this one is BAD"));
    assert_eq!(s.counters.rejected_events, 1);
}

#[test]
fn busy_collector_is_retried_without_loss_or_duplicates() {
    let rx = Receiver::start();
    rx.control(json!({"busy": 2}));
    let mut s = sender(&rx, json!({}), Arc::default());
    let (b, acks) = batch(events(5, "t", "busy"), "8-0");
    let err = s.send(&mut vec![b]).unwrap_err();
    assert!(matches!(err, SendError::Busy { status: 503, .. }), "{err}");
    poll_until(&mut s, "delivery after busy", |s| s.in_flight() == 0);
    assert_eq!(acks.try_recv().unwrap().0, "8-0");
    assert_eq!(rx.events().len(), 5);
}

#[test]
fn bad_token_is_an_error_and_nothing_is_completed() {
    let rx = Receiver::start();
    let mut s = sender(&rx, json!({"token": "wrong"}), Arc::default());
    let (b, acks) = batch(events(1, "t", "x"), "9-0");
    let err = s.send(&mut vec![b]).unwrap_err();
    assert!(
        matches!(err, SendError::Rejected { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("token"), "{err}");
    assert!(s.poll().is_err());
    assert!(acks.try_recv().is_err());
    assert_eq!(s.in_flight(), 1);
}

#[test]
fn config_is_checked() {
    let (spec, errs) = configure(
        &SplunkHecKind,
        "splunk_hec",
        json!({"url": "ftp://x", "batch_max_bytes": 1, "tag_mapping": {"a": {"idx": 1}}}),
        Path::new("/"),
    );
    assert!(spec.is_none());
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "outputs.out.config.url",
        "outputs.out.config.token",
        "outputs.out.config.batch_max_bytes",
        "outputs.out.config.tag_mapping.a.idx",
    ] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
}

#[test]
fn https_collector_is_verified_against_chain() {
    let pki = TestPki::generate();
    let rx = Receiver::start_with(Some(&pki));
    let mut s = sender(&rx, json!({"chain": pki.cert("ca")}), Arc::default());
    let (b, acks) = batch(events(2, "t", "tls"), "10-0");
    s.send(&mut vec![b]).unwrap();
    poll_until(&mut s, "acknowledged over HTTPS", |s| s.in_flight() == 0);
    assert_eq!(acks.try_recv().unwrap().0, "10-0");
    // Without the chain the public roots do not know the test CA: refused, nothing completed.
    let mut s = sender(&rx, json!({}), Arc::default());
    let (b, acks) = batch(events(1, "t", "untrusted"), "11-0");
    let err = s.send(&mut vec![b]).unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate")
            || err.to_string().contains("UnknownIssuer"),
        "{err}"
    );
    assert!(acks.try_recv().is_err());
}

#[test]
fn set_aside_events_land_in_the_dead_letter_stream() {
    use logferry_output::senders::rejects::DeadLetterRejects;
    let redis = logferry_testkit::RedisServer::start();
    let keys = logferry::redis_conn::Keys::new("hecdl");
    let sink = Arc::new(DeadLetterRejects::new(&redis.url(), &keys));
    let rx = Receiver::start();
    rx.control(json!({"invalid_marker": "BAD"}));
    let mut s = SplunkHecSender::new(&hec_config(&rx, json!({})), &info(globals()), "hec", sink);
    let (b, acks) = batch(
        vec![Event::new("t", T, "ok"), Event::new("t", T, "BAD one")],
        "12-0",
    );
    s.send(&mut vec![b]).unwrap();
    poll_until(&mut s, "entry completed", |s| s.in_flight() == 0);
    assert_eq!(acks.try_recv().unwrap().0, "12-0");
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(keys.dead_letters())
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(entries.len(), 1);
    let fields = &entries[0].1;
    let field = |k: &str| -> String {
        let at = fields
            .iter()
            .position(|f| f == k)
            .unwrap_or_else(|| panic!("no {k} in {fields:?}"));
        fields[at + 1].clone()
    };
    assert!(
        field("origin").contains("output hec") && field("origin").contains("entry 12-0"),
        "{}",
        field("origin")
    );
    assert!(field("reason").contains("code 6"));
    assert!(field("payload").contains("BAD one"));
}
