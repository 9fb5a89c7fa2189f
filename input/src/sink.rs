//! `EventSink`: a buffered writer of events into one stream of the queue. Each puller thread (and each worker
//! thread a puller starts) owns one, with its own Redis connection.

use crate::error::PullerError;
use logferry::event::{Event, EventClass};
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
        let producer = QueueProducer::new(conn, &self.keys, class, self.limits, self.stop.clone());
        Ok(EventSink {
            producer,
            buffer: Vec::with_capacity(self.flush_threshold()),
            threshold: self.flush_threshold(),
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

    fn flush_threshold(&self) -> usize {
        self.limits.wrap_size * 8
    }
}

/// Buffers events and writes them in wraps; `flush` returns once everything emitted is in Redis.
pub struct EventSink {
    producer: QueueProducer,
    buffer: Vec<Event>,
    threshold: usize,
    /// Events written to Redis by this sink since it was opened.
    pub sent: u64,
    /// Bytes written to Redis by this sink since it was opened.
    pub bytes: u64,
}

impl EventSink {
    /// Adds an event; writes a batch when enough are buffered (blocks while the queue is full).
    pub fn emit(&mut self, event: Event) -> Result<(), PullerError> {
        self.buffer.push(event);
        if self.buffer.len() >= self.threshold {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered event; on success all of them are in Redis.
    pub fn flush(&mut self) -> Result<(), PullerError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.producer.push(&self.buffer)?;
        self.sent += self.buffer.len() as u64;
        self.bytes += self.buffer.iter().map(|e| e.size() as u64).sum::<u64>();
        self.buffer.clear();
        Ok(())
    }

    /// Events buffered and not yet written.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Drops buffered events that were not written (the source still has them: they were not acknowledged).
    pub fn discard(&mut self) -> usize {
        let n = self.buffer.len();
        self.buffer.clear();
        n
    }

    /// Time spent waiting for room in the queue.
    pub fn waited(&self) -> Duration {
        self.producer.waited
    }
}
