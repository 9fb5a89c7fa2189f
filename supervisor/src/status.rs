//! `logferry status`: what the collector is doing, read from Redis only (the records every process writes, and
//! the queue itself), so that it works from another shell or container and says clearly when the collector is
//! not running.

use logferry::config::{root_keys, ConfigFile, Diagnostics, Globals, Persistence};
use logferry::figures::health::{self, Verdict};
use logferry::figures::snapshot::{Reader, Snapshot};
use logferry::figures::{PullerState, RECORD_TTL};
use logferry::memory::human_bytes;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// Exit codes.
pub const RUNNING: i32 = 0;
pub const NOT_RUNNING: i32 = 1;
pub const BAD_CONFIG: i32 = 2;

/// What the command was asked.
pub struct StatusArgs<'a> {
    pub config: &'a Path,
    pub json: bool,
    /// Refresh every this often, in place, until interrupted.
    pub watch: Option<Duration>,
}

/// Why no snapshot could be taken.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0}")]
    Config(String),
    #[error("The collector (id {id}) is not running: {why}")]
    NotRunning { id: String, why: String },
}

/// Runs the command; returns the exit code.
pub fn run(args: &StatusArgs<'_>) -> i32 {
    let (globals, url) = match target(args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return BAD_CONFIG;
        }
    };
    let mut reader = url.as_deref().map(|u| Reader::new(u, &globals.id));
    if args.watch.is_some() {
        // SIGINT (Ctrl-C), SIGTERM and SIGHUP end the watch cleanly, between two screens (taken below).
        logferry::process::block_stop_signals();
    }
    loop {
        let reading = read(&globals, reader.as_mut());
        let screen = if args.json {
            json(&reading)
        } else {
            text(&reading)
        };
        let code = match &reading {
            Ok(s) if s.supervisor.is_some() => RUNNING,
            _ => NOT_RUNNING,
        };
        match args.watch {
            None => {
                print!("{screen}");
                return code;
            }
            Some(every) => {
                // Home, clear to the end of the screen: the screen is redrawn in place, like top.
                print!("\x1b[H\x1b[2J{screen}");
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                if logferry::process::next_stop_signal(every).is_some() {
                    return code;
                }
            }
        }
    }
}

/// The collector's globals and where its Redis is (None: the embedded Redis's socket does not exist).
fn target(config: &Path) -> Result<(Globals, Option<String>), StatusError> {
    let file = ConfigFile::load(config).map_err(|e| StatusError::Config(e.to_string()))?;
    let diagnostics = Diagnostics::default();
    let root = file.root_section(&diagnostics);
    let globals = Globals::read(&root.get_section_or_empty(&root_keys::GLOBALS));
    let problems: Vec<String> = diagnostics
        .take()
        .into_iter()
        .filter(|p| p.path.starts_with("globals") && !p.is_warning_at_run())
        .map(|p| p.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(StatusError::Config(problems.join("\n")));
    }
    let url = match &globals.persistence {
        Persistence::Redis { url } => Some(url.clone()),
        Persistence::Embedded { directory } => {
            // As the supervisor names it (an absolute path: redis-rs needs one).
            let socket = directory.join("redis.sock").canonicalize().ok();
            socket.map(|s| format!("unix://{}", s.display()))
        }
    };
    Ok((globals, url))
}

fn read(globals: &Globals, reader: Option<&mut Reader>) -> Result<Snapshot, StatusError> {
    let not_running = |why: String| StatusError::NotRunning {
        id: globals.id.clone(),
        why,
    };
    let Some(reader) = reader else {
        let dir = match &globals.persistence {
            Persistence::Embedded { directory } => directory.display().to_string(),
            Persistence::Redis { .. } => unreachable!("an external Redis always has a URL"),
        };
        return Err(not_running(format!(
            "its embedded Redis is not there (no socket in {dir})"
        )));
    };
    reader.read().map_err(not_running)
}

fn json(reading: &Result<Snapshot, StatusError>) -> String {
    let value = match reading {
        Ok(s) => serde_json::json!({
            "running": s.supervisor.is_some(),
            "health": health::health(Ok(s)),
            "ready": health::ready(Ok(s)),
            "snapshot": s,
        }),
        Err(e) => serde_json::json!({"running": false, "error": e.to_string()}),
    };
    format!(
        "{}\n",
        serde_json::to_string_pretty(&value).expect("serializes")
    )
}

/// `2h03m`, `4m10s`, `12.3s`.
fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn ago(now: i64, t: Option<i64>) -> String {
    t.map(|t| format!("{} ago", duration(now - t)))
        .unwrap_or_else(|| "never".into())
}

fn verdict_word(v: &Verdict) -> String {
    if v.ok() {
        "ok".into()
    } else {
        let failed: Vec<String> = v
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        format!("FAILING ({})", failed.join("; "))
    }
}

/// The screen.
pub fn text(reading: &Result<Snapshot, StatusError>) -> String {
    let mut out = String::new();
    let s = match reading {
        Ok(s) => s,
        Err(e) => return format!("{e}\n"),
    };
    let now = s.taken_ms;
    match &s.supervisor {
        None => {
            let _ = writeln!(
                out,
                "The collector (id {}) is not running: no supervisor has written its figures to Redis in the last {} s.",
                s.collector_id,
                RECORD_TTL.as_secs()
            );
        }
        Some(sup) => {
            let _ = writeln!(
                out,
                "logferry {} \"{}\" (id {}): {}, pid {}, up {} (since {})",
                sup.version,
                sup.name,
                s.collector_id,
                if sup.stopping { "STOPPING" } else { "running" },
                sup.pid,
                duration(now - sup.started_ms),
                utc(sup.started_ms)
            );
            let _ = writeln!(out, "health: {}", verdict_word(&health::health(Ok(s))));
            let _ = writeln!(out, "ready:  {}", verdict_word(&health::ready(Ok(s))));
        }
    }
    processes(&mut out, s);
    queue(&mut out, s);
    pullers(&mut out, s);
    outputs(&mut out, s);
    out
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn processes(out: &mut String, s: &Snapshot) {
    let now = s.taken_ms;
    let _ = writeln!(
        out,
        "\n{:<16} {:>8} {:>9} {:>8} {:>10}",
        "PROCESS", "PID", "UP", "RESTARTS", "RSS"
    );
    if let Some(sup) = &s.supervisor {
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>9} {:>8} {:>10}",
            "MainProcess",
            sup.pid,
            duration(now - sup.started_ms),
            "-",
            human_bytes(sup.rss_bytes)
        );
        for c in &sup.children {
            let record = s.process(&c.process).filter(|r| Some(r.pid) == c.pid);
            let (pid, up, rss) = match (c.pid, record) {
                (None, _) => ("down".to_owned(), "-".to_owned(), "-".to_owned()),
                (Some(pid), r) => (
                    pid.to_string(),
                    c.started_ms.map(|t| duration(now - t)).unwrap_or_default(),
                    r.map(|r| human_bytes(r.rss_bytes))
                        .unwrap_or_else(|| "?".into()),
                ),
            };
            let _ = writeln!(
                out,
                "{:<16} {:>8} {:>9} {:>8} {:>10}",
                c.process, pid, up, c.restarts, rss
            );
        }
    }
    let _ = writeln!(
        out,
        "{:<16} {:>8} {:>9} {:>8} {:>10}",
        format!("redis {}", s.redis.version),
        s.redis
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "?".into()),
        "-",
        "-",
        s.redis
            .rss_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "?".into())
    );
}

fn queue(out: &mut String, s: &Snapshot) {
    let _ = writeln!(
        out,
        "\n{:<10} {:>10} {:>10} {:>8} {:>8} {:>9}",
        "QUEUE", "EVENTS", "MB", "ENTRIES", "PENDING", "OLDEST"
    );
    for q in &s.streams {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>10.2} {:>8} {:>8} {:>9}",
            q.stream,
            q.events,
            q.bytes as f64 / 1_048_576.0,
            q.entries,
            q.pending_entries,
            q.oldest_entry_age_ms
                .map(duration)
                .unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(out, "dead letters: {}", s.dead_letters);
}

fn pullers(out: &mut String, s: &Snapshot) {
    let now = s.taken_ms;
    let pullers: Vec<_> = s.processes.iter().flat_map(|p| &p.pullers).collect();
    if pullers.is_empty() {
        return;
    }
    let width = pullers
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "\n{:<width$} {:<18} {:>14} {:>10} {:>10} {:>9}",
        "PULLER", "STATE", "LAST SUCCESS", "LAST CYCLE", "TOTAL", "LAG"
    );
    for p in pullers {
        let state = format!("{} {}", p.state.as_str(), duration(now - p.state_since_ms));
        let _ = writeln!(
            out,
            "{:<width$} {:<18} {:>14} {:>10} {:>10} {:>9}",
            p.name,
            state,
            ago(now, p.last_success_ms),
            p.events_last_cycle,
            p.events_total,
            p.newest_event_ms
                .map(|t| duration(now - t))
                .unwrap_or_else(|| "-".into())
        );
        if let Some(b) = &p.backfill {
            let _ = writeln!(
                out,
                "  backfill: {:.1}% done, {} left",
                b.done_ratio * 100.0,
                duration((b.seconds_left * 1000.0) as i64)
            );
        }
        if p.state == PullerState::Failing {
            if let Some(e) = &p.last_error {
                let _ = writeln!(out, "  last error: {e}");
            }
        }
    }
}

fn outputs(out: &mut String, s: &Snapshot) {
    let now = s.taken_ms;
    let outputs: Vec<_> = s.processes.iter().flat_map(|p| &p.outputs).collect();
    if outputs.is_empty() {
        return;
    }
    let label =
        |o: &logferry::figures::OutputRecord| format!("{}/{} ({})", o.output, o.class, o.kind);
    let width = outputs
        .iter()
        .map(|o| label(o).len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "\n{:<width$} {:>9} {:>10} {:>7} {:>8}  STATE",
        "OUTPUT", "EVENTS/S", "SENT", "CONNS", "RETRIES"
    );
    for o in outputs {
        let state = match o.failing_since_ms {
            Some(t) => format!("FAILING for {}", duration(now - t)),
            None => "delivering".into(),
        };
        let _ = writeln!(
            out,
            "{:<width$} {:>9.1} {:>10} {:>7} {:>8}  {state}",
            label(o),
            o.events_per_sec,
            o.sent,
            format!("{}/{}", o.connections_open, o.senders),
            o.retries
        );
        if let (Some(e), Some(t)) = (&o.last_error, o.last_error_ms) {
            if o.failing_since_ms.is_some() || now - t < 300_000 {
                let _ = writeln!(out, "  last error ({}): {e}", ago(now, Some(t)));
            }
        }
    }
}
