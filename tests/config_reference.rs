//! `logferry config-reference` through the binary: the reference comes from the same declarations the reader uses
//! (a declared range is the range `validate` enforces), and the generated tables of docs/*.md match them (this test
//! fails when a docs table differs; `logferry config-reference --write-docs docs` refreshes them).

use logferry_testkit::TempDir;
use std::path::{Path, PathBuf};
use std::process::Command;

fn logferry(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(args)
        .output()
        .expect("run logferry");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

#[test]
fn the_docs_tables_are_the_declarations() {
    let dir = docs_dir();
    let (code, out, err) = logferry(&["config-reference", "--check-docs", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn a_stale_docs_table_is_named_and_refreshed() {
    let tmp = TempDir::new("cfgref-docs");
    let page = tmp.path().join("outputs.md");
    let original = std::fs::read_to_string(docs_dir().join("outputs.md")).unwrap();
    let edited = original.replacen("| 1..=65535 |", "| 1..=65000 |", 1);
    assert_ne!(
        edited, original,
        "the syslog or devo table declares a port range"
    );
    std::fs::write(&page, &edited).unwrap();
    let dir = tmp.path().to_str().unwrap();
    let (code, out, _) = logferry(&["config-reference", "--check-docs", dir]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("outputs.md: generated table \"outputs."),
        "{out}"
    );
    assert!(out.contains("differs from the declarations"), "{out}");

    let (code, out, _) = logferry(&["config-reference", "--write-docs", dir]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(std::fs::read_to_string(&page).unwrap(), original);
    let (code, out, _) = logferry(&["config-reference", "--check-docs", dir]);
    assert_eq!(code, Some(0), "{out}");

    std::fs::write(
        &page,
        "<!-- generated: outputs.nope -->\n<!-- end generated -->\n",
    )
    .unwrap();
    let (code, _, err) = logferry(&["config-reference", "--check-docs", dir]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("region \"outputs.nope\" names no declared key set"),
        "{err}"
    );
}

/// The port range the reference prints is the one `validate` enforces, with the same words.
#[test]
fn the_reference_and_validate_share_the_declaration() {
    let (code, json, err) = logferry(&["config-reference", "outputs.syslog", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let sets: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys = sets[0]["keys"].as_array().unwrap();
    let port = keys.iter().find(|k| k["name"] == "port").unwrap();
    assert_eq!(port["range"], serde_json::json!({"min": 1, "max": 65535}));
    assert_eq!(port["required"], serde_json::json!(true));
    let timeout = keys
        .iter()
        .find(|k| k["name"] == "send_timeout_in_seconds")
        .unwrap();
    assert_eq!(timeout["default"], serde_json::json!(5));

    let tmp = TempDir::new("cfgref-validate");
    let config = tmp.path().join("c.yaml");
    std::fs::write(
        &config,
        "inputs:\n  demo: {id: 1, services: {s: {}}}\n\
         outputs:\n  relay:\n    type: syslog\n    config: {address: 127.0.0.1, port: 70000, send_timeout_in_seconds: 0, framing: bytes}\n",
    )
    .unwrap();
    let (code, out, _) = logferry(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    for line in [
        "OutputConfigurationError(4) \"outputs.relay.config.port\": value 70000 is out of range for this property",
        "OutputConfigurationError(4) \"outputs.relay.config.send_timeout_in_seconds\": value 0 is out of range 1..=300",
        "OutputConfigurationError(5) \"outputs.relay.config.framing\": \"bytes\" is not one of [\"newline\", \"octet_counting\"]",
    ] {
        assert!(out.contains(line), "missing {line}:\n{out}");
    }
}

#[test]
fn markdown_for_one_section_and_an_unknown_one() {
    let (code, out, _) = logferry(&["config-reference", "globals"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("## `globals`\n"), "{out}");
    assert!(
        out.contains("| `queue_max_size_in_mb` | integer | 32 | 1..=5120 |"),
        "{out}"
    );
    assert!(out.contains("## `globals.persistence`"), "{out}");
    let (code, _, err) = logferry(&["config-reference", "outputs.nope"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no key set \"outputs.nope\"; known: globals, "),
        "{err}"
    );
}
