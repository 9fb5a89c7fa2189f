//! Syslog over TLS: without `chain` the relay is verified against the system trust store (rustls-native-certs,
//! pointed here at a test CA with `SSL_CERT_FILE`); with `chain` only that file is trusted. One test function: the
//! environment variable is process-wide.

mod common;

use common::*;
use logferry::config::ConfigErrorKind;
use logferry::event::Event;
use logferry_output::senders::syslog::SyslogKind;
use logferry_output::SendError;
use logferry_testkit::senders::{CaptureMode, CaptureServer, TestPki};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn tls_config(port: u16, extra: serde_json::Value) -> serde_json::Value {
    let mut cfg = json!({"address": "127.0.0.1", "port": port, "tls": true, "hostname": "myhost"});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg
}

/// Sends one event; the error when the server is refused.
fn send_one(cfg: serde_json::Value, text: &str) -> Result<(), SendError> {
    let mut s = build_sender(&SyslogKind, "syslog", cfg, globals());
    let (b, _acks) = batch(vec![Event::new("t", T, text)], "1-0");
    let r = s.send(&mut vec![b]);
    s.close();
    r
}

#[test]
fn without_chain_the_system_trust_store_is_used_with_chain_only_the_chain() {
    let pki = TestPki::generate();
    let server = CaptureServer::start(CaptureMode::Tls {
        pki: &pki,
        require_client: false,
    });
    // The "system" trust store holds the test CA that signed the server.
    std::env::set_var("SSL_CERT_FILE", pki.cert("ca"));
    std::env::remove_var("SSL_CERT_DIR");

    send_one(tls_config(server.port, json!({})), "via system roots").unwrap();
    let got = String::from_utf8(server.wait_bytes(40, Duration::from_secs(10))).unwrap();
    assert_eq!(got, "<14>Jun 02 08:31:15 myhost t: via system roots\n");

    // A chain that did not sign the server: refused although the system store trusts it.
    let err = send_one(
        tls_config(server.port, json!({"chain": pki.cert("other_ca")})),
        "must not arrive",
    )
    .unwrap_err();
    assert!(
        matches!(err, SendError::Tls { .. }) && err.to_string().contains("UnknownIssuer"),
        "{err}"
    );

    // The right chain with a system store that does not know the server's CA.
    std::env::set_var("SSL_CERT_FILE", pki.cert("other_ca"));
    let err = send_one(tls_config(server.port, json!({})), "must not arrive").unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    send_one(
        tls_config(server.port, json!({"chain": pki.cert("ca")})),
        "via chain",
    )
    .unwrap();
    assert!(!String::from_utf8(server.bytes())
        .unwrap()
        .contains("must not arrive"));

    // No usable system store: a config error on `chain`, never plaintext.
    std::env::set_var("SSL_CERT_FILE", pki.key("client"));
    let (spec, errs) = configure(
        &SyslogKind,
        "syslog",
        tls_config(6514, json!({})),
        Path::new("/"),
    );
    assert!(spec.is_none());
    assert!(
        errs.iter().any(|e| e.kind == ConfigErrorKind::InvalidValue
            && e.path == "outputs.out.config.chain"
            && e.message.contains("system trust store")),
        "{errs:?}"
    );
}

#[test]
fn client_key_without_certificate_is_a_config_error() {
    let (spec, errs) = configure(
        &SyslogKind,
        "syslog",
        json!({"address": "h", "port": 6514, "tls": true, "key": "/x/client.key"}),
        Path::new("/"),
    );
    assert!(spec.is_none());
    assert!(
        errs.iter()
            .any(|e| e.kind == ConfigErrorKind::Missing && e.path == "outputs.out.config.cert"),
        "{errs:?}"
    );
}
