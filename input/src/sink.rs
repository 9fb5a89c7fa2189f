//! `EventSink`: a buffered writer of events into one stream of the queue. Each puller thread (and each worker
//! thread a puller starts) owns one, with its own Redis connection.

use crate::error::PullerError;
use crate::progress::ProgressNotes;
use crate::pulling_id::{object_body, PullingIdField};
use logferry::event::{Event, EventClass, Wrap};
use logferry::queue::{QueueLimits, QueueProducer};
use logferry::redis_conn::{Keys, RedisLink};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Everything needed to open sinks in this process (cloneable, sendable to worker threads).
#[derive(Clone)]
pub struct SinkFactory {
    pub redis_url: String,
    pub keys: Keys,
    pub limits: QueueLimits,
    pub stop: Arc<AtomicBool>,
}

impl SinkFactory {
    /// Opens a sink for one event class (a new Redis connection).
    pub fn open(&self, class: EventClass) -> Result<EventSink, PullerError> {
        let producer = QueueProducer::connect(
            &self.redis_url,
            CONNECT_DEADLINE,
            &self.keys,
            class,
            self.limits,
            self.stop.clone(),
        )
        .map_err(|e| cannot_connect(&e))?;
        Ok(EventSink {
            producer,
            wraps: (0..WRAPS_PER_FLUSH).map(|_| Wrap::default()).collect(),
            current: 0,
            wrap_size: self.limits.wrap_size.max(1),
            sent: 0,
            bytes: 0,
            newest_ms: i64::MIN,
            progress: ProgressNotes::default(),
        })
    }

    /// A Redis connection for state stores and dead letters: it reconnects through outages and gives up at stop.
    pub fn connect(&self) -> Result<RedisLink, PullerError> {
        RedisLink::open(&self.redis_url, CONNECT_DEADLINE)
            .map(|link| link.give_way_to(self.stop.clone()))
            .map_err(|e| cannot_connect(&e))
    }
}

/// How long a sink or state store waits for Redis at start.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

fn cannot_connect(e: &dyn std::fmt::Display) -> PullerError {
    PullerError::new(
        crate::PullerErrorType::QueueError,
        402,
        format!("cannot connect to Redis: {e}"),
    )
}

/// Wraps filled before the sink writes them (one round trip to Redis).
const WRAPS_PER_FLUSH: usize = 8;
/// Encoded bytes after which a wrap is full even with fewer than `wrap_size` events. Large events (CloudTrail
/// records of ~1.3 KB) made wraps of over 128 KiB, which glibc's malloc serves from fresh `mmap` pages in every
/// process that reads them (the OutputProcess, the bench's consumer: ~3x its CPU, page faults and zeroing), and 8 of
/// them buffered over 1 MB per round trip, whose copies missed the cache. With this bound a flush holds at most
/// about [`WRAPS_PER_FLUSH`] x 96 KiB; events up to ~1 KB still fill wraps by count.
const WRAP_BYTES: usize = 96 << 10;

/// Buffers events, encoded straight into wraps, and writes them to Redis; `flush` returns once everything emitted
/// is in Redis. The wraps are reused, so a sink allocates nothing per event or per batch once warm.
pub struct EventSink {
    producer: QueueProducer,
    wraps: Vec<Wrap>,
    /// Index of the wrap being filled.
    current: usize,
    wrap_size: usize,
    /// Events written to Redis by this sink since it was opened.
    pub sent: u64,
    /// Bytes written to Redis by this sink since it was opened.
    pub bytes: u64,
    /// The newest event time buffered (for the puller's lag in its figures).
    newest_ms: i64,
    /// Progress inside the items being read, saved with the next write (see [`crate::progress`]).
    progress: ProgressNotes,
}

impl EventSink {
    /// Adds an event; writes a batch when enough are buffered (blocks while the queue is full).
    pub fn emit(&mut self, event: Event) -> Result<(), PullerError> {
        self.emit_parts(&event.tag, event.time_ms, &event.message)
    }

    /// Adds an event from borrowed parts, without building an [`Event`] (the fast path for pullers that render
    /// or slice their events).
    pub fn emit_parts(
        &mut self,
        tag: &str,
        time_ms: i64,
        message: &str,
    ) -> Result<(), PullerError> {
        self.wrap_with_room()?.push(tag, time_ms, message);
        self.newest_ms = self.newest_ms.max(time_ms);
        self.after_push()
    }

    /// The wrap being filled. When every wrap is full because their write failed (they are kept: see
    /// [`EventSink::flush`]), they are written first.
    #[inline]
    fn wrap_with_room(&mut self) -> Result<&mut Wrap, PullerError> {
        if self.current == self.wraps.len() {
            self.flush()?;
        }
        Ok(&mut self.wraps[self.current])
    }

    /// Moves on to the next wrap when the current one is full (`wrap_size` events or [`WRAP_BYTES`]), and writes them
    /// all when every wrap is.
    #[inline]
    fn after_push(&mut self) -> Result<(), PullerError> {
        let wrap = &self.wraps[self.current];
        if wrap.len() >= self.wrap_size || wrap.encoded_len() >= WRAP_BYTES {
            self.current += 1;
            if self.current == self.wraps.len() {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Adds an event whose message is the concatenation of `pieces` (see [`Wrap::push_pieces`]).
    pub fn emit_pieces(
        &mut self,
        tag: &str,
        time_ms: i64,
        pieces: &[&str],
    ) -> Result<(), PullerError> {
        self.wrap_with_room()?.push_pieces(tag, time_ms, pieces);
        self.newest_ms = self.newest_ms.max(time_ms);
        self.after_push()
    }

    /// Adds a JSON-object event kept as text (`{...}`) with `@devo_pulling_id` and the stable id member (`id`:
    /// `,"<name>":"<id>"`, see [`crate::EventIdField`]) spliced in before its closing brace, those that are given;
    /// text that is not an object is written as it is.
    pub fn emit_object(
        &mut self,
        tag: &str,
        time_ms: i64,
        text: &str,
        pulling_id: Option<&PullingIdField>,
        id: Option<&str>,
    ) -> Result<(), PullerError> {
        let wanted = pulling_id.is_some() || id.is_some();
        let Some((body, empty)) = wanted.then(|| object_body(text)).flatten() else {
            return self.emit_parts(tag, time_ms, text);
        };
        // The first member added to an empty object has no comma before it.
        let id = id.map(|m| if empty { &m[1..] } else { m });
        let close = pulling_id.map_or("}", |p| p.closing(empty && id.is_none()));
        match id {
            Some(id) => self.emit_pieces(tag, time_ms, &[body, id, close]),
            None => self.emit_pieces(tag, time_ms, &[body, close]),
        }
    }

    /// Starts noting the progress of an item (an S3 object) under `key`: from now on each write also saves, in the
    /// same transaction, `version` and the position given by [`EventSink::advance_item`] (`position`: units
    /// already done when reading starts), expiring after `ttl`.
    pub fn track_item(&mut self, key: String, version: String, position: u64, ttl: Duration) {
        self.progress.track(key, version, position, ttl);
    }

    /// The item being read has `position` units done, counting the one whose event was just emitted or is about
    /// to be (call it before emitting: a write may happen inside the emit).
    #[inline]
    pub fn advance_item(&mut self, position: u64) {
        self.progress.advance(position);
    }

    /// The item is read to its end (its last position is saved with the next write).
    pub fn end_item(&mut self) {
        self.progress.end();
    }

    /// Writes every buffered event; on success all of them are in Redis. The producer waits through Redis outages,
    /// so this fails only at stop or on an error no wait can fix. A failed write keeps the events buffered: the
    /// next `emit` or `flush` writes them first. Nothing was acknowledged at the source for them (acknowledgements
    /// follow a successful flush), so a puller whose retried cycle emits them again only makes duplicates, which
    /// at-least-once allows; dropping them instead would lose them when a puller's own position had moved past them.
    pub fn flush(&mut self) -> Result<(), PullerError> {
        let used = (self.current + 1).min(self.wraps.len());
        let filled = &mut self.wraps[..used];
        if filled.iter().all(Wrap::is_empty) {
            // Positions that moved without events (units skipped or set aside) need no save: at worst they are
            // skipped or set aside again. They must not be saved later either, after their item was forgotten.
            self.progress.saved();
            return Ok(());
        }
        self.producer
            .push_wraps_with(filled, &self.progress.commands())?;
        self.progress.saved();
        let mut events = 0;
        for wrap in filled.iter_mut() {
            events += wrap.len() as u64;
            self.bytes += wrap.event_bytes();
            wrap.clear();
        }
        self.sent += events;
        self.current = 0;
        logferry::watchdog::wrote_on_this_thread(events, self.newest_ms);
        Ok(())
    }

    /// Events buffered and not yet written.
    pub fn pending(&self) -> usize {
        self.wraps.iter().map(Wrap::len).sum()
    }

    /// Drops buffered events that were not written (the source still has them: they were not acknowledged).
    pub fn discard(&mut self) -> usize {
        let n = self.pending();
        self.wraps.iter_mut().for_each(Wrap::clear);
        self.progress.clear();
        self.current = 0;
        n
    }

    /// Time spent waiting for room in the queue.
    pub fn waited(&self) -> Duration {
        self.producer.waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry_testkit::RedisServer;

    fn open(redis: &RedisServer) -> EventSink {
        open_at(&redis.url(), Arc::new(AtomicBool::new(false)))
    }

    fn open_at(redis_url: &str, stop: Arc<AtomicBool>) -> EventSink {
        SinkFactory {
            redis_url: redis_url.to_owned(),
            keys: Keys::new("sink-test"),
            limits: QueueLimits {
                max_events: 1_000_000,
                max_bytes: 1 << 30,
                wrap_size: 100,
                lz4: false,
            },
            stop,
        }
        .open(EventClass::Standard)
        .unwrap()
    }

    /// Wraps in the stream (each write adds the wraps it holds).
    fn wraps_written(redis: &RedisServer) -> usize {
        let mut c = logferry::redis_conn::connect(&redis.url(), Duration::from_secs(5)).unwrap();
        redis::cmd("XLEN")
            .arg(Keys::new("sink-test").stream(EventClass::Standard))
            .query(&mut c)
            .unwrap()
    }

    /// Events of `size` bytes, `n` of them; then the wraps written so far.
    fn emit_n(sink: &mut EventSink, redis: &RedisServer, n: usize, size: usize) -> usize {
        let message = "x".repeat(size);
        for _ in 0..n {
            sink.emit_parts("my.app.test", 1, &message).unwrap();
        }
        wraps_written(redis)
    }

    #[test]
    fn small_events_are_written_eight_wraps_at_a_time() {
        let redis = RedisServer::start();
        let mut sink = open(&redis);
        assert_eq!(emit_n(&mut sink, &redis, 799, 300), 0);
        assert_eq!(emit_n(&mut sink, &redis, 1, 300), WRAPS_PER_FLUSH);
    }

    /// 2 KB events: a wrap is full once it passes [`WRAP_BYTES`], well before 100 events; still 8 wraps a write.
    #[test]
    fn large_events_fill_wraps_by_bytes() {
        let redis = RedisServer::start();
        let mut sink = open(&redis);
        let message = "x".repeat(2000);
        let mut probe = Wrap::default();
        probe.push("my.app.test", 1, &message);
        let one = probe.encoded_len();
        probe.push("my.app.test", 1, &message);
        let per_event = probe.encoded_len() - one;
        let header = one - per_event;
        // The smallest count whose wrap reaches the bound.
        let per_wrap = (WRAP_BYTES - header).div_ceil(per_event);
        assert!(per_wrap < 100, "{per_wrap}");
        let batch = per_wrap * WRAPS_PER_FLUSH;
        assert_eq!(emit_n(&mut sink, &redis, batch - 1, 2000), 0);
        assert_eq!(emit_n(&mut sink, &redis, 1, 2000), WRAPS_PER_FLUSH);
        let mut c = logferry::redis_conn::connect(&redis.url(), Duration::from_secs(5)).unwrap();
        let counts: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(Keys::new("sink-test").stream(EventClass::Standard))
            .arg("-")
            .arg("+")
            .query::<redis::Value>(&mut c)
            .map(|v| parse_entries(&v))
            .unwrap();
        assert_eq!(counts.len(), WRAPS_PER_FLUSH);
        for (_, fields) in &counts {
            let n = fields
                .iter()
                .find(|(k, _)| k == "n")
                .map(|(_, v)| v.clone());
            assert_eq!(n, Some(per_wrap.to_string()));
        }
    }

    /// A write that fails (Redis down at stop, so the producer gives up after one attempt) keeps the sink usable: the
    /// next event does not overrun the full wraps (it panicked with `index out of bounds: the len is 8 but the index
    /// is 8`), and the kept events are written first once Redis is back, none lost.
    #[test]
    fn a_failed_write_keeps_its_events_for_the_next() {
        use logferry_testkit::redis_faults::RestartableRedis;
        use std::sync::atomic::Ordering;
        let mut redis = RestartableRedis::start();
        let stop = Arc::new(AtomicBool::new(false));
        let mut sink = open_at(&redis.url(), stop.clone());
        let message = "x".repeat(300);
        for _ in 0..799 {
            sink.emit_parts("my.app.test", 1, &message).unwrap();
        }
        redis.kill();
        stop.store(true, Ordering::Relaxed);
        // The 800th event fills the last wrap: the write fails, the events stay.
        assert!(sink.emit_parts("my.app.test", 1, &message).is_err());
        assert_eq!(sink.pending(), 800);
        assert!(sink.emit_parts("my.app.test", 1, &message).is_err());
        assert_eq!(sink.pending(), 800);
        redis.restart();
        stop.store(false, Ordering::Relaxed);
        sink.emit_parts("my.app.test", 1, &message).unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.pending(), 0);
        assert_eq!(sink.sent, 801);
        let mut c = logferry::redis_conn::connect(&redis.url(), Duration::from_secs(5)).unwrap();
        let events: u64 = redis::cmd("HGET")
            .arg(Keys::new("sink-test").stream_size(EventClass::Standard))
            .arg("n")
            .query(&mut c)
            .unwrap();
        assert_eq!(events, 801);
    }

    /// The progress saved under `key` (position, seconds to live).
    fn saved_progress(redis: &RedisServer, key: &str) -> Option<(u64, i64)> {
        let mut c = logferry::redis_conn::connect(&redis.url(), Duration::from_secs(5)).unwrap();
        let mut store = crate::ProgressStore::new(
            logferry::redis_conn::RedisLink::open(&redis.url(), Duration::from_secs(5)).unwrap(),
        );
        let saved = store.load(key).unwrap()?;
        assert_eq!(saved.version, "etag-1");
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut c).unwrap();
        Some((saved.position, ttl))
    }

    /// An item's position is saved by the write that takes the events it covers (same transaction), never before;
    /// one dropped with unwritten events is not saved at all.
    #[test]
    fn item_progress_is_saved_with_the_events_it_covers() {
        let redis = RedisServer::start();
        let mut sink = open(&redis);
        let ttl = Duration::from_secs(600);
        sink.track_item("progress:a".into(), "etag-1".into(), 0, ttl);
        let message = "x".repeat(300);
        for n in 1..800u64 {
            sink.advance_item(n);
            sink.emit_parts("my.app.test", 1, &message).unwrap();
        }
        assert_eq!(saved_progress(&redis, "progress:a"), None);
        sink.advance_item(800);
        sink.emit_parts("my.app.test", 1, &message).unwrap();
        assert_eq!(wraps_written(&redis), WRAPS_PER_FLUSH);
        let (position, left) = saved_progress(&redis, "progress:a").unwrap();
        assert_eq!(position, 800);
        assert!(left > 590 && left <= 600, "{left}");
        sink.advance_item(801);
        sink.emit_parts("my.app.test", 1, &message).unwrap();
        sink.end_item();
        sink.flush().unwrap();
        assert_eq!(saved_progress(&redis, "progress:a").unwrap().0, 801);
        // Dropped events take their item's position with them.
        sink.track_item("progress:b".into(), "etag-1".into(), 0, ttl);
        sink.advance_item(1);
        sink.emit_parts("my.app.test", 1, &message).unwrap();
        assert_eq!(sink.discard(), 1);
        sink.flush().unwrap();
        sink.emit_parts("my.app.test", 1, &message).unwrap();
        sink.flush().unwrap();
        assert_eq!(saved_progress(&redis, "progress:b"), None);
    }

    /// (id, field/value pairs) of an XRANGE reply, the wrap bytes left out.
    fn parse_entries(v: &redis::Value) -> Vec<(String, Vec<(String, String)>)> {
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) if b.len() < 64 => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        let redis::Value::Array(entries) = v else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| match e {
                redis::Value::Array(pair) if pair.len() == 2 => {
                    let redis::Value::Array(kv) = &pair[1] else {
                        return None;
                    };
                    let fields = kv.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect();
                    Some((text(&pair[0]), fields))
                }
                _ => None,
            })
            .collect()
    }
}
