//! Devo sender: byte-for-byte against devo-sdk (plain, multiline, lookups, compressed), mutual TLS against a
//! receiver with a generated test CA, config errors naming files, recovery after the receiver goes away.

mod common;

use common::*;
use logferry::config::ConfigErrorKind;
use logferry::event::Event;
use logferry::lookup::{ColumnType, Lookup, LookupAction};
use logferry_output::senders::conn::{Connection, Endpoint};
use logferry_output::senders::devo::{DevoConfig, DevoKind, DevoSender};
use logferry_output::senders::retry::StopFlag;
use logferry_output::senders::tls::{client_config, Roots};
use logferry_output::{Batch, SendError, Sender};
use logferry_testkit::senders::{CaptureMode, CaptureServer, TestPki};
use logferry_testkit::{free_port, wait_until, TempDir};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOST: &str = "testhost";
const DATE: &str = "2023-06-02 08:31:15.123";

fn devo_sender(
    cfg: serde_json::Value,
    ty: &str,
    globals: logferry::config::Globals,
) -> Box<dyn Sender> {
    build_sender(&DevoKind, ty, cfg, globals)
}

/// A plain-TCP relay output without retry waits nor lookup pauses.
fn plain_relay_config(port: u16) -> serde_json::Value {
    json!({"address": "127.0.0.1", "port": port, "tls": false, "hostname": HOST, "send_retry_initial_wait_in_seconds": 0,
           "connect_retry_initial_wait_in_seconds": 0, "connect_retries": 1, "lookup_control_pause_in_seconds": 0})
}

fn plain_relay(port: u16, globals: logferry::config::Globals) -> Box<dyn Sender> {
    devo_sender(plain_relay_config(port), "relay", globals)
}

fn send_all(s: &mut dyn Sender, events: Vec<Event>) {
    send_completed(s, events, "1-0");
    s.close();
}

fn sample_events() -> Vec<Event> {
    vec![
        Event::new("my.app.test", T, r#"{"a":1,"text":"héllo ✓"}"#),
        Event::new("my.app.test", T, "ends with newline\n"),
        Event::new("cloud.aws.x", T, "first line\nsecond line\nthird"),
        Event::new("cloud.aws.x", T, "multi\nline ending\n"),
        Event::new("my.app.other", T, ""),
    ]
}

fn run_devo_sdk(port: u16, spec: serde_json::Value) {
    let dir = TempDir::new("sdkspec");
    let p = dir.path().join("spec.json");
    std::fs::write(&p, spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/devo_sdk_send.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(&p)
        .output()
        .expect("python3 with devo-sdk");
    assert!(
        out.status.success(),
        "devo-sdk sender failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sdk_events(events: &[Event]) -> serde_json::Value {
    events
        .iter()
        .map(|e| json!({"tag": e.tag, "date": DATE, "msg": e.message, "multiline": e.message.trim_end_matches('\n').contains('\n')}))
        .collect()
}

fn normalise_lookup_id(bytes: &[u8]) -> String {
    let s = String::from_utf8(bytes.to_vec()).unwrap();
    // `<id>_my_table|` -> `ID_my_table|`; ids are "seconds.fraction".
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        match line.find("_my_table|") {
            Some(end) => {
                let start = line[..end].rfind(": ").map(|i| i + 2).unwrap();
                out.push_str(&line[..start]);
                out.push_str("ID");
                out.push_str(&line[end..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[test]
fn same_bytes_as_devo_sdk_for_events_multiline_and_lookups() {
    let events = sample_events();
    let lookup = Lookup::with_id(
        "my_table",
        &[
            ("name", ColumnType::Str),
            ("id", ColumnType::Int),
            ("ip", ColumnType::Ip4),
        ],
        "id",
        "1.5",
    )
    .unwrap();
    let rows = vec![
        vec!["alice", "1", "10.0.0.1"],
        vec![" bob smith ", "2", "host-b"],
    ];
    let deletions = vec![vec!["carol", "3", "x"]];
    let lookup_events = lookup
        .publish(LookupAction::Inc, &rows, &deletions, T)
        .unwrap();

    let sdk = CaptureServer::start(CaptureMode::Plain);
    run_devo_sdk(
        sdk.port,
        json!({"hostname": HOST, "zip": false, "events": sdk_events(&events), "lookup": {
            "name": "my_table", "date": DATE, "headers": ["name", "id", "ip"], "types": ["str", "int", "ip4"], "key_index": 1,
            "action": "INC", "rows": rows, "deletions": deletions}}),
    );
    let ours = CaptureServer::start(CaptureMode::Plain);
    let mut s = plain_relay(ours.port, globals());
    let mut all = events.clone();
    all.extend(lookup_events);
    send_all(s.as_mut(), all);

    wait_until(
        Duration::from_secs(10),
        "both senders' connections closed",
        || sdk.closed_connections().len() == 1 && ours.closed_connections().len() == 1,
    );
    let expected = normalise_lookup_id(&sdk.bytes());
    let got = normalise_lookup_id(&ours.bytes());
    assert!(expected.contains("ID_my_table|START|"), "{expected}");
    assert!(
        expected.starts_with("<14>2023-06-02 08:31:15.123 testhost my.app.test: {\"a\":1"),
        "{expected}"
    );
    assert_eq!(got, expected);
}

#[test]
fn compressed_mode_decompresses_to_the_same_bytes_as_devo_sdk() {
    // Enough single-line events for several 51200-byte gzip members.
    let events: Vec<Event> = (0..3000)
        .map(|i| {
            Event::new(
                "my.app.zip",
                T,
                format!(
                    "{{\"n\":{i},\"pad\":\"{}\",\"u\":\"ü\"}}",
                    "x".repeat(i % 50)
                ),
            )
        })
        .collect();
    let sdk = CaptureServer::start(CaptureMode::Plain);
    run_devo_sdk(
        sdk.port,
        json!({"hostname": HOST, "zip": true, "events": sdk_events(&events), "lookup": null}),
    );
    let ours = CaptureServer::start(CaptureMode::Plain);
    let mut s = plain_relay(
        ours.port,
        globals_from(json!({"threshold_for_using_gzip_in_transport_layer": -1})),
    );
    send_all(s.as_mut(), events);
    wait_until(Duration::from_secs(10), "both connections closed", || {
        sdk.closed_connections().len() == 1 && ours.closed_connections().len() == 1
    });
    let unzip = |b: Vec<u8>| {
        assert_eq!(&b[..2], &[0x1f, 0x8b], "starts with a gzip member");
        let mut s = Vec::new();
        flate2::read::MultiGzDecoder::new(&b[..])
            .read_to_end(&mut s)
            .unwrap();
        s
    };
    let raw = ours.bytes();
    let (expected, got) = (unzip(sdk.bytes()), unzip(raw.clone()));
    assert!(expected.len() > 3 * 51200);
    assert_eq!(
        String::from_utf8(got).unwrap(),
        String::from_utf8(expected.clone()).unwrap()
    );
    assert!(
        raw.len() < expected.len() / 3,
        "compressed {} of {}",
        raw.len(),
        expected.len()
    );
}

fn mtls_config(pki: &TestPki, port: u16, cert: &str) -> serde_json::Value {
    json!({"address": "127.0.0.1", "port": port, "chain": pki.cert("ca"), "cert": pki.cert(cert), "key": pki.key(cert),
           "hostname": HOST, "connect_retries": 1, "send_retries": 1})
}

#[test]
fn mutual_tls_delivers_and_refusals_name_the_cause() {
    let pki = TestPki::generate();
    let server = CaptureServer::start(CaptureMode::Tls {
        pki: &pki,
        require_client: true,
    });
    let mut s = devo_sender(
        mtls_config(&pki, server.port, "client"),
        "devo_platform",
        globals(),
    );
    send_all(
        s.as_mut(),
        vec![Event::new("my.app.tls", T, "over mutual TLS")],
    );
    let got = server.wait_bytes(10, Duration::from_secs(10));
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!("<14>{DATE} {HOST} my.app.tls: over mutual TLS\n")
    );

    let connect = |chain: &str, client: Option<&str>| {
        let tls = client_config(
            Roots::Chain(&pki.cert(chain)),
            client
                .map(|c| (pki.cert(c), pki.key(c)))
                .as_ref()
                .map(|(a, b)| (a.as_path(), b.as_path())),
        )
        .unwrap();
        let ep = Endpoint {
            address: "127.0.0.1".into(),
            port: server.port,
            tls: Some(tls),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_age: None,
            max_idle: None,
        };
        let mut c = Connection::new(ep, "test");
        let r = c
            .ensure_open()
            .and_then(|_| c.write_all(b"x\n"))
            .and_then(|_| c.flush());
        // With TLS 1.3 the server's refusal arrives after the client's handshake ends: it shows on a later use.
        // Use the connection until it fails (or 5 s pass: then the refusal never came).
        r.and_then(|_| {
            let until = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                c.ensure_open()
                    .and_then(|_| c.write_all(b"y\n"))
                    .and_then(|_| c.flush())?;
                if std::time::Instant::now() >= until {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let cases = [
        ("ca", None, "CertificateRequired"),
        ("ca", Some("foreign_client"), "UnknownCA"),
        ("ca", Some("expired_client"), "CertificateExpired"),
        ("other_ca", Some("client"), "UnknownIssuer"),
    ];
    for (chain, client, cause) in cases {
        let err = connect(chain, client)
            .expect_err(&format!("{client:?} with chain {chain} must be refused"));
        assert!(matches!(err, SendError::Tls { .. }), "{client:?}: {err}");
        assert!(
            err.to_string().contains(cause),
            "{client:?}: expected {cause} in: {err}"
        );
    }
    assert!(
        server.errors().contains("certificate"),
        "receiver log: {}",
        server.errors()
    );
}

#[test]
fn missing_mismatched_or_unreadable_files_are_config_errors_naming_the_file() {
    let pki = TestPki::generate();
    let base = json!({"address": "127.0.0.1", "port": 443});
    let (spec, errs) = configure(&DevoKind, "devo_platform", base.clone(), Path::new("/"));
    assert!(spec.is_none());
    for k in ["chain", "cert", "key"] {
        assert!(
            errs.iter().any(|e| e.kind == ConfigErrorKind::Missing
                && e.path == format!("outputs.out.config.{k}")),
            "{k}: {errs:?}"
        );
    }
    let mut cfg = mtls_config(&pki, 443, "client");
    cfg["key"] = json!(pki.key("foreign_client"));
    let (spec, errs) = configure(&DevoKind, "devo_platform", cfg, Path::new("/"));
    assert!(spec.is_none());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "outputs.out.config.key");
    assert!(
        errs[0].message.contains("client.pem") && errs[0].message.contains("foreign_client.key"),
        "{}",
        errs[0].message
    );

    let mut cfg = mtls_config(&pki, 443, "client");
    cfg["chain"] = json!("/nonexistent/ca.pem");
    let (_, errs) = configure(&DevoKind, "devo_platform", cfg, Path::new("/"));
    assert!(
        errs.iter()
            .any(|e| e.kind == ConfigErrorKind::FileUnreadable
                && e.message.contains("/nonexistent/ca.pem")),
        "{errs:?}"
    );

    let mut cfg = mtls_config(&pki, 443, "client");
    cfg["cert"] = json!(pki.key("client")); // a key where a certificate is expected
    let (_, errs) = configure(&DevoKind, "devo_platform", cfg, Path::new("/"));
    assert!(
        errs.iter()
            .any(|e| e.path == "outputs.out.config.cert" && e.message.contains("client.key")),
        "{errs:?}"
    );

    let mut cfg = mtls_config(&pki, 443, "client");
    cfg["tls"] = json!(false);
    let (spec, errs) = configure(&DevoKind, "devo_platform", cfg, Path::new("/"));
    assert!(spec.is_none() || !errs.is_empty());
    assert!(
        errs.iter().any(|e| e.path == "outputs.out.config.tls"),
        "{errs:?}"
    );
}

#[test]
fn receiver_down_then_back_loses_nothing() {
    let mut server = CaptureServer::start(CaptureMode::Plain);
    let port = server.port;
    let mut s = plain_relay(port, globals());
    let (b, _) = batch(vec![Event::new("t", T, "before")], "1-0");
    let mut v = vec![b];
    s.send(&mut v).unwrap();
    server.wait_bytes(10, Duration::from_secs(5));
    let before = server.bytes();
    server.kill();
    wait_until(Duration::from_secs(5), "receiver gone", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    // The closed connection is noticed before writing (no event written into a dead socket); reconnecting fails
    // and the batch stays with the runtime.
    let (b, acks) = batch(vec![Event::new("t", T, "during")], "2-0");
    let mut v = vec![b];
    let err = s.send(&mut v).unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err}");
    assert!(!s.is_connection_open());
    let back = CaptureServer::start_on(port, CaptureMode::Plain);
    s.send(&mut v).unwrap();
    let got = String::from_utf8(back.wait_bytes(10, Duration::from_secs(5))).unwrap();
    assert!(String::from_utf8(before).unwrap().contains("before"));
    assert!(got.contains(": during\n"), "{got}");
    for b in v.drain(..) {
        b.complete();
    }
    assert_eq!(acks.try_recv().unwrap().0, "2-0");
}

/// A receiver that closes connections at random moments (FIN after a random number of lines, then it reads
/// what is still in flight, as a relay restarting its listener would), keeping every complete line.
struct ClosingReceiver {
    port: u16,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ClosingReceiver {
    fn start() -> ClosingReceiver {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (l, c) = (lines.clone(), connections.clone());
        std::thread::spawn(move || {
            let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let close_after = 50 + (seed >> 33) % 400;
                let l = l.clone();
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut n = 0u64;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if line.ends_with('\n') => {
                                l.lock().unwrap().push(line.trim_end().to_owned());
                                n += 1;
                                if n == close_after {
                                    let _ = stream.shutdown(std::net::Shutdown::Write);
                                }
                            }
                            Ok(_) => break, // partial line at EOF
                        }
                    }
                });
            }
        });
        ClosingReceiver {
            port,
            lines,
            connections,
        }
    }
}

#[test]
fn receiver_closing_connections_at_random_loses_nothing() {
    let rx = ClosingReceiver::start();
    let mut s = plain_relay(rx.port, globals());
    let total_batches = 60;
    for b in 0..total_batches {
        let evs: Vec<Event> = (0..50)
            .map(|i| Event::new("t", T, format!("b{b}e{i}")))
            .collect();
        let (batch, acks) = batch(evs, &format!("{b}-0"));
        let mut v = vec![batch];
        // The runtime's loop: the same batch until it is accepted.
        wait_until(Duration::from_secs(20), "batch accepted", || {
            s.send(&mut v).is_ok()
        });
        v.pop().unwrap().complete();
        assert!(acks.try_recv().is_ok());
        // Pace the sender on the receiver so that its closes fall between and inside sends.
        let last = format!("<14>{DATE} {HOST} t: b{b}e49");
        wait_until(
            Duration::from_secs(10),
            "batch read by the receiver",
            || rx.lines.lock().unwrap().contains(&last),
        );
    }
    s.close();
    let want: std::collections::HashSet<String> = (0..total_batches)
        .flat_map(|b| (0..50).map(move |i| format!("<14>{DATE} {HOST} t: b{b}e{i}")))
        .collect();
    wait_until(
        Duration::from_secs(10),
        "every event at the receiver",
        || {
            let got: std::collections::HashSet<String> =
                rx.lines.lock().unwrap().iter().cloned().collect();
            want.is_subset(&got)
        },
    );
    let conns = rx.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        conns >= 3,
        "the receiver closed connections, the sender reconnected: {conns} connections"
    );
}

#[test]
fn idle_and_old_connections_are_replaced() {
    let server = CaptureServer::start(CaptureMode::Plain);
    for (key, label) in [
        ("connection_max_idle_in_seconds", "idle"),
        ("connection_max_age_in_seconds", "age"),
    ] {
        let mut cfg =
            json!({"address": "127.0.0.1", "port": server.port, "tls": false, "hostname": HOST});
        cfg[key] = json!(1);
        let mut s = devo_sender(cfg, "relay", globals());
        let (b, _) = batch(vec![Event::new("t", T, format!("{label} 1"))], "1-0");
        s.send(&mut vec![b]).unwrap();
        let opened = std::time::Instant::now();
        if label == "age" {
            // Keep the connection busy (never idle) until it is older than its max age.
            while opened.elapsed() < Duration::from_millis(1200) {
                let (b, _) = batch(vec![Event::new("t", T, format!("{label} busy"))], "1-1");
                s.send(&mut vec![b]).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        } else {
            wait_until(
                Duration::from_secs(5),
                "the connection idle for more than 1 s",
                || opened.elapsed() > Duration::from_millis(1100),
            );
        }
        let (b, _) = batch(vec![Event::new("t", T, format!("{label} 2"))], "2-0");
        s.send(&mut vec![b]).unwrap();
        s.close();
    }
    // idle: 2 connections; age: 2 connections.
    wait_until(Duration::from_secs(5), "4 connections closed", || {
        server.closed_connections().len() == 4
    });
    let conns: Vec<String> = server
        .closed_connections()
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert!(
        conns[0].ends_with(": idle 1\n") && conns[1] == format!("<14>{DATE} {HOST} t: idle 2\n"),
        "{conns:?}"
    );
    // The busy connection was replaced once older than 1 s, although it was never idle.
    assert!(
        conns[2].starts_with(&format!("<14>{DATE} {HOST} t: age 1\n"))
            && !conns[2].contains("age 2"),
        "{conns:?}"
    );
    assert!(
        conns[3].ends_with(": age 2\n") && !conns[3].contains("age 1"),
        "{conns:?}"
    );
}

/// A Devo sender reading `cfg` as `ty`, giving way to `stop`.
fn devo_with_stop(cfg: serde_json::Value, ty: &str, stop: &StopFlag) -> DevoSender {
    let (c, errs) = read_config(cfg, Path::new("/"), |s| DevoConfig::read(ty, s));
    assert!(errs.is_empty(), "{errs:?}");
    DevoSender::new(&c.unwrap(), &info(globals())).stop_on(stop.clone())
}

/// A receiver that accepts connections, reads their first byte and closes them (a reset, since data is left
/// unread), counting them: every TLS handshake fails, and every plain send larger than the socket buffers fails.
fn refusing_receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut [0u8; 1]);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted)
}

/// Sends `events` with `s` while another thread sets `stop` once `ready` holds; returns the send's result, the
/// time from the stop to the return, and whether the batch was completed.
fn send_until_stopped(
    s: &mut DevoSender,
    stop: &StopFlag,
    events: Vec<Event>,
    ready: impl Fn() -> bool + Send + 'static,
) -> (Result<(), SendError>, Duration, bool) {
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            wait_until(Duration::from_secs(20), "the sender retrying", ready);
            stop.store(true, Ordering::SeqCst);
            Instant::now()
        })
    };
    let (b, acks) = batch(events, "7-0");
    let mut v = vec![b];
    let r = s.send(&mut v);
    let returned = Instant::now();
    let stopped_at = stopper.join().unwrap();
    if r.is_ok() {
        v.drain(..).for_each(Batch::complete);
    }
    (r, returned - stopped_at, acks.try_recv().is_ok())
}

#[test]
fn stop_interrupts_connect_and_send_retries_and_nothing_is_acknowledged() {
    // Long retry schedules (1 s doubling, 10 attempts: more than 8 minutes each) against a receiver that closes
    // every connection; the stop comes once the sender is retrying.
    let retries = json!({"connect_retries": 10, "connect_retry_initial_wait_in_seconds": 1,
                         "send_retries": 10, "send_retry_initial_wait_in_seconds": 1, "hostname": HOST});
    let pki = TestPki::generate();
    let big = big_events();
    for (label, tls) in [
        ("connect (TLS handshake)", true),
        ("send (plain TCP)", false),
    ] {
        let (port, accepted) = refusing_receiver();
        let mut cfg = retries.clone();
        cfg["address"] = json!("127.0.0.1");
        cfg["port"] = json!(port);
        if tls {
            cfg["chain"] = json!(pki.cert("ca"));
            cfg["cert"] = json!(pki.cert("client"));
            cfg["key"] = json!(pki.key("client"));
        } else {
            cfg["tls"] = json!(false);
        }
        let stop = StopFlag::default();
        let mut s = devo_with_stop(cfg, "relay", &stop);
        let seen = accepted.clone();
        let (r, after_stop, completed) =
            send_until_stopped(&mut s, &stop, big.clone(), move || {
                seen.load(Ordering::SeqCst) >= 2
            });
        let err = r.expect_err(label);
        assert!(
            after_stop < Duration::from_millis(600),
            "{label}: returned {after_stop:?} after the stop"
        );
        assert!(!completed, "{label}: the batch must not be acknowledged");
        match tls {
            true => assert!(matches!(err, SendError::Tls { .. }), "{label}: {err}"),
            false => assert!(matches!(err, SendError::Write { .. }), "{label}: {err}"),
        }
    }

    // A stop already requested: one attempt, no wait (the schedule would take 2+4+8+16 s).
    let stop = StopFlag::default();
    stop.store(true, Ordering::SeqCst);
    let mut s = devo_with_stop(
        json!({"address": "127.0.0.1", "port": free_port(), "tls": false, "hostname": HOST}),
        "relay",
        &stop,
    );
    let (b, acks) = batch(vec![Event::new("t", T, "kept")], "8-0");
    let mut v = vec![b];
    let started = Instant::now();
    let err = s.send(&mut v).unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(v.len(), 1);
    assert!(acks.try_recv().is_err());
}

#[test]
fn a_connection_reset_in_the_middle_of_a_send_fails_it_without_reconnecting() {
    // Writes after the reset must not go on over a new connection: what the first one carried is lost.
    let (port, accepted) = refusing_receiver();
    let mut cfg = plain_relay_config(port);
    cfg["send_retries"] = json!(1);
    let mut s = devo_sender(cfg, "relay", globals());
    let (b, acks) = batch(big_events(), "9-0");
    let mut v = vec![b];
    let err = s.send(&mut v).unwrap_err();
    assert!(matches!(err, SendError::Write { .. }), "{err}");
    wait_until(
        Duration::from_secs(5),
        "the receiver saw the connection",
        || accepted.load(Ordering::SeqCst) >= 1,
    );
    s.close();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection only");
    assert!(acks.try_recv().is_err());
}

/// 20 MB of events: more than the loopback socket buffers hold, so a send to a receiver that resets meets it.
fn big_events() -> Vec<Event> {
    (0..60_000)
        .map(|i| Event::new("t", T, format!("{i:0>300}")))
        .collect()
}

/// Lines received with their arrival time.
type TimedLines = Arc<Mutex<Vec<(Instant, String)>>>;

/// A receiver of one connection noting when each line arrives.
fn timed_receiver() -> (u16, TimedLines) {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = lines.clone();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            out.lock().unwrap().push((Instant::now(), line));
        }
    });
    (port, lines)
}

fn lookup_events() -> Vec<Event> {
    let lookup = Lookup::with_id("my_table", &[("k", ColumnType::Str)], "k", "1.5").unwrap();
    lookup
        .publish(LookupAction::Full, &[vec!["a"], vec!["b"]], &[], T)
        .unwrap()
}

#[test]
fn lookup_lines_are_paused_around_start_and_end_like_devo_sdk() {
    let pause = Duration::from_millis(300);
    let (port, lines) = timed_receiver();
    let mut cfg = plain_relay_config(port);
    cfg["lookup_control_pause_in_seconds"] = json!(pause.as_secs_f64());
    let mut s = devo_sender(cfg, "relay", globals());
    send_completed(s.as_mut(), lookup_events(), "1-0");
    wait_until(Duration::from_secs(5), "4 lookup lines", || {
        lines.lock().unwrap().len() == 4
    });
    let got = lines.lock().unwrap().clone();
    assert!(
        got[0].1.contains("|START|") && got[3].1.contains("|END|"),
        "{got:?}"
    );
    // The START line reached the receiver a pause before the data; the END a pause after it.
    // (Arrival times: a few ms of delivery latency on either side of a pause.)
    let at_least = pause - Duration::from_millis(30);
    assert!(got[1].0 - got[0].0 >= at_least, "{got:?}");
    assert!(got[2].0 - got[1].0 < pause / 2, "{got:?}");
    assert!(got[3].0 - got[2].0 >= at_least, "{got:?}");
}

#[test]
fn stop_during_a_lookup_pause_returns_at_once_and_nothing_is_acknowledged() {
    let (port, lines) = timed_receiver();
    let mut cfg = plain_relay_config(port);
    cfg["lookup_control_pause_in_seconds"] = json!(60);
    let stop = StopFlag::default();
    let mut s = devo_with_stop(cfg, "relay", &stop);
    let seen = lines.clone();
    let (r, after_stop, completed) =
        send_until_stopped(&mut s, &stop, lookup_events(), move || {
            !seen.lock().unwrap().is_empty()
        });
    let err = r.unwrap_err();
    assert!(err.to_string().contains("stop requested"), "{err}");
    assert!(after_stop < Duration::from_millis(600), "{after_stop:?}");
    assert!(!completed);
    s.close();
    let got = lines.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the START line was sent: {got:?}");
}
