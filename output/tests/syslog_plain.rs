//! Syslog sender over plain TCP against a local line receiver: bytes, UTF-8, reconnection, config errors.

mod common;

use common::*;
use logferry::config::ConfigErrorKind;
use logferry::event::Event;
use logferry_output::senders::syslog::SyslogKind;
use logferry_output::Sender;
use logferry_testkit::{free_port, wait_until, LineSink};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn sender(port: u16, extra: serde_json::Value) -> Box<dyn Sender> {
    let mut cfg = json!({"address": "127.0.0.1", "port": port, "hostname": "myhost"});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    build_sender(&SyslogKind, "syslog", cfg, globals())
}

#[test]
fn relay_lines_arrive_with_event_time_and_utf8() {
    let sink = LineSink::start();
    let mut s = sender(sink.port, json!({}));
    let (b, acks) = batch(
        vec![
            Event::new("my.app.tag", T, "héllo wörld ✓"),
            Event::new("other", T + 61_000, "second\n"),
        ],
        "1-0",
    );
    let mut v = vec![b];
    s.send(&mut v).unwrap();
    for b in v.drain(..) {
        b.complete();
    }
    assert_eq!(acks.try_recv().unwrap(), ("1-0".to_string(), 2, 0));
    wait_until(Duration::from_secs(5), "2 lines", || sink.count() == 2);
    assert_eq!(
        sink.lines(),
        vec![
            "<14>Jun 02 08:31:15 myhost my.app.tag: héllo wörld ✓",
            "<14>Jun 02 08:32:16 myhost other: second"
        ]
    );
    assert!(s.is_connection_open());
}

#[test]
fn receiver_down_is_an_error_then_delivery_resumes() {
    let port = free_port();
    let mut s = sender(port, json!({"connect_timeout_in_seconds": 1}));
    let (b, _acks) = batch(vec![Event::new("t", T, "kept")], "1-0");
    let mut v = vec![b];
    let err = s.send(&mut v).unwrap_err();
    assert!(
        matches!(err, logferry_output::SendError::Connect { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let sink = LineSink::start_on(port);
    s.send(&mut v).unwrap();
    wait_until(Duration::from_secs(5), "line after recovery", || {
        sink.count() == 1
    });
    assert_eq!(sink.lines()[0], "<14>Jun 02 08:31:15 myhost t: kept");
}

#[test]
fn reconnects_when_the_receiver_closes_the_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut s = sender(port, json!({}));
    let (b, _a) = batch(vec![Event::new("t", T, "one")], "1-0");
    let mut v = vec![b];
    s.send(&mut v).unwrap();
    let (mut first, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut first, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"<14>Jun 02 08:31:15 myhost t: one\n");
    drop(first); // the server closes
    std::thread::sleep(Duration::from_millis(50)); // let the FIN arrive (the condition checked next)
    let (b, _a) = batch(vec![Event::new("t", T, "two")], "2-0");
    let mut v = vec![b];
    s.send(&mut v).unwrap();
    let (mut second, _) = listener.accept().unwrap();
    let n = std::io::Read::read(&mut second, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"<14>Jun 02 08:31:15 myhost t: two\n");
}

#[test]
fn config_errors_name_every_bad_field() {
    let (spec, errs) = configure(
        &SyslogKind,
        "syslog",
        json!({"port": 70000, "header_format": "bsd", "framing": "crlf", "chain": "x.pem", "bogus": 1}),
        Path::new("."),
    );
    assert!(spec.is_none());
    let got: Vec<_> = errs.iter().map(|e| (e.kind, e.path.as_str())).collect();
    assert!(
        got.contains(&(ConfigErrorKind::Missing, "outputs.out.config.address")),
        "{got:?}"
    );
    assert!(
        got.contains(&(ConfigErrorKind::OutOfRange, "outputs.out.config.port"))
            || got.contains(&(ConfigErrorKind::WrongType, "outputs.out.config.port")),
        "{got:?}"
    );
    assert!(
        got.contains(&(
            ConfigErrorKind::InvalidValue,
            "outputs.out.config.header_format"
        )),
        "{got:?}"
    );
    assert!(
        got.contains(&(ConfigErrorKind::InvalidValue, "outputs.out.config.framing")),
        "{got:?}"
    );
    assert!(
        got.contains(&(ConfigErrorKind::Conflict, "outputs.out.config.chain")),
        "{got:?}"
    );
    assert!(
        got.contains(&(ConfigErrorKind::UnknownKey, "outputs.out.config.bogus")),
        "{got:?}"
    );
}

#[test]
fn multiline_events_is_checked_against_the_framing() {
    let problems = |cfg: serde_json::Value| -> Vec<(ConfigErrorKind, String)> {
        let mut cfg = cfg;
        cfg["address"] = json!("127.0.0.1");
        cfg["port"] = json!(514);
        let (_, errs) = configure(&SyslogKind, "syslog", cfg, Path::new("."));
        errs.iter().map(|e| (e.kind, e.path.clone())).collect()
    };
    let path = "outputs.out.config.multiline_events".to_owned();
    assert_eq!(
        problems(json!({"multiline_events": "split"})),
        vec![(ConfigErrorKind::InvalidValue, path.clone())]
    );
    assert_eq!(
        problems(json!({"framing": "octet_counting", "multiline_events": "escape"})),
        vec![(ConfigErrorKind::Conflict, path)]
    );
    for ok in ["escape", "octet_counting"] {
        assert_eq!(problems(json!({"multiline_events": ok})), vec![]);
    }
}
