//! Syslog sender against a real rsyslogd: both header formats and both framings, plain TCP and TLS (with and
//! without a client certificate); events arrive intact, non-ASCII included.

mod common;

use common::*;
use logferry::event::Event;
use logferry_output::senders::syslog::SyslogKind;
use logferry_testkit::senders::{Rsyslog, TestPki};
use logferry_testkit::wait_until;
use serde_json::json;
use std::time::Duration;

fn events(label: &str) -> Vec<Event> {
    vec![
        Event::new("my.app.tag", T, format!("{label} plain ascii")),
        Event::new("my.app.tag", T + 1, format!("{label} ünïcödé ✓ 日本語")),
        Event::new("other.tag", T + 2, format!("{label} {{\"json\":true}}\n")),
    ]
}

fn deliver(rs: &Rsyslog, cfg: serde_json::Value, label: &str) {
    let mut cfg = cfg;
    cfg["address"] = json!("127.0.0.1");
    cfg["port"] = json!(rs.port);
    cfg["hostname"] = json!("loghost");
    let mut s = build_sender(&SyslogKind, "syslog", cfg, globals());
    send_completed(s.as_mut(), events(label), "1-0");
    s.close();
}

fn check(rs: &Rsyslog, label: &str) {
    wait_until(
        Duration::from_secs(15),
        &format!("3 lines of {label} in rsyslog's file"),
        || {
            rs.lines()
                .iter()
                .filter(|l| l.contains(&format!("{label} ")))
                .count()
                == 3
        },
    );
    let got: Vec<String> = rs
        .lines()
        .into_iter()
        .filter(|l| l.contains(&format!("{label} ")))
        .collect();
    // RFC 3164 keeps the space after "TAG:" in %msg%; RFC 5424 does not.
    let norm: Vec<String> = got.iter().map(|l| l.replacen("| ", "|", 1)).collect();
    assert_eq!(
        norm,
        vec![
            format!("loghost|my.app.tag|{label} plain ascii"),
            format!("loghost|my.app.tag|{label} ünïcödé ✓ 日本語"),
            format!("loghost|other.tag|{label} {{\"json\":true}}"),
        ],
        "rsyslog stderr: {}",
        rs.stderr()
    );
}

#[test]
fn plain_tcp_both_formats_both_framings() {
    let rs = Rsyslog::start(None);
    let cases = [
        ("relaynl", json!({})),
        ("relayoc", json!({"framing": "octet_counting"})),
        ("rfcnl", json!({"header_format": "rfc5424"})),
        (
            "rfcoc",
            json!({"header_format": "rfc5424", "framing": "octet_counting"}),
        ),
    ];
    for (label, cfg) in &cases {
        deliver(&rs, cfg.clone(), label);
    }
    for (label, _) in &cases {
        check(&rs, label);
    }
}

#[test]
fn tls_with_and_without_client_certificate() {
    let pki = TestPki::generate();
    let anon = Rsyslog::start(Some((&pki, false)));
    deliver(
        &anon,
        json!({"tls": true, "chain": pki.cert("ca"), "header_format": "rfc5424", "framing": "octet_counting"}),
        "tlsanon",
    );
    check(&anon, "tlsanon");
    let mutual = Rsyslog::start(Some((&pki, true)));
    deliver(
        &mutual,
        json!({"tls": true, "chain": pki.cert("ca"), "cert": pki.cert("client"), "key": pki.key("client")}),
        "tlsmutual",
    );
    check(&mutual, "tlsmutual");
}

/// A pretty-printed JSON record, each of its lines marked with `label`.
fn pretty_json(label: &str) -> String {
    format!("{{\n  \"{label}_user\": \"alice\",\r\n  \"{label}_seq\": 1\n}}")
}

/// Sends one multi-line event with newline framing and `multiline_events: mode` (None: the default); returns
/// rsyslog's lines that hold any part of it, once the event sent after it arrived.
fn multi_line_event_through(rs: &Rsyslog, mode: Option<&str>, label: &str) -> Vec<String> {
    let mut cfg = json!({"address": "127.0.0.1", "port": rs.port, "hostname": "loghost"});
    if let Some(mode) = mode {
        cfg["multiline_events"] = json!(mode);
    }
    let mut s = build_sender(&SyslogKind, "syslog", cfg, globals());
    let event = Event::new("my.app.tag", T, pretty_json(label));
    let last = Event::new("my.app.tag", T, format!("{label} after"));
    send_completed(s.as_mut(), vec![event, last], "1-0");
    s.close();
    wait_until(
        Duration::from_secs(15),
        "the event after the multi-line one",
        || {
            rs.lines()
                .iter()
                .any(|l| l.contains(&format!("{label} after")))
        },
    );
    rs.lines()
        .into_iter()
        .filter(|l| l.contains(label) && !l.contains(&format!("{label} after")))
        .collect()
}

#[test]
fn newline_framing_never_splits_a_multi_line_event() {
    let rs = Rsyslog::start(None);
    // Escaped, the default: the two characters `\n` (`\r`) stand for each line break. (RFC 3164 keeps the space
    // after "TAG:".)
    for (mode, label) in [(None, "defaulted"), (Some("escape"), "escaped")] {
        let want = format!(
            r#"loghost|my.app.tag| {{\n  "{label}_user": "alice",\r\n  "{label}_seq": 1\n}}"#
        );
        assert_eq!(
            multi_line_event_through(&rs, mode, label),
            vec![want],
            "rsyslog stderr: {}",
            rs.stderr()
        );
    }
    // Octet-counted: rsyslog receives the line breaks and writes them as its #012 / #015 escapes.
    assert_eq!(
        multi_line_event_through(&rs, Some("octet_counting"), "counted"),
        vec![
            r#"loghost|my.app.tag| {#012  "counted_user": "alice",#015#012  "counted_seq": 1#012}"#
                .to_owned()
        ],
        "rsyslog stderr: {}",
        rs.stderr()
    );
}
