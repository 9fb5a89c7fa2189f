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
