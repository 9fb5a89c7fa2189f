//! `${env:NAME}` and `${file:PATH}` references in the configuration, through the real binary: resolved at load
//! (the collector runs on the resolved values), masked in every log line, and a reference that cannot be resolved
//! is a problem naming the field and the variable or file, for `validate` and `run` alike.

use logferry_testkit::collector::Collector;
use logferry_testkit::{wait_until, LineSink, TempDir};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn logferry(args: &[&str], config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logferry"));
    cmd.args(args).arg("--config").arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run logferry");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn unresolved_references_name_the_field_and_the_variable_or_file() {
    let dir = TempDir::new("refs-missing");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "globals:\n  persistence: {type: redis, url: \"${env:LF_REFS_REDIS_URL}\"}\n\
         inputs:\n  demo: {id: 1, services: {s: {tag: my.app.t}}}\n\
         outputs:\n  o:\n    type: syslog\n    config: {address: \"${file:secrets/relay-host}\", port: 5514}\n",
    )
    .unwrap();
    for args in [&["validate"][..], &["run"][..]] {
        let (code, text) = logferry(args, &config, &[]);
        assert_eq!(
            code,
            Some(if args == ["run"] { 2 } else { 1 }),
            "{args:?}:\n{text}"
        );
        assert!(
            text.contains(
                "GlobalsConfigurationError(1) \"globals.persistence.url\": environment variable LF_REFS_REDIS_URL is \
                 not set (referenced as ${env:LF_REFS_REDIS_URL})"
            ),
            "{args:?}:\n{text}"
        );
        let missing_file = format!(
            "OutputConfigurationError(7) \"outputs.o.config.address\": cannot read \"{}\" (referenced as ${{file:...}})",
            dir.path().join("secrets/relay-host").display()
        );
        assert!(text.contains(&missing_file), "{args:?}:\n{text}");
        // Reported once, for the reference: not again as a URL that does not start with redis://.
        assert!(
            !text.contains("must start with redis://"),
            "{args:?}:\n{text}"
        );
    }
}

#[test]
fn the_collector_runs_on_resolved_values_and_never_logs_them() {
    let dir = TempDir::new("refs-run");
    let sink = LineSink::start();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    // As a Kubernetes secret volume or `echo` writes it: a trailing line break, which is not part of the value.
    std::fs::write(dir.path().join("secrets/relay-host"), "127.0.0.1\n").unwrap();
    let config = format!(
        "globals:\n  id: refs\n  name: \"collector-${{env:LF_REFS_SITE}}\"\n  stop_drain_timeout_in_sec: 5\n\
         \x20 persistence: {{type: embedded, directory: {state}}}\n\
         inputs:\n  demo:\n    id: 1\n    services:\n      s: {{tag: my.app.refs, count: 20, events_per_second: 1000}}\n\
         outputs:\n  relay:\n    type: syslog\n    config: {{address: \"${{file:secrets/relay-host}}\", port: {port}}}\n",
        state = dir.path().join("state").display(),
        port = sink.port,
    );
    let mut c = Collector::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_logferry")),
        dir.path(),
        &config,
        &[("LF_REFS_SITE", "frankfurt-dc7")],
    );
    let demo_events = || {
        sink.lines()
            .iter()
            .filter(|l| l.contains("my.app.refs"))
            .count()
    };
    wait_until(
        Duration::from_secs(60),
        "20 demo events at the relay",
        || demo_events() >= 20,
    );
    let (code, _) = c.stop();
    assert_eq!(code, 0, "{}", c.log_tail());
    let log = c.log_text();
    // The start line names the collector; its name came from the environment, so it is masked.
    assert!(log.contains("Starting logferry"), "{log}");
    assert!(log.contains("collector-***"), "{log}");
    assert!(!log.contains("frankfurt-dc7"), "{log}");
    // Nor in the internal events the relay received (the log lines shipped as events).
    assert!(sink.lines().iter().all(|l| !l.contains("frankfurt-dc7")));
}
