//! What an operator sees of a running collector (the real binary): the process titles in `ps`, and which log
//! lines are shipped as internal events (`globals.internal_events_level`).

use logferry_testkit::collector::Collector;
use logferry_testkit::{wait_until, TempDir};
use std::path::Path;
use std::time::Duration;

/// A collector with the embedded Redis, an input with nothing to pull (a WARNING at start) and the console output
/// (events and internal events on its standard output, the log file).
fn start(dir: &Path, globals: &str) -> Collector {
    let config = format!(
        r#"globals:
  id: view
  persistence: {{type: embedded, directory: {state}}}
  {globals}
inputs:
  demo:
    id: 7
    enabled: false
    services:
      trail:
        format: cloudtrail
        count: 1
outputs:
  console:
    type: console
"#,
        state = dir.join("state").display(),
    );
    Collector::start(Path::new(env!("CARGO_BIN_EXE_logferry")), dir, &config)
}

/// The command line `ps -ef` shows for `pid`.
fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn redis_pid(c: &Collector) -> i32 {
    let text = c.log_text();
    let at = text
        .find("Embedded Redis started (pid ")
        .expect("embedded redis")
        + 28;
    text[at..].split(',').next().unwrap().parse().unwrap()
}

#[test]
fn ps_names_each_process() {
    let dir = TempDir::new("proc-titles");
    let mut c = start(dir.path(), "");
    c.wait_log("OutputProcess started (pid", Duration::from_secs(30));
    c.wait_log("InputProcess started (pid", Duration::from_secs(30));
    let input = c.child_pid("InputProcess");
    let output = c.child_pid("OutputProcess");
    wait_until(
        Duration::from_secs(10),
        "the children set their titles",
        || {
            cmdline(input) == "logferry: InputProcess"
                && cmdline(output) == "logferry: OutputProcess"
        },
    );
    assert_eq!(cmdline(redis_pid(&c)), "logferry: redis");
    let comm = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm(input).trim(), "InputProcess");
    assert_eq!(comm(output).trim(), "OutputProcess");
    c.stop();
}

#[test]
fn internal_events_level_warning_ships_only_warnings_and_errors() {
    let dir = TempDir::new("internal-level");
    let mut c = start(dir.path(), "internal_events_level: WARNING");
    let warning = "No enabled input service: the InputProcess has nothing to pull";
    wait_until(
        Duration::from_secs(30),
        "the warning shipped as an internal event",
        || {
            c.log_text()
                .lines()
                .any(|l| l.contains("devo.collectors.out.local.warn:") && l.contains(warning))
        },
    );
    c.stop();
    let text = c.log_text();
    assert!(
        text.contains("INFO InputProcess::MainThread -> Process Started"),
        "INFO lines are still logged"
    );
    assert!(
        !text.contains("devo.collectors.out.local.info"),
        "no INFO line shipped as an internal event:\n{text}"
    );
}
