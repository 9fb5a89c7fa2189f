//! `/health` and `/ready` (and `logferry status`'s verdict): checks over a [`Snapshot`].
//!
//! Healthy: Redis answers, the supervisor's record is there, every child it started is alive (it has a pid and
//! its own record, written by that pid), and no puller is stalled (the watchdog's view: a pull cycle that made no
//! progress for `stall_warning_after_in_sec`). A failing destination is not a liveness failure (a restart would
//! not fix it): it shows in `/metrics` and `logferry status`.
//! Ready: Redis answers, the collector is not stopping, and every child has started and published its record (the
//! OutputProcess's consumers and senders run: it can deliver).

use super::snapshot::Snapshot;
use super::RECORD_TTL;
use serde::Serialize;

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The checks of one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// One line per check: `ok redis: answering (pid 12)` / `FAIL InputProcess: ...`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ok { "ok" } else { "FAIL" };
            out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
        }
        out
    }

    fn push(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            ok,
            detail: detail.into(),
        });
    }
}

/// Liveness: `snapshot` is the reading, or why Redis did not answer.
pub fn health(reading: Result<&Snapshot, &str>) -> Verdict {
    judge(reading, Probe::Health)
}

/// Readiness.
pub fn ready(reading: Result<&Snapshot, &str>) -> Verdict {
    judge(reading, Probe::Ready)
}

#[derive(Clone, Copy, PartialEq)]
enum Probe {
    Health,
    Ready,
}

fn judge(reading: Result<&Snapshot, &str>, probe: Probe) -> Verdict {
    let mut v = Verdict { checks: Vec::new() };
    let s = match reading {
        Ok(s) => s,
        Err(e) => {
            v.push("redis", false, format!("not answering: {e}"));
            return v;
        }
    };
    v.push("redis", true, "answering");
    let Some(sup) = &s.supervisor else {
        v.push("collector", false, "not running (no supervisor record)");
        return v;
    };
    if probe == Probe::Ready && sup.stopping {
        v.push("collector", false, "stopping");
    } else {
        v.push("collector", true, format!("running (pid {})", sup.pid));
    }
    for child in &sup.children {
        let record = s.process(&child.process);
        let (ok, detail) = match (child.pid, record) {
            (None, _) => (false, "down, waiting for its restart".to_owned()),
            (Some(pid), Some(r)) if r.pid == pid => (true, format!("running (pid {pid})")),
            (Some(pid), _) => {
                // Just started: its first record is on its way.
                let young = child
                    .started_ms
                    .is_some_and(|t| s.taken_ms - t < RECORD_TTL.as_millis() as i64);
                let ok = probe == Probe::Health && young;
                (ok, format!("pid {pid} has not published its figures yet"))
            }
        };
        v.push(&child.process, ok, detail);
    }
    if probe == Probe::Health {
        let stalled: Vec<String> = s
            .processes
            .iter()
            .flat_map(|p| {
                p.stalled
                    .iter()
                    .filter(|w| w.starts_with(crate::watchdog::PULLER_MARK_PREFIX))
                    .map(move |w| format!("{w} ({})", p.process))
            })
            .collect();
        if stalled.is_empty() {
            v.push("progress", true, "nothing stalled");
        } else {
            v.push(
                "progress",
                false,
                format!("stalled: {}", stalled.join(", ")),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{ChildRecord, ProcessRecord, SupervisorRecord};

    fn running() -> Snapshot {
        let child = |process: &str, pid: u32| ChildRecord {
            process: process.into(),
            pid: Some(pid),
            started_ms: Some(0),
            restarts: 0,
        };
        let record = |process: &str, pid: u32| ProcessRecord {
            process: process.into(),
            pid,
            ..Default::default()
        };
        Snapshot {
            taken_ms: 60_000,
            supervisor: Some(SupervisorRecord {
                pid: 1,
                children: vec![child("InputProcess", 2), child("OutputProcess", 3)],
                ..Default::default()
            }),
            processes: vec![record("InputProcess", 2), record("OutputProcess", 3)],
            ..Default::default()
        }
    }

    fn failed(v: &Verdict) -> Vec<&str> {
        v.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn a_running_collector_is_healthy_and_ready() {
        let s = running();
        assert!(health(Ok(&s)).ok(), "{}", health(Ok(&s)).text());
        assert!(ready(Ok(&s)).ok());
    }

    #[test]
    fn redis_silent_or_no_supervisor_fail_both() {
        assert_eq!(failed(&health(Err("refused"))), ["redis"]);
        let s = Snapshot::default();
        assert_eq!(failed(&ready(Ok(&s))), ["collector"]);
    }

    #[test]
    fn a_child_down_or_replaced_fails_and_a_stalled_puller_fails_health_only() {
        let mut s = running();
        s.supervisor.as_mut().unwrap().children[0].pid = None;
        assert_eq!(failed(&health(Ok(&s))), ["InputProcess"]);
        let mut s = running();
        // Restarted long ago, and the record is still the old instance's: not alive.
        s.supervisor.as_mut().unwrap().children[1].pid = Some(9);
        assert_eq!(failed(&health(Ok(&s))), ["OutputProcess"]);
        assert_eq!(failed(&ready(Ok(&s))), ["OutputProcess"]);
        let mut s = running();
        s.processes[0].stalled = vec!["puller Demo(x)".into()];
        s.processes[1].stalled = vec!["Sender(relay)".into()];
        let h = health(Ok(&s));
        assert_eq!(failed(&h), ["progress"]);
        assert!(h.text().contains("puller Demo(x) (InputProcess)") && !h.text().contains("Sender"));
        assert!(ready(Ok(&s)).ok());
        s.supervisor.as_mut().unwrap().stopping = true;
        assert_eq!(failed(&ready(Ok(&s))), ["collector"]);
    }
}
