//! `EventSink`: a buffered writer of events into one stream of the queue. Each puller thread (and each worker
//! thread a puller starts) owns one, with its own Redis connection.

use crate::error::PullerError;
use logferry::event::{Event, EventClass, Wrap};
use logferry::queue::{QueueLimits, QueueProducer};
use logferry::redis_conn::Keys;
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
        let conn = self.connect()?;
        let producer = QueueProducer::new(conn, &self.keys, class, self.limits, self.stop.clone())
            .reconnecting_to(&self.redis_url);
        Ok(EventSink {
            producer,
            wraps: (0..WRAPS_PER_FLUSH).map(|_| Wrap::default()).collect(),
            current: 0,
            wrap_size: self.limits.wrap_size.max(1),
            sent: 0,
            bytes: 0,
        })
    }

    /// A plain Redis connection (state stores).
    pub fn connect(&self) -> Result<redis::Connection, PullerError> {
        logferry::redis_conn::connect(&self.redis_url, Duration::from_secs(30)).map_err(|e| {
            PullerError::new(
                crate::PullerErrorType::QueueError,
                402,
                format!("cannot connect to Redis: {e}"),
            )
        })
    }
}

/// Wraps filled before the sink writes them (one round trip to Redis).
const WRAPS_PER_FLUSH: usize = 8;
/// Encoded bytes after which the filled wraps are written even if fewer than [`WRAPS_PER_FLUSH`]: 8 wraps of
/// large events (CloudTrail records of ~1.3 KB) would buffer over 1 MB, and the copies into the command and the
/// socket then miss the cache (`bench/aws/run.sh 20 25 1`: 681-691 MiB per CPU second for CloudTrail files with 8
/// wraps, 743-749 with this bound; 512 KiB saved CPU as well but cost throughput, one round trip to Redis more
/// per flush). Events up to ~1 KB still go [`WRAPS_PER_FLUSH`] wraps at a time.
const FLUSH_BYTES: usize = 768 << 10;

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
        self.wraps[self.current].push(tag, time_ms, message);
        self.after_push()
    }

    /// Moves on to the next wrap when the current one is full, and writes them all when every wrap is.
    #[inline]
    fn after_push(&mut self) -> Result<(), PullerError> {
        if self.wraps[self.current].len() >= self.wrap_size {
            self.current += 1;
            if self.current == self.wraps.len() || self.buffered_bytes() >= FLUSH_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Encoded bytes of the filled wraps (checked once per filled wrap).
    fn buffered_bytes(&self) -> usize {
        self.wraps[..self.current]
            .iter()
            .map(Wrap::encoded_len)
            .sum()
    }

    /// Adds an event whose message is the concatenation of `pieces` (see [`Wrap::push_pieces`]).
    pub fn emit_pieces(
        &mut self,
        tag: &str,
        time_ms: i64,
        pieces: &[&str],
    ) -> Result<(), PullerError> {
        self.wraps[self.current].push_pieces(tag, time_ms, pieces);
        self.after_push()
    }

    /// Writes every buffered event; on success all of them are in Redis.
    pub fn flush(&mut self) -> Result<(), PullerError> {
        let used = (self.current + 1).min(self.wraps.len());
        let filled = &mut self.wraps[..used];
        if filled.iter().all(Wrap::is_empty) {
            return Ok(());
        }
        self.producer.push_wraps(filled)?;
        for wrap in filled.iter_mut() {
            self.sent += wrap.len() as u64;
            self.bytes += wrap.event_bytes();
            wrap.clear();
        }
        self.current = 0;
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
        SinkFactory {
            redis_url: redis.url(),
            keys: Keys::new("sink-test"),
            limits: QueueLimits {
                max_events: 1_000_000,
                max_bytes: 1 << 30,
                wrap_size: 100,
            },
            stop: Arc::new(AtomicBool::new(false)),
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

    /// 1.4 KB events: 6 wraps of 100 pass [`FLUSH_BYTES`] (5 do not), so they are written 6 at a time.
    #[test]
    fn large_events_are_written_once_the_wraps_pass_the_byte_bound() {
        let redis = RedisServer::start();
        let mut sink = open(&redis);
        assert_eq!(emit_n(&mut sink, &redis, 599, 1400), 0);
        assert_eq!(emit_n(&mut sink, &redis, 1, 1400), 6);
        assert_eq!(emit_n(&mut sink, &redis, 600, 1400), 12);
        sink.flush().unwrap();
        assert_eq!(emit_n(&mut sink, &redis, 0, 0), 12);
    }
}
