//! Live figures of a process, written to Redis for `logferry status` and the metrics endpoint.
//!
//! Pullers and sender pools feed [`PullerFigures`] and [`OutputFigures`] on their own paths (atomics; a mutex only
//! on errors); one publisher thread per child process ([`spawn_publisher`]) turns them into a [`ProcessRecord`]
//! every [`PUBLISH_PERIOD`] and writes it with a TTL of [`RECORD_TTL`], so that a dead process's record vanishes.
//! The supervisor writes its own [`SupervisorRecord`] from its loop ([`SupervisorFigures`]): it never starts a
//! thread. Queue figures (stream lengths, pending entries, dead letters) are not written: the reader
//! ([`snapshot::Snapshot`]) takes them from Redis itself.

pub mod health;
pub mod prometheus;
pub mod record;
pub mod serve;
pub mod snapshot;

pub use record::{
    BackfillRecord, ChildRecord, OutputRecord, ProcessRecord, PullerRecord, PullerState,
    SupervisorRecord,
};

use crate::process::ProcessEnv;
use crate::time::now_ms;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often each process writes its record.
pub const PUBLISH_PERIOD: Duration = Duration::from_secs(2);
/// How long a record lives without being written again: a process gone for this long shows as gone.
pub const RECORD_TTL: Duration = Duration::from_secs(10);
/// Name of the publisher thread in log lines.
pub const PUBLISHER_THREAD: &str = "FiguresPublisher";
/// The supervisor's record key suffix.
pub const MAIN_PROCESS: &str = "MainProcess";

static PULLERS: Mutex<Vec<Arc<PullerFigures>>> = Mutex::new(Vec::new());
static OUTPUTS: Mutex<Vec<Arc<OutputFigures>>> = Mutex::new(Vec::new());

/// None (`i64::MIN`) for the optional timestamps kept in atomics.
const NONE_MS: i64 = i64::MIN;

fn optional_ms(v: &AtomicI64) -> Option<i64> {
    Some(v.load(Ordering::Relaxed)).filter(|&ms| ms != NONE_MS)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The live figures of one puller (registered once per puller thread).
pub struct PullerFigures {
    input: String,
    service: String,
    name: String,
    state: AtomicU8,
    state_since_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    last_success_ms: AtomicI64,
    events_last_cycle: AtomicU64,
    events_total: AtomicU64,
    newest_event_ms: AtomicI64,
    errors: Mutex<BTreeMap<String, u64>>,
    backfill: Mutex<Option<BackfillRecord>>,
}

impl PullerFigures {
    /// New figures (state `setting_up`), published by this process's publisher.
    pub fn register(input: &str, service: &str, name: &str) -> Arc<PullerFigures> {
        let figures = Arc::new(PullerFigures {
            input: input.to_owned(),
            service: service.to_owned(),
            name: name.to_owned(),
            state: AtomicU8::new(0),
            state_since_ms: AtomicI64::new(now_ms()),
            last_error: Mutex::new(None),
            last_success_ms: AtomicI64::new(NONE_MS),
            events_last_cycle: AtomicU64::new(0),
            events_total: AtomicU64::new(0),
            newest_event_ms: AtomicI64::new(NONE_MS),
            errors: Mutex::new(BTreeMap::new()),
            backfill: Mutex::new(None),
        });
        lock(&PULLERS).push(figures.clone());
        figures
    }

    fn state(&self) -> PullerState {
        PullerState::ALL[self.state.load(Ordering::Relaxed) as usize]
    }

    /// Enters `state` (its "since" moves only when the state changes).
    pub fn set_state(&self, state: PullerState) {
        let code = PullerState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or(0) as u8;
        if self.state.swap(code, Ordering::Relaxed) != code {
            self.state_since_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// A setup or cycle failed with `error_id` (`PullError(300)`): state `failing`, counted by id.
    pub fn failed(&self, error_id: &str, message: &str) {
        *lock(&self.last_error) = Some(message.to_owned());
        *lock(&self.errors).entry(error_id.to_owned()).or_default() += 1;
        self.set_state(PullerState::Failing);
    }

    /// A cycle completed with `events` generated: state `waiting`.
    pub fn cycle_done(&self, events: u64) {
        self.events_last_cycle.store(events, Ordering::Relaxed);
        self.last_success_ms.store(now_ms(), Ordering::Relaxed);
        self.set_state(PullerState::Waiting);
    }

    /// A write of its pull cycle waits for room in the queue (`true`: state `waiting_for_queue`) or has room again
    /// (`false`: back to `pulling`, unless the state moved on meanwhile).
    pub fn queue_full(&self, full: bool) {
        let (from, to) = match full {
            true => (PullerState::Pulling, PullerState::WaitingForQueue),
            false => (PullerState::WaitingForQueue, PullerState::Pulling),
        };
        let code =
            |s: PullerState| PullerState::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8;
        if self
            .state
            .compare_exchange(code(from), code(to), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.state_since_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// `events` reached the queue, the newest of them from `newest_ms` (called by the puller's sinks per write).
    pub fn written(&self, events: u64, newest_ms: i64) {
        self.events_total.fetch_add(events, Ordering::Relaxed);
        self.newest_event_ms.fetch_max(newest_ms, Ordering::Relaxed);
    }

    /// A backfill has done `done_ratio` (0..=1) of its work and needs `left` more at its pace so far.
    pub fn backfill(&self, done_ratio: f64, left: Duration) {
        *lock(&self.backfill) = Some(BackfillRecord {
            done_ratio: done_ratio.clamp(0.0, 1.0),
            seconds_left: left.as_secs_f64(),
        });
    }

    fn record(&self) -> PullerRecord {
        PullerRecord {
            input: self.input.clone(),
            service: self.service.clone(),
            name: self.name.clone(),
            state: self.state(),
            state_since_ms: self.state_since_ms.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
            last_success_ms: optional_ms(&self.last_success_ms),
            events_last_cycle: self.events_last_cycle.load(Ordering::Relaxed),
            events_total: self.events_total.load(Ordering::Relaxed),
            newest_event_ms: optional_ms(&self.newest_event_ms),
            errors: lock(&self.errors).clone(),
            backfill: *lock(&self.backfill),
        }
    }
}

/// The live figures of one output for one event class (one sender pool).
pub struct OutputFigures {
    output: String,
    class: String,
    kind: String,
    /// Events the destination accepted.
    pub sent: AtomicU64,
    pub bytes: AtomicU64,
    retries: AtomicU64,
    connections_open: AtomicU64,
    senders: AtomicU64,
    failing_since_ms: AtomicI64,
    last_error: Mutex<Option<(String, i64)>>,
    /// `sent` and when, at the previous publication (for the rate).
    last_sample: Mutex<(u64, Instant)>,
}

impl OutputFigures {
    pub fn register(output: &str, class: &str, kind: &str, senders: u64) -> Arc<OutputFigures> {
        let figures = Arc::new(OutputFigures {
            output: output.to_owned(),
            class: class.to_owned(),
            kind: kind.to_owned(),
            sent: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            senders: AtomicU64::new(senders),
            failing_since_ms: AtomicI64::new(NONE_MS),
            last_error: Mutex::new(None),
            last_sample: Mutex::new((0, Instant::now())),
        });
        lock(&OUTPUTS).push(figures.clone());
        figures
    }

    /// The destination accepted `events` (`bytes`): the output delivers again.
    pub fn delivered(&self, events: u64, bytes: u64) {
        self.sent.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if self.failing_since_ms.load(Ordering::Relaxed) != NONE_MS {
            self.failing_since_ms.store(NONE_MS, Ordering::Relaxed);
        }
    }

    /// A send or poll failed (it will be retried).
    pub fn failed(&self, error: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let _ = self.failing_since_ms.compare_exchange(
            NONE_MS,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        *lock(&self.last_error) = Some((error.to_owned(), now));
    }

    /// A failure seen by poll only ended (nothing was delivered by it).
    pub fn recovered(&self) {
        self.failing_since_ms.store(NONE_MS, Ordering::Relaxed);
    }

    /// A sender's connection opened (`true`) or closed.
    pub fn connection_changed(&self, open: bool) {
        if open {
            self.connections_open.fetch_add(1, Ordering::Relaxed);
        } else {
            self.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn record(&self) -> OutputRecord {
        let sent = self.sent.load(Ordering::Relaxed);
        let events_per_sec = {
            let mut last = lock(&self.last_sample);
            let secs = last.1.elapsed().as_secs_f64();
            let rate = if secs > 0.0 {
                sent.saturating_sub(last.0) as f64 / secs
            } else {
                0.0
            };
            *last = (sent, Instant::now());
            rate
        };
        let last_error = lock(&self.last_error).clone();
        OutputRecord {
            output: self.output.clone(),
            class: self.class.clone(),
            kind: self.kind.clone(),
            sent,
            bytes: self.bytes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            senders: self.senders.load(Ordering::Relaxed),
            events_per_sec,
            failing_since_ms: optional_ms(&self.failing_since_ms),
            last_error_ms: last_error.as_ref().map(|e| e.1),
            last_error: last_error.map(|e| e.0),
        }
    }
}

/// This process's record now.
pub fn process_record(
    process: &str,
    started_ms: i64,
    rss_bytes: u64,
    stall_after: Duration,
) -> ProcessRecord {
    ProcessRecord {
        process: process.to_owned(),
        pid: std::process::id(),
        started_ms,
        written_ms: now_ms(),
        rss_bytes,
        stalled: crate::watchdog::stalled(stall_after),
        pullers: lock(&PULLERS).iter().map(|p| p.record()).collect(),
        outputs: lock(&OUTPUTS).iter().map(|o| o.record()).collect(),
    }
}

/// Writes `record` (JSON) under `key` with the TTL.
pub fn write_record<T: serde::Serialize>(
    conn: &mut redis::Connection,
    key: &str,
    record: &T,
) -> redis::RedisResult<()> {
    let json = serde_json::to_string(record).expect("records serialize");
    redis::cmd("SET")
        .arg(key)
        .arg(json)
        .arg("PX")
        .arg(RECORD_TTL.as_millis() as u64)
        .query(conn)
}

/// A short-lived plain connection for records (timeouts of a second: a writer never hangs on Redis).
pub fn connect_for_records(url: &str) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))?;
    conn.set_write_timeout(Some(Duration::from_secs(1)))?;
    Ok(conn)
}

/// The thread that writes this process's record every [`PUBLISH_PERIOD`] until [`Publisher::finish`], then
/// removes it (a process that stopped shows as gone at once, one that died when its TTL ends). It has its own stop
/// flag: a process keeps publishing through its stop (a drain) until its work is done.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Publisher {
    /// Ends the publishing and removes the record.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// Starts this process's [`Publisher`].
pub fn spawn_publisher(env: &ProcessEnv, process: &'static str) -> Publisher {
    let key = env.keys.status(process);
    let url = env.redis_url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stall_after = Duration::from_secs(env.globals.stall_warning_after_in_sec);
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name(PUBLISHER_THREAD.into())
        .spawn(move || publish_until_stop(&url, &key, process, stall_after, &flag))
        .expect("spawn figures publisher");
    Publisher { stop, handle }
}

fn publish_until_stop(
    url: &str,
    key: &str,
    process: &str,
    stall_after: Duration,
    stop: &AtomicBool,
) {
    let started_ms = now_ms();
    let mut system = sysinfo::System::new().ok();
    let mut conn: Option<redis::Connection> = None;
    loop {
        let rss = system
            .as_mut()
            .map(|s| crate::memory::sample(s).rss)
            .unwrap_or(0);
        let record = process_record(process, started_ms, rss, stall_after);
        if conn.is_none() {
            conn = connect_for_records(url).ok();
        }
        if let Some(c) = conn.as_mut() {
            if let Err(e) = write_record(c, key, &record) {
                // Redis's outages are reported by the queue's users; the next turn connects again.
                log::debug!("Cannot write the status record {key}: {e}");
                conn = None;
            }
        }
        if !crate::process::sleep_unless(stop, PUBLISH_PERIOD) {
            break;
        }
    }
    if let Some(c) = conn.as_mut() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query(c);
    }
}

/// The supervisor's record, written from its own loop (no thread) when due.
pub struct SupervisorFigures {
    url: String,
    key: String,
    pub record: SupervisorRecord,
    conn: Option<redis::Connection>,
    next_write: Instant,
    system: Option<sysinfo::System>,
}

impl SupervisorFigures {
    pub fn new(url: &str, keys: &crate::redis_conn::Keys, name: &str) -> SupervisorFigures {
        SupervisorFigures {
            url: url.to_owned(),
            key: keys.status(MAIN_PROCESS),
            record: SupervisorRecord {
                pid: std::process::id(),
                started_ms: now_ms(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                name: name.to_owned(),
                ..Default::default()
            },
            conn: None,
            next_write: Instant::now(),
            system: sysinfo::System::new().ok(),
        }
    }

    /// The child `process` as the supervisor sees it now.
    pub fn child(&mut self, process: &str) -> &mut ChildRecord {
        let at = match self
            .record
            .children
            .iter()
            .position(|c| c.process == process)
        {
            Some(i) => i,
            None => {
                self.record.children.push(ChildRecord {
                    process: process.to_owned(),
                    ..Default::default()
                });
                self.record.children.len() - 1
            }
        };
        self.next_write = Instant::now();
        &mut self.record.children[at]
    }

    /// Closes the connection (before a fork: the child gets no copy of it to misuse).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Writes the record if it is due (every [`PUBLISH_PERIOD`], at once after a change).
    pub fn write_if_due(&mut self) {
        if Instant::now() < self.next_write {
            return;
        }
        self.next_write = Instant::now() + PUBLISH_PERIOD;
        self.record.written_ms = now_ms();
        if let Some(s) = self.system.as_mut() {
            self.record.rss_bytes = crate::memory::sample(s).rss;
        }
        if self.conn.is_none() {
            self.conn = connect_for_records(&self.url).ok();
        }
        if let Some(c) = self.conn.as_mut() {
            if let Err(e) = write_record(c, &self.key, &self.record) {
                log::debug!("Cannot write the status record {}: {e}", self.key);
                self.conn = None;
            }
        }
    }

    /// Writes the record now (a change that must show at once).
    pub fn write_now(&mut self) {
        self.next_write = Instant::now();
        self.write_if_due();
    }

    /// Removes the record (the collector stopped).
    pub fn remove(&mut self) {
        if self.conn.is_none() {
            self.conn = connect_for_records(&self.url).ok();
        }
        if let Some(c) = self.conn.as_mut() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&self.key).query(c);
        }
    }
}
