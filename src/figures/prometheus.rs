//! `/metrics`: a [`Snapshot`] in the Prometheus text exposition format (version 0.0.4), named by Prometheus's
//! conventions (`logferry_` prefix, base units, `_total` counters, `_info` for the build).

use super::snapshot::Snapshot;
use super::PullerState;
use std::fmt::Write;

/// The content type of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family being written: its HELP and TYPE lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }
}

fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The whole page.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let sup = s.supervisor.as_ref();
    family(
        &mut out,
        "logferry_build_info",
        "gauge",
        "The logferry version serving the figures (always 1).",
    )
    .sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("collector_id", &s.collector_id),
            ("name", sup.map(|r| r.name.as_str()).unwrap_or("")),
        ],
        1.0,
    );
    family(
        &mut out,
        "logferry_up",
        "gauge",
        "1 when the collector's supervisor is running.",
    )
    .sample(&[], if sup.is_some() { 1.0 } else { 0.0 });
    render_processes(&mut out, s);
    render_queue(&mut out, s);
    render_pullers(&mut out, s);
    render_outputs(&mut out, s);
    out
}

fn render_processes(out: &mut String, s: &Snapshot) {
    let mut rss: Vec<(&str, u64)> = Vec::new();
    if let Some(sup) = &s.supervisor {
        rss.push(("MainProcess", sup.rss_bytes));
    }
    rss.extend(
        s.processes
            .iter()
            .map(|p| (p.process.as_str(), p.rss_bytes)),
    );
    if let Some(r) = s.redis.rss_bytes {
        rss.push(("redis", r));
    }
    let mut f = family(
        out,
        "logferry_process_resident_memory_bytes",
        "gauge",
        "Resident memory of each process of the collector, Redis included.",
    );
    for (process, bytes) in rss {
        f.sample(&[("process", process)], bytes as f64);
    }
    let Some(sup) = &s.supervisor else { return };
    let mut f = family(
        out,
        "logferry_process_up",
        "gauge",
        "1 when the child process runs and publishes its figures.",
    );
    for c in &sup.children {
        let up = c.pid.is_some() && s.process(&c.process).map(|p| Some(p.pid)) == Some(c.pid);
        f.sample(&[("process", &c.process)], if up { 1.0 } else { 0.0 });
    }
    let mut f = family(
        out,
        "logferry_process_restarts_total",
        "counter",
        "Restarts of each child process since the collector started.",
    );
    for c in &sup.children {
        f.sample(&[("process", &c.process)], c.restarts as f64);
    }
    let mut f = family(
        out,
        "logferry_process_start_time_seconds",
        "gauge",
        "Start time of each process since the Unix epoch.",
    );
    f.sample(&[("process", "MainProcess")], seconds(sup.started_ms));
    for c in &sup.children {
        if let Some(t) = c.started_ms {
            f.sample(&[("process", &c.process)], seconds(t));
        }
    }
    let mut f = family(
        out,
        "logferry_stalled_workers",
        "gauge",
        "Pullers, consumers and senders with work and no progress for stall_warning_after_in_sec.",
    );
    for p in &s.processes {
        f.sample(&[("process", &p.process)], p.stalled.len() as f64);
    }
}

fn render_queue(out: &mut String, s: &Snapshot) {
    type Pick = fn(&super::snapshot::StreamFigures) -> Option<f64>;
    let gauges: [(&'static str, &str, Pick); 5] = [
        (
            "logferry_queue_events",
            "Events waiting in each queue stream (not yet delivered by every output).",
            |q| Some(q.events as f64),
        ),
        (
            "logferry_queue_bytes",
            "Bytes of the events waiting in each queue stream.",
            |q| Some(q.bytes as f64),
        ),
        (
            "logferry_queue_entries",
            "Entries (wraps of events) in each queue stream.",
            |q| Some(q.entries as f64),
        ),
        (
            "logferry_queue_pending_entries",
            "Entries read by the output and not yet acknowledged (in flight).",
            |q| Some(q.pending_entries as f64),
        ),
        (
            "logferry_queue_oldest_entry_age_seconds",
            "Age of the oldest entry of each queue stream (absent when empty).",
            |q| q.oldest_entry_age_ms.map(seconds),
        ),
    ];
    for (name, help, pick) in gauges {
        let mut f = family(out, name, "gauge", help);
        for q in &s.streams {
            if let Some(v) = pick(q) {
                f.sample(&[("stream", &q.stream)], v);
            }
        }
    }
    family(
        out,
        "logferry_deadletter_items",
        "gauge",
        "Items set aside in the dead-letter stream.",
    )
    .sample(&[], s.dead_letters as f64);
}

fn render_pullers(out: &mut String, s: &Snapshot) {
    let pullers: Vec<_> = s.processes.iter().flat_map(|p| &p.pullers).collect();
    if pullers.is_empty() {
        return;
    }
    type Pick = fn(&super::PullerRecord, i64) -> Option<f64>;
    let families: [(&'static str, &str, &str, Pick); 6] = [
        (
            "logferry_events_received_total",
            "counter",
            "Events each puller wrote to the queue since its process started.",
            |p, _| Some(p.events_total as f64),
        ),
        (
            "logferry_puller_events_last_cycle",
            "gauge",
            "Events generated by each puller's last completed cycle.",
            |p, _| Some(p.events_last_cycle as f64),
        ),
        (
            "logferry_puller_lag_seconds",
            "gauge",
            "How far behind its source each puller is: now minus the newest event time it wrote.",
            |p, now| p.newest_event_ms.map(|t| seconds((now - t).max(0))),
        ),
        (
            "logferry_puller_last_success_timestamp_seconds",
            "gauge",
            "When each puller last completed a cycle, since the Unix epoch.",
            |p, _| p.last_success_ms.map(seconds),
        ),
        (
            "logferry_puller_backfill_ratio",
            "gauge",
            "Share of its backfill each backfilling puller has done (1: caught up).",
            |p, _| p.backfill.map(|b| b.done_ratio),
        ),
        (
            "logferry_puller_backfill_seconds_left",
            "gauge",
            "Time each backfilling puller needs to catch up, at its pace so far.",
            |p, _| p.backfill.map(|b| b.seconds_left),
        ),
    ];
    for (name, kind, help, pick) in families {
        let mut f = family(out, name, kind, help);
        for p in &pullers {
            if let Some(v) = pick(p, s.taken_ms) {
                f.sample(&puller_labels(p, &[]), v);
            }
        }
    }
    let mut f = family(
        out,
        "logferry_puller_state",
        "gauge",
        "1 for the state each puller is in.",
    );
    for p in &pullers {
        for state in PullerState::ALL {
            let v = if p.state == state { 1.0 } else { 0.0 };
            f.sample(&puller_labels(p, &[("state", state.as_str())]), v);
        }
    }
    let mut f = family(
        out,
        "logferry_puller_errors_total",
        "counter",
        "Failed setups and cycles of each puller by error id, since its process started.",
    );
    for p in &pullers {
        for (error_id, n) in &p.errors {
            f.sample(&puller_labels(p, &[("error_id", error_id)]), *n as f64);
        }
    }
}

/// `input`, `service`, `puller` (the thread name: unique when a service runs in several regions), then `more`.
fn puller_labels<'a>(
    p: &'a super::PullerRecord,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![
        ("input", p.input.as_str()),
        ("service", p.service.as_str()),
        ("puller", p.name.as_str()),
    ];
    labels.extend_from_slice(more);
    labels
}

fn render_outputs(out: &mut String, s: &Snapshot) {
    let outputs: Vec<_> = s.processes.iter().flat_map(|p| &p.outputs).collect();
    if outputs.is_empty() {
        return;
    }
    type Pick = fn(&super::OutputRecord) -> f64;
    let families: [(&'static str, &str, &str, Pick); 6] = [
        (
            "logferry_events_sent_total",
            "counter",
            "Events each output's destination accepted since the OutputProcess started.",
            |o| o.sent as f64,
        ),
        (
            "logferry_sent_bytes_total",
            "counter",
            "Bytes of the events each output's destination accepted.",
            |o| o.bytes as f64,
        ),
        (
            "logferry_sender_retries_total",
            "counter",
            "Failed sends and polls of each output, each retried with backoff.",
            |o| o.retries as f64,
        ),
        (
            "logferry_sender_connections_open",
            "gauge",
            "Connections each output's senders hold open.",
            |o| o.connections_open as f64,
        ),
        (
            "logferry_sender_failing",
            "gauge",
            "1 while an output fails to deliver (since its last failure, nothing was accepted).",
            |o| {
                if o.failing_since_ms.is_some() {
                    1.0
                } else {
                    0.0
                }
            },
        ),
        (
            "logferry_sender_events_per_second",
            "gauge",
            "Events each output sent per second over the last few seconds.",
            |o| o.events_per_sec,
        ),
    ];
    for (name, kind, help, pick) in families {
        let mut f = family(out, name, kind, help);
        for o in &outputs {
            f.sample(
                &[
                    ("output", &o.output),
                    ("class", &o.class),
                    ("kind", &o.kind),
                ],
                pick(o),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{OutputRecord, ProcessRecord, PullerRecord};

    #[test]
    fn every_family_has_help_and_type_and_label_values_are_escaped() {
        let s = Snapshot {
            taken_ms: 10_000,
            collector_id: "a\"b".into(),
            processes: vec![ProcessRecord {
                process: "InputProcess".into(),
                pullers: vec![PullerRecord {
                    input: "aws".into(),
                    service: "s\\1".into(),
                    name: "P(aws,1)".into(),
                    newest_event_ms: Some(4_000),
                    errors: [("PullError(300)".to_owned(), 2)].into(),
                    backfill: Some(crate::figures::BackfillRecord {
                        done_ratio: 0.25,
                        seconds_left: 90.0,
                    }),
                    ..Default::default()
                }],
                outputs: vec![OutputRecord {
                    output: "relay".into(),
                    class: "standard".into(),
                    kind: "syslog".into(),
                    sent: 12,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let page = render(&s);
        assert!(page.contains("collector_id=\"a\\\"b\""), "{page}");
        assert!(page.contains("service=\"s\\\\1\""), "{page}");
        assert!(page.contains(
            "logferry_puller_lag_seconds{input=\"aws\",service=\"s\\\\1\",puller=\"P(aws,1)\"} 6\n"
        ));
        assert!(page.contains("error_id=\"PullError(300)\"} 2\n"));
        assert!(page.contains(
            "logferry_puller_backfill_ratio{input=\"aws\",service=\"s\\\\1\",puller=\"P(aws,1)\"} 0.25\n"
        ));
        assert!(
            page.contains("logferry_puller_backfill_seconds_left{input=\"aws\""),
            "{page}"
        );
        assert!(page.contains(
            "logferry_events_sent_total{output=\"relay\",class=\"standard\",kind=\"syslog\"} 12\n"
        ));
        let mut helped = std::collections::BTreeSet::new();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(helped.contains(name), "{name} has no HELP line");
            }
        }
    }
}
