//! `PullContext`: what a puller sees of the runtime — its identity, its event sink, its state, the stop flag
//! and the cycle statistics.

use crate::config::PullerIdentity;
use crate::error::PullerError;
use crate::sink::{EventSink, SinkFactory};
use logferry::deadletter::DeadLetters;
use logferry::event::{Event, EventClass};
use logferry::state::StateStore;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters of one pull cycle, printed in the seeds' statistics line.
#[derive(Debug, Clone, Default)]
pub struct CycleStats {
    pub requests: u64,
    pub received: u64,
    pub duplicated: u64,
    pub generated: u64,
}

pub struct PullContext {
    identity: PullerIdentity,
    sink: EventSink,
    factory: SinkFactory,
    state_store: StateStore,
    state: Value,
    pulling_id: u64,
    started: Instant,
    /// The dead-letter stream, opened at the first item set aside.
    dead_letters: Option<DeadLetters>,
    /// Counters of the current cycle.
    pub stats: CycleStats,
}

impl PullContext {
    pub(crate) fn new(
        identity: PullerIdentity,
        factory: SinkFactory,
        state_store: StateStore,
        state: Value,
    ) -> Result<Self, PullerError> {
        let sink = factory.open(EventClass::Standard)?;
        Ok(PullContext {
            identity,
            sink,
            factory,
            state_store,
            state,
            pulling_id: 0,
            started: Instant::now(),
            dead_letters: None,
            stats: CycleStats::default(),
        })
    }

    pub fn identity(&self) -> &PullerIdentity {
        &self.identity
    }

    /// The `@devo_pulling_id` of the current cycle (its start time in ms).
    pub fn pulling_id(&self) -> u64 {
        self.pulling_id
    }

    pub(crate) fn begin_cycle(&mut self) {
        self.started = Instant::now();
        self.pulling_id = logferry::time::now_ms() as u64;
        self.stats = CycleStats::default();
    }

    /// True once a controlled stop was requested: finish the current unit of work and return.
    pub fn stopping(&self) -> bool {
        self.factory.stop.load(Ordering::Relaxed)
    }

    /// The stop flag, for worker threads.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.factory.stop.clone()
    }

    /// Sleeps up to `d`, waking early at stop; returns false when stopping.
    pub fn sleep(&self, d: Duration) -> bool {
        crate::runtime::sleep_unless_stopped(&self.factory.stop, d)
    }

    /// Emits one event (buffered; may block while the queue is full).
    pub fn emit(&mut self, event: Event) -> Result<(), PullerError> {
        self.emit_parts(&event.tag, event.time_ms, &event.message)
    }

    /// Emits one event from borrowed parts (no allocation: the fast path for rendered or sliced events).
    pub fn emit_parts(
        &mut self,
        tag: &str,
        time_ms: i64,
        message: &str,
    ) -> Result<(), PullerError> {
        self.stats.generated += 1;
        self.sink.emit_parts(tag, time_ms, message)
    }

    /// Emits a JSON object with `@devo_pulling_id` added, as the seeds' collectors do.
    pub fn emit_json(
        &mut self,
        tag: &str,
        time_ms: i64,
        mut value: serde_json::Map<String, Value>,
    ) -> Result<(), PullerError> {
        value.insert("@devo_pulling_id".into(), Value::from(self.pulling_id));
        self.emit(Event::new(tag, time_ms, Value::Object(value).to_string()))
    }

    /// Sets a bad item aside in the dead-letter stream with where it came from and why (it never stops the puller;
    /// the caller may then acknowledge it upstream).
    pub fn set_aside(
        &mut self,
        origin: &str,
        reason: &str,
        payload: &[u8],
    ) -> Result<(), PullerError> {
        if self.dead_letters.is_none() {
            let conn = self.factory.connect()?;
            self.dead_letters = Some(DeadLetters::new(conn, &self.factory.keys));
        }
        let dead = self.dead_letters.as_mut().expect("opened above");
        dead.put(origin, reason, payload).map_err(|e| {
            PullerError::new(
                crate::PullerErrorType::QueueError,
                401,
                format!("cannot write a dead letter: {e}"),
            )
        })
    }

    /// Makes sure every emitted event is in Redis.
    pub fn flush(&mut self) -> Result<(), PullerError> {
        self.sink.flush()
    }

    /// The puller's stored progress (`null` when fresh or reset).
    pub fn state(&self) -> &Value {
        &self.state
    }

    /// Commits progress: first every emitted event goes to Redis, then the state is written.
    pub fn commit_state(&mut self, data: Value) -> Result<(), PullerError> {
        self.flush()?;
        log::debug!("Updating the persistence");
        self.state_store.save(&data)?;
        self.state = data;
        Ok(())
    }

    /// Opens another sink (own Redis connection) for a worker thread or another event class (lookups).
    pub fn open_sink(&self, class: EventClass) -> Result<EventSink, PullerError> {
        self.factory.open(class)
    }

    /// The factory, for pullers that run worker threads.
    pub fn sink_factory(&self) -> &SinkFactory {
        &self.factory
    }

    /// Logs the seeds' `(Partial) Statistics for this pull cycle ...` line.
    pub fn log_partial_stats(&self) {
        log::info!("(Partial) {}", self.stats_line());
    }

    /// The cycle's statistics line, at `level` (DEBUG for an idle cycle).
    pub(crate) fn log_final_stats(&self, level: log::Level) {
        log::log!(level, "{}", self.stats_line());
    }

    fn stats_line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        format!(
            "Statistics for this pull cycle (@devo_pulling_id={}):Number of requests made: {}; Number of events received: {}; \
             Number of duplicated events filtered out: {}; Number of events generated and sent: {}; Average of events per second: {:.3}.",
            self.pulling_id,
            self.stats.requests,
            self.stats.received,
            self.stats.duplicated,
            self.stats.generated,
            self.stats.generated as f64 / secs
        )
    }

    pub(crate) fn cycle_elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn sink(&self) -> &EventSink {
        &self.sink
    }
}
