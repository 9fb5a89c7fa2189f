//! A sender manager: for one output and one event class, a pool of senders sharing an internal queue of batches,
//! and a monitor that logs the seeds' statistics lines every `sender_stats_period_in_sec`.

use crate::config::OutputSpec;
use crate::failures::{FailureReport, Stage};
use crate::sender::{Batch, QueueUsage, Sender, SenderInfo};
use logferry::config::Globals;
use logferry::event::EventClass;
use logferry::figures::OutputFigures;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much the output holds in memory, in batches (stream entries) sized from the wrap size so that the bound is
/// in events: a wrap of 500 events takes five times the room of a wrap of 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Entries read per XREADGROUP (about 8192 events).
    pub read_entries: usize,
    /// Batches a manager's internal queue holds before the consumer waits; Redis keeps the rest (about 16384
    /// events).
    pub queued_batches: usize,
    /// Batches a sender takes from the internal queue for one `send` call (about 8192 events).
    pub batches_per_send: usize,
}

impl InFlight {
    pub fn for_wrap_size(wrap_size: usize) -> InFlight {
        let batches = |events: usize, max: usize| (events / wrap_size.max(1)).clamp(1, max);
        InFlight {
            read_entries: batches(8192, 64),
            queued_batches: batches(16384, 256).max(4),
            batches_per_send: batches(8192, 32),
        }
    }
}

/// Live figures of one sender.
#[derive(Default)]
pub struct SenderStatus {
    pub name: String,
    pub connection_open: AtomicBool,
    pub in_flight: AtomicU64,
}

/// Live figures of a manager, read by its monitor and published for `logferry status` and `/metrics`.
pub struct ManagerStats {
    /// Events and bytes accepted by the destination since start, retries, connections, the last error.
    pub figures: Arc<OutputFigures>,
    pub senders: Mutex<Vec<Arc<SenderStatus>>>,
}

/// The consumer's handle on a manager.
pub struct SenderManager {
    pub name: String,
    tx: Option<crossbeam_channel::Sender<Batch>>,
    /// Dropped at shutdown: ends the monitor.
    monitor_done: Option<crossbeam_channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    pub stats: Arc<ManagerStats>,
    usage: QueueUsage,
}

/// How often a hand-off waiting for room checks whether it must give way.
const HAND_OFF_CHECK: Duration = Duration::from_millis(50);

/// How often an idle pool worker lets its sender poll, unless the sender asks for sooner
/// ([`Sender::poll_due_in`]).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Set when the drain deadline passed: senders stop retrying and close.
pub type HardStop = Arc<AtomicBool>;

impl SenderManager {
    /// Starts the pool and its monitor.
    pub fn start(
        spec: &OutputSpec,
        class: EventClass,
        globals: &Globals,
        hard_stop: HardStop,
    ) -> SenderManager {
        let group = format!("{}_senders", class.as_str());
        let manager_name = format!(
            "{}Manager({group},manager,{})",
            spec.sender_label, spec.name
        );
        let in_flight = InFlight::for_wrap_size(globals.queue_wrap_max_size_in_messages);
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(in_flight.queued_batches);
        let usage = QueueUsage::new(in_flight.queued_batches);
        let pool_size = if class == EventClass::Standard {
            spec.concurrent_connections
        } else {
            1
        };
        let stats = Arc::new(ManagerStats {
            figures: OutputFigures::register(
                &spec.name,
                class.as_str(),
                &spec.kind,
                pool_size as u64,
            ),
            senders: Mutex::default(),
        });
        let mut threads = Vec::new();
        log::info!("{manager_name} -> Starting thread");
        for index in 0..pool_size {
            let name = format!(
                "{}({group},{}_sender_{index})",
                spec.sender_label, spec.kind
            );
            let info = SenderInfo {
                class,
                index,
                name: name.clone(),
                globals: globals.clone(),
                usage: usage.clone(),
                stop: hard_stop.clone(),
            };
            let sender = crate::watched::WatchedSender::wrap((spec.build)(&info), &name);
            let status = Arc::new(SenderStatus {
                name: name.clone(),
                ..Default::default()
            });
            stats
                .senders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(status.clone());
            let worker = PoolWorker {
                sender,
                rx: rx.clone(),
                stats: stats.clone(),
                status,
                hard_stop: hard_stop.clone(),
                usage: usage.clone(),
                batches_per_send: in_flight.batches_per_send,
            };
            log::info!("{name} -> Starting thread");
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || worker.run())
                    .expect("spawn sender"),
            );
        }
        let monitor_name = format!("{}ManagerMonitor({group},{})", spec.sender_label, spec.name);
        log::info!(
            "{monitor_name} -> Starting thread (every {} seconds)",
            globals.sender_stats_period_in_sec
        );
        let monitor = Monitor {
            class,
            stats: stats.clone(),
            usage: usage.clone(),
            pool_size,
            period: Duration::from_secs(globals.sender_stats_period_in_sec),
        };
        let stop = hard_stop.clone();
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        threads.push(
            std::thread::Builder::new()
                .name(monitor_name)
                .spawn(move || monitor.run(done_rx, stop))
                .expect("spawn monitor"),
        );
        SenderManager {
            name: manager_name,
            tx: Some(tx),
            monitor_done: Some(done_tx),
            threads,
            stats,
            usage,
        }
    }

    /// Hands a batch to the pool; waits while the internal queue is full, unless `give_way()` turns true (the
    /// stop's drain deadline passed): then the batch is dropped uncompleted and false returned, so that the entry
    /// stays in Redis and a blocked hand-off never holds a stop.
    pub fn submit(&self, batch: Batch, give_way: impl Fn() -> bool) -> bool {
        let Some(tx) = &self.tx else { return false };
        let mut batch = batch;
        let handed = loop {
            match tx.send_timeout(batch, HAND_OFF_CHECK) {
                Ok(()) => break true,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) if !give_way() => {
                    batch = back
                }
                Err(_) => break false,
            }
        };
        self.usage.len.store(tx.len(), Ordering::Relaxed);
        handed
    }

    /// Batches the internal queue holds when full.
    pub fn capacity(&self) -> usize {
        self.usage.capacity
    }

    /// Batches waiting in the internal queue.
    pub fn queued(&self) -> usize {
        self.tx.as_ref().map(|t| t.len()).unwrap_or(0)
    }

    /// Closes the internal queue and waits for the pool: senders finish what they hold, unless `hard_stop` is set.
    pub fn shutdown(mut self) {
        self.tx = None;
        self.monitor_done = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct PoolWorker {
    sender: Box<dyn Sender>,
    rx: crossbeam_channel::Receiver<Batch>,
    stats: Arc<ManagerStats>,
    status: Arc<SenderStatus>,
    hard_stop: HardStop,
    usage: QueueUsage,
    batches_per_send: usize,
}

impl PoolWorker {
    fn run(mut self) {
        let mut pending: Vec<Batch> = Vec::with_capacity(self.batches_per_send);
        let mut failures = FailureReport::default();
        loop {
            if pending.is_empty() {
                let wait = self
                    .sender
                    .poll_due_in()
                    .map_or(IDLE_POLL, |due| due.min(IDLE_POLL));
                match self.rx.recv_timeout(wait) {
                    Ok(b) => pending.push(b),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        if !self.poll(&mut failures) || self.hard_stop.load(Ordering::Relaxed) {
                            break;
                        }
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
                pending.extend(self.rx.try_iter().take(self.batches_per_send - 1));
                self.usage.len.store(self.rx.len(), Ordering::Relaxed);
            }
            if self.hard_stop.load(Ordering::Relaxed) {
                break;
            }
            let events: u64 = pending.iter().map(|b| b.events.len() as u64).sum();
            let bytes: u64 = pending
                .iter()
                .flat_map(|b| b.events.iter())
                .map(|e| e.size() as u64)
                .sum();
            match self.sender.send(&mut pending) {
                Ok(()) => {
                    let _ = failures.succeeded(Stage::Send);
                    // Batches the sender kept (deferred acknowledgement) are counted when it completes them.
                    let kept: u64 =
                        events - pending.iter().map(|b| b.events.len() as u64).sum::<u64>();
                    let delivered = events - kept;
                    for b in pending.drain(..) {
                        b.complete();
                    }
                    self.stats.figures.delivered(delivered, bytes);
                }
                Err(e) => {
                    // The next attempt comes after the wait, whoever holds the batches now (a sender that staged
                    // them retries from its poll): no poll right after a failed send.
                    let held = self.held(pending.len());
                    self.stats.figures.failed(&e.to_string());
                    let wait = failures.failed(&e, Stage::Send, &held);
                    if !logferry::process::sleep_unless(&self.hard_stop, wait) {
                        break;
                    }
                    continue;
                }
            }
            if !self.poll(&mut failures) {
                break;
            }
        }
        self.sender.close();
        self.set_connection_open(false);
        if !pending.is_empty() {
            log::info!("{} batches not delivered at stop: they stay in Redis and are sent first at the next start", pending.len());
        }
    }

    /// Records whether the sender's connection is open (and counts a change in the output's figures).
    fn set_connection_open(&self, open: bool) {
        if self.status.connection_open.swap(open, Ordering::Relaxed) != open {
            self.stats.figures.connection_changed(open);
        }
    }

    /// What waits for the destination, for the failure lines.
    fn held(&self, pending: usize) -> String {
        format!("{} batches", pending + self.sender.in_flight())
    }

    /// Lets the sender poll; a failure is reported and waited on like a failed send. False: stop requested.
    fn poll(&mut self, failures: &mut FailureReport) -> bool {
        let result = self.sender.poll();
        self.update_status();
        match result {
            Ok(()) => {
                if failures.succeeded(Stage::Poll) {
                    self.stats.figures.recovered();
                }
                true
            }
            Err(e) => {
                self.stats.figures.failed(&e.to_string());
                let wait = failures.failed(&e, Stage::Poll, &self.held(0));
                logferry::process::sleep_unless(&self.hard_stop, wait)
            }
        }
    }

    fn update_status(&self) {
        self.set_connection_open(self.sender.is_connection_open());
        self.status
            .in_flight
            .store(self.sender.in_flight() as u64, Ordering::Relaxed);
    }
}

struct Monitor {
    class: EventClass,
    stats: Arc<ManagerStats>,
    usage: QueueUsage,
    pool_size: usize,
    period: Duration,
}

impl Monitor {
    fn run(self, done: crossbeam_channel::Receiver<()>, hard_stop: HardStop) {
        let mut last_total = 0u64;
        let mut last_time = chrono::Utc::now();
        let mut last_instant = Instant::now();
        loop {
            match done.recv_timeout(self.period) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if hard_stop.load(Ordering::Relaxed) {
                return;
            }
            let queued = self.usage.len.load(Ordering::Relaxed);
            log::info!(
                "Number of available senders: {}, sender manager internal queue size: {queued}",
                self.pool_size
            );
            log::info!("enqueued_elapsed_times_in_seconds_stats: {{}}");
            for s in self
                .stats
                .senders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                log::info!(
                    "Sender: {}, status: {{\"internal_queue_size\": {}, \"is_connection_open\": {}}}",
                    s.name,
                    s.in_flight.load(Ordering::Relaxed),
                    if s.connection_open.load(Ordering::Relaxed) { "True" } else { "False" }
                );
            }
            let total = self.stats.figures.sent.load(Ordering::Relaxed);
            log::info!(
                "{} - Total number of messages sent: {total}, messages sent since \"{}\": {} (elapsed {:.3} seconds)",
                self.class.title(),
                last_time.format("%Y-%m-%d %H:%M:%S%.6f+00:00"),
                total - last_total,
                last_instant.elapsed().as_secs_f64()
            );
            last_total = total;
            last_time = chrono::Utc::now();
            last_instant = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[test]
    fn in_flight_work_is_bounded_in_events_whatever_the_wrap_size() {
        for wrap in [1, 10, 100, 500] {
            let f = InFlight::for_wrap_size(wrap);
            assert!(f.read_entries * wrap <= 8192, "{wrap}: {f:?}");
            assert!(
                f.queued_batches * wrap <= 16384 || f.queued_batches == 4,
                "{wrap}: {f:?}"
            );
            assert!(f.batches_per_send >= 1 && f.batches_per_send * wrap <= 8192);
        }
        assert_eq!(
            InFlight::for_wrap_size(500),
            InFlight {
                read_entries: 16,
                queued_batches: 32,
                batches_per_send: 16
            }
        );
        assert_eq!(InFlight::for_wrap_size(1).queued_batches, 256);
    }
}
