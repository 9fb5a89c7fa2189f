//! `PullContext`: what a puller sees of the runtime — its identity, its event sink, its state, the stop flag
//! and the cycle statistics.

use crate::config::PullerIdentity;
use crate::error::PullerError;
use crate::progress::{ProgressError, ProgressStore, SavedProgress};
use crate::sink::{EventSink, SinkFactory};
use logferry::deadletter::DeadLetters;
use logferry::event::{Event, EventClass};
use logferry::figures::PullerFigures;
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

/// What was read from one source item (an S3 object, a queue message) that a puller is about to acknowledge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemRead {
    /// Bytes of content read (decompressed).
    pub content_bytes: u64,
    /// Non-blank units (records, lines) found in it.
    pub units: u64,
    /// Units that became events or were set aside one by one (a bad record).
    pub accounted_units: u64,
}

/// Why an item gave no event although it was read without error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoEvent {
    /// Nothing in it (zero bytes, blank lines, an empty list): acknowledged, counted as discarded.
    #[error("no content ({0} bytes, nothing but blanks)")]
    Empty(u64),
    /// Content that gave no event (a format the reader did not recognise): set aside, never acknowledged in silence.
    #[error("{units} unit(s) in {bytes} bytes gave no event")]
    Unread { units: u64, bytes: u64 },
}

impl ItemRead {
    /// The rule every puller follows before acknowledging an item: None when its units all became events (or were
    /// set aside one by one); otherwise why it gave nothing.
    pub fn no_event(&self) -> Option<NoEvent> {
        match (self.units, self.accounted_units) {
            (0, _) => Some(NoEvent::Empty(self.content_bytes)),
            (_, 0) => Some(NoEvent::Unread {
                units: self.units,
                bytes: self.content_bytes,
            }),
            _ => None,
        }
    }
}

/// The items a puller (or one of its worker threads) read and did not turn into events: set aside in the
/// dead-letter stream (a WARNING naming each) or discarded (a DEBUG line naming each), and counted. Every item is
/// acknowledged upstream only after it went through here or gave events: nothing is dropped in silence.
pub struct ItemLedger {
    factory: SinkFactory,
    /// The dead-letter stream, opened at the first item set aside.
    dead_letters: Option<DeadLetters>,
    /// Items not collected on purpose (a digest file, a type the service does not collect) or with nothing in them.
    pub discarded: u64,
    /// Items set aside in the dead-letter stream.
    pub set_aside: u64,
}

impl ItemLedger {
    pub fn new(factory: SinkFactory) -> Self {
        ItemLedger {
            factory,
            dead_letters: None,
            discarded: 0,
            set_aside: 0,
        }
    }

    /// Counts an item skipped on purpose or empty, with a DEBUG line naming it.
    pub fn discard(&mut self, origin: &str, why: impl std::fmt::Display) {
        log::debug!("Discarded {origin}: {why}");
        self.discarded += 1;
    }

    /// Sets a bad item aside with where it came from and why (the dead-letter stream logs a WARNING naming it).
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
        dead.put(origin, reason, payload)
            .map_err(|e| PullerError::dead_letter(origin, &e))?;
        self.set_aside += 1;
        Ok(())
    }

    /// Applies the rule to an item read without error: nothing to do when it gave events; discarded when it was
    /// empty; set aside (with `payload`, e.g. its location) when its content gave no event.
    pub fn settle(
        &mut self,
        origin: &str,
        read: ItemRead,
        payload: &[u8],
    ) -> Result<(), PullerError> {
        match read.no_event() {
            None => Ok(()),
            Some(why @ NoEvent::Empty(_)) => {
                self.discard(origin, why);
                Ok(())
            }
            Some(why) => self.set_aside(origin, &why.to_string(), payload),
        }
    }
}

pub struct PullContext {
    identity: PullerIdentity,
    sink: EventSink,
    factory: SinkFactory,
    state_store: StateStore,
    state: Value,
    pulling_id: u64,
    started: Instant,
    /// When the current cycle should end (its start plus the puller's [`crate::Puller::max_cycle`]).
    deadline: Instant,
    /// Time of the current cycle spent waiting for data (an empty long poll), left out of the event rate.
    idle: Duration,
    /// The level of the current cycle's routine lines written before its outcome is known (INFO unless the
    /// previous cycle was idle): see [`crate::runtime::cycle_level`].
    routine_level: log::Level,
    /// Events written to the queue by the puller's other sinks (worker threads) since start.
    written_by_workers: u64,
    /// Items set aside or discarded.
    pub ledger: ItemLedger,
    /// Counters of the current cycle.
    pub stats: CycleStats,
    /// The puller's figures (`logferry status`, `/metrics`).
    figures: Arc<PullerFigures>,
    /// The next cycle's start chosen by the puller in this cycle.
    next_cycle_at: Option<Instant>,
    /// Reads saved progress inside items (opened at the first use).
    progress_store: Option<ProgressStore>,
}

impl PullContext {
    pub(crate) fn new(
        identity: PullerIdentity,
        factory: SinkFactory,
        state_store: StateStore,
        state: Value,
        figures: Arc<PullerFigures>,
    ) -> Result<Self, PullerError> {
        let sink = factory.open(EventClass::Standard)?;
        let ledger = ItemLedger::new(factory.clone());
        Ok(PullContext {
            figures,
            identity,
            sink,
            factory,
            state_store,
            state,
            pulling_id: 0,
            started: Instant::now(),
            deadline: Instant::now(),
            idle: Duration::ZERO,
            routine_level: log::Level::Info,
            written_by_workers: 0,
            ledger,
            stats: CycleStats::default(),
            next_cycle_at: None,
            progress_store: None,
        })
    }

    /// A backfill (a start in the past read in slots or windows) has done `done_ratio` (0..=1) of its work and needs
    /// `left` more at its pace so far: shown by `logferry status` and `/metrics`.
    pub fn report_backfill(&self, done_ratio: f64, left: Duration) {
        self.figures.backfill(done_ratio, left);
    }

    pub fn identity(&self) -> &PullerIdentity {
        &self.identity
    }

    /// The `@devo_pulling_id` of the current cycle (its start time in ms).
    pub fn pulling_id(&self) -> u64 {
        self.pulling_id
    }

    pub(crate) fn begin_cycle(&mut self, max_cycle: Duration, routine_level: log::Level) {
        self.started = Instant::now();
        self.routine_level = routine_level;
        self.deadline = self.started + max_cycle;
        self.idle = Duration::ZERO;
        self.pulling_id = logferry::time::now_ms() as u64;
        self.stats = CycleStats::default();
        self.next_cycle_at = None;
    }

    /// Asks the runtime to start the next cycle at `at` instead of one `request_period` after this one's start
    /// (a puller aligned on its source's periods, as the metrics puller's `retrieval_offset`).
    pub fn start_next_cycle_at(&mut self, at: Instant) {
        self.next_cycle_at = Some(at);
    }

    /// When the next cycle starts, if the puller chose it ([`Self::start_next_cycle_at`]).
    pub(crate) fn next_cycle_at(&self) -> Option<Instant> {
        self.next_cycle_at
    }

    /// The level of the cycle's routine lines (`Pull Started`, `Starting a new pulling ...`): INFO as the seeds
    /// show them, DEBUG after an idle cycle so that an idle collector writes one INFO line per cycle.
    pub fn routine_level(&self) -> log::Level {
        self.routine_level
    }

    /// When the current cycle should end: a puller starts no new unit of work (a receive, a page) after it, so
    /// statistics and `@devo_pulling_id` move on under steady traffic.
    pub fn cycle_deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the current cycle has run for its bound ([`Self::cycle_deadline`]).
    pub fn cycle_over(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Adds time the cycle spent waiting for data that did not come (it is left out of the event rate).
    pub fn add_idle(&mut self, waited: Duration) {
        self.idle += waited;
    }

    /// Counts events a worker thread wrote to the queue through its own sink (reported in `Thread stopped`).
    pub fn count_written(&mut self, events: u64) {
        self.written_by_workers += events;
    }

    /// Events written to the queue since start, by the context's sink and the puller's workers.
    pub(crate) fn written(&self) -> u64 {
        self.sink.sent + self.written_by_workers
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

    /// Emits one event whose message is the concatenation of `pieces` (e.g. a JSON object with `@devo_pulling_id`
    /// spliced in by [`crate::PullingIdField`]), without copying them into one string first.
    pub fn emit_pieces(
        &mut self,
        tag: &str,
        time_ms: i64,
        pieces: &[&str],
    ) -> Result<(), PullerError> {
        self.stats.generated += 1;
        self.sink.emit_pieces(tag, time_ms, pieces)
    }

    /// Emits a JSON-object event kept as text with `@devo_pulling_id` and the stable id member spliced in (those
    /// given; see [`EventSink::emit_object`]).
    pub fn emit_object(
        &mut self,
        tag: &str,
        time_ms: i64,
        text: &str,
        pulling_id: Option<&crate::PullingIdField>,
        id: Option<&str>,
    ) -> Result<(), PullerError> {
        self.stats.generated += 1;
        self.sink.emit_object(tag, time_ms, text, pulling_id, id)
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
        self.ledger.set_aside(origin, reason, payload)
    }

    /// Makes sure every emitted event is in Redis.
    pub fn flush(&mut self) -> Result<(), PullerError> {
        self.sink.flush()
    }

    /// The Redis key of the progress inside the puller's item `item` (beside its state: `...:state:<puller>:<item>`).
    pub fn progress_key(&self, item: &str) -> String {
        format!(
            "{}:{item}",
            self.factory.keys.state(&self.identity.state_parts())
        )
    }

    /// The progress saved under `key` (by [`PullContext::track_item`] before a crash), if any.
    pub fn load_progress(&mut self, key: &str) -> Result<Option<SavedProgress>, PullerError> {
        let store = match &mut self.progress_store {
            Some(store) => store,
            None => {
                let conn = self.factory.connect()?;
                self.progress_store.insert(ProgressStore::new(conn))
            }
        };
        match store.load(key) {
            Err(e @ ProgressError::Corrupt { .. }) => {
                log::warn!("{e}: the item is read from its start");
                Ok(None)
            }
            loaded => loaded.map_err(PullerError::from),
        }
    }

    /// Starts noting the progress of an item: each write of the context's sink saves it with the events it covers
    /// (see [`EventSink::track_item`]).
    pub fn track_item(&mut self, key: String, version: String, position: u64, ttl: Duration) {
        self.sink.track_item(key, version, position, ttl);
    }

    /// The item being read has `position` units done (call it before emitting the unit's event).
    #[inline]
    pub fn advance_item(&mut self, position: u64) {
        self.sink.advance_item(position);
    }

    /// The item is read to its end.
    pub fn end_item(&mut self) {
        self.sink.end_item();
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

    /// The seeds' statistics line; the rate is over the time spent working (the cycle without its idle waits).
    fn stats_line(&self) -> String {
        let working = self.started.elapsed().saturating_sub(self.idle);
        let secs = working.as_secs_f64().max(1e-3);
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
}
