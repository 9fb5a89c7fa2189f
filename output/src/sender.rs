//! The contract between the output runtime and a sender.

use logferry::config::Globals;
use logferry::event::{DecodedWrap, Event, EventClass};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Acknowledgement bookkeeping of one stream entry: it is acknowledged in Redis once every output completed it.
pub(crate) struct EntryTicket {
    pub(crate) id: String,
    pub(crate) count: u64,
    pub(crate) bytes: u64,
    remaining: AtomicUsize,
    acks: crossbeam_channel::Sender<(String, u64, u64)>,
}

impl EntryTicket {
    pub(crate) fn new(
        id: String,
        count: u64,
        bytes: u64,
        outputs: usize,
        acks: crossbeam_channel::Sender<(String, u64, u64)>,
    ) -> Arc<Self> {
        Arc::new(EntryTicket {
            id,
            count,
            bytes,
            remaining: AtomicUsize::new(outputs),
            acks,
        })
    }
    fn complete(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.acks.send((self.id.clone(), self.count, self.bytes));
        }
    }
}

/// The events of one stream entry, for one output. Completing it tells the runtime that this output's destination
/// accepted every event; dropping it without completing leaves the entry unacknowledged in Redis (re-sent later).
pub struct Batch {
    pub class: EventClass,
    pub events: Arc<DecodedWrap>,
    ticket: Arc<EntryTicket>,
}

impl Batch {
    pub(crate) fn new(
        class: EventClass,
        events: Arc<DecodedWrap>,
        ticket: Arc<EntryTicket>,
    ) -> Self {
        Batch {
            class,
            events,
            ticket,
        }
    }

    /// A batch whose completion is reported on `acks` as `(id, count, bytes)`; for tests of senders.
    pub fn for_test(
        class: EventClass,
        events: Vec<Event>,
        id: &str,
        acks: crossbeam_channel::Sender<(String, u64, u64)>,
    ) -> Self {
        let n = events.len() as u64;
        Batch::new(
            class,
            Arc::new(DecodedWrap::from_events(&events)),
            EntryTicket::new(id.into(), n, 0, 1, acks),
        )
    }

    pub fn events(&self) -> &DecodedWrap {
        &self.events
    }

    /// The stream entry id, for log lines.
    pub fn entry_id(&self) -> &str {
        &self.ticket.id
    }

    /// The destination accepted every event of this batch.
    pub fn complete(self) {
        self.ticket.complete();
    }
}

/// Why a send failed. The runtime logs it, backs off and retries the same batches.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {destination}: {reason}")]
    Connect { destination: String, reason: String },
    #[error("TLS error with {destination}: {reason}")]
    Tls { destination: String, reason: String },
    #[error("write to {destination} failed: {reason}")]
    Write { destination: String, reason: String },
    #[error("{destination} rejected the data (status {status}): {reason}")]
    Rejected {
        destination: String,
        status: u16,
        reason: String,
    },
    #[error("{destination} is busy (status {status}): {reason}")]
    Busy {
        destination: String,
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl SendError {
    /// The failure's kind for the worker's report (`Busy 503`): a new kind is reported at once.
    pub fn kind(&self) -> String {
        match self {
            SendError::Connect { .. } => "Connect".to_owned(),
            SendError::Tls { .. } => "Tls".to_owned(),
            SendError::Write { .. } => "Write".to_owned(),
            SendError::Rejected { status, .. } => format!("Rejected {status}"),
            SendError::Busy { status, .. } => format!("Busy {status}"),
        }
    }

    /// How long the destination asked to be left alone (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The destination refuses the data as sent (a bad token, a wrong path): retrying cannot fix it, the operator
    /// must change the configuration (reported as an ERROR).
    pub fn needs_operator(&self) -> bool {
        matches!(self, SendError::Rejected { .. })
    }
}

/// A sender: one connection to a destination, driven by one pool thread.
pub trait Sender: Send {
    /// Delivers `batches`. `Ok`: every batch still in the vector was accepted (written and flushed) and the
    /// runtime completes it. A sender that confirms later (Splunk HEC indexer acknowledgement) moves batches out
    /// of the vector and completes them itself from [`Sender::poll`]. `Err`: the runtime backs off and calls
    /// `send` again with the same batches; the sender reconnects as needed (duplicates possible, loss never).
    fn send(&mut self, batches: &mut Vec<Batch>) -> Result<(), SendError>;
    /// Called regularly (about every 200 ms, and after each send): acknowledgement polling, idle-connection hygiene.
    fn poll(&mut self) -> Result<(), SendError> {
        Ok(())
    }
    /// Batches held for a later confirmation (not yet completed).
    fn in_flight(&self) -> usize {
        0
    }
    /// How soon the sender wants its next [`Sender::poll`] (an acknowledgement poll due, a batch to send): the pool
    /// worker then waits no longer than this for new batches. None: the regular pace is enough.
    fn poll_due_in(&self) -> Option<Duration> {
        None
    }
    /// For the statistics line: `"is_connection_open": True`.
    fn is_connection_open(&self) -> bool;
    /// Controlled stop: flush and close. Batches still held are not completed (they stay in Redis).
    fn close(&mut self) {}
}

/// Occupancy of a sender manager's internal queue, for senders that adapt to load (the Devo gzip switch).
#[derive(Clone, Default)]
pub struct QueueUsage {
    pub(crate) len: Arc<AtomicUsize>,
    pub(crate) capacity: usize,
}

impl QueueUsage {
    pub fn new(capacity: usize) -> Self {
        QueueUsage {
            len: Arc::default(),
            capacity,
        }
    }
    /// 0.0 (empty) ..= 1.0 (full).
    pub fn ratio(&self) -> f64 {
        self.len.load(Ordering::Relaxed) as f64 / self.capacity.max(1) as f64
    }
}

/// What a sender knows about where it runs.
#[derive(Clone)]
pub struct SenderInfo {
    pub class: EventClass,
    /// Position in the pool (0-based).
    pub index: usize,
    /// `SyslogSender(standard_senders,syslog_sender_0)`.
    pub name: String,
    pub globals: Globals,
    pub usage: QueueUsage,
    /// Set when the drain deadline of a controlled stop passed: retry waits end and `send` returns an error, so
    /// the batch stays in Redis.
    pub stop: Arc<AtomicBool>,
}
