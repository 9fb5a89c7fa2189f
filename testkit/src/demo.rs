//! The configuration the end-to-end tests of the binary run: embedded Redis, the demo input (events carrying
//! `"seq"`), the syslog output to a receiver of the test.

use std::collections::BTreeSet;
use std::path::Path;

/// The tag of the demo events (the marker of their lines at the receiver).
pub const TAG: &str = "my.app.test.demo";

/// The knobs the tests turn.
#[derive(Debug, Clone)]
pub struct Demo {
    pub count: u64,
    pub rate: u64,
    pub period: u64,
    pub start: &'static str,
    pub queue_max: u64,
    /// `stop_drain_timeout_in_sec`; None = the collector's default.
    pub drain: Option<u64>,
    /// `stall_warning_after_in_sec`; None = the collector's default.
    pub stall_after: Option<u64>,
    /// The demo service's test-only `panic_after_events`; None = not set.
    pub panic_after_events: Option<u64>,
}

impl Default for Demo {
    fn default() -> Self {
        Demo {
            count: 5000,
            rate: 0,
            period: 1,
            start: "2026-01-01T00:00:00Z",
            queue_max: 10000,
            drain: Some(10),
            stall_after: None,
            panic_after_events: None,
        }
    }
}

impl Demo {
    /// The YAML of a collector with its state in `dir/state`, sending to `127.0.0.1:sink_port`.
    pub fn config(&self, dir: &Path, sink_port: u16) -> String {
        let optional = |key: &str, value: Option<u64>, indent: &str| {
            value
                .map(|v| format!("{indent}{key}: {v}\n"))
                .unwrap_or_default()
        };
        format!(
            r#"globals:
  id: e2e
  persistence: {{type: embedded, directory: {state}}}
  queue_max_size_in_messages: {queue_max}
  queue_wrap_max_size_in_messages: 100
  sender_stats_period_in_sec: 1
  memory_report_period_in_sec: 1
{drain}{stall}inputs:
  demo:
    id: 7
    services:
      trail:
        format: cloudtrail
        events_per_second: {rate}
        count: {count}
        request_period_in_seconds: {period}
        tag: {TAG}
        initial_start_time_in_utc: "{start}"
{panic}outputs:
  relay:
    type: syslog
    config:
      address: 127.0.0.1
      port: {sink_port}
"#,
            state = dir.join("state").display(),
            queue_max = self.queue_max,
            drain = optional("stop_drain_timeout_in_sec", self.drain, "  "),
            stall = optional("stall_warning_after_in_sec", self.stall_after, "  "),
            panic = optional("panic_after_events", self.panic_after_events, "        "),
            rate = self.rate,
            count = self.count,
            period = self.period,
            start = self.start,
        )
    }
}

/// Sequence numbers of the demo events in the received lines (duplicates collapse).
pub fn seqs(lines: &[String]) -> BTreeSet<u64> {
    crate::collector::seqs(lines.iter().map(String::as_str), TAG)
}

/// A collector at default settings but for what is set here: the embedded Redis with its state in `dir/state`, the
/// demo's CloudTrail events (carrying `"seq"`) into the outputs given. The benchmarks and the tests of one output
/// through the binary start from it.
#[derive(Debug, Clone)]
pub struct DemoInto<'a> {
    /// `globals.id`.
    pub id: &'a str,
    pub count: u64,
    /// `events_per_second` of the demo (0: as fast as the queue takes them).
    pub rate: u64,
    /// `request_period_in_seconds` of the demo.
    pub period: u64,
    pub tag: &'a str,
    /// `stop_drain_timeout_in_sec`.
    pub drain: u64,
    /// More lines under `globals` (indented 2 spaces), e.g. settings to compare.
    pub globals_extra: &'a str,
}

impl Default for DemoInto<'_> {
    fn default() -> Self {
        DemoInto {
            id: "demo-into",
            count: 10_000,
            rate: 0,
            period: 0,
            tag: TAG,
            drain: 10,
            globals_extra: "",
        }
    }
}

impl DemoInto<'_> {
    /// The YAML; `outputs`: the lines under `outputs:` (each output indented 2 spaces).
    pub fn config(&self, dir: &Path, outputs: &str) -> String {
        format!(
            r#"globals:
  id: {id}
  persistence: {{type: embedded, directory: "{state}"}}
  sender_stats_period_in_sec: 60
  stop_drain_timeout_in_sec: {drain}
{globals_extra}
inputs:
  demo:
    id: 1
    services:
      cloudtrail:
        format: cloudtrail
        events_per_second: {rate}
        count: {count}
        request_period_in_seconds: {period}
        tag: {tag}
outputs:
{outputs}
"#,
            id = self.id,
            state = dir.join("state").display(),
            drain = self.drain,
            globals_extra = self.globals_extra,
            rate = self.rate,
            count = self.count,
            period = self.period,
            tag = self.tag,
        )
    }
}
