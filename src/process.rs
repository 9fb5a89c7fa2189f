//! What the InputProcess and OutputProcess share: signal handling and the stop's drain deadline, the `[GC]`
//! reporter thread, the watchdog, and the thread that turns the process's own log records into internal events.

use crate::config::Globals;
use crate::event::EventClass;
use crate::panic_hook::ForwarderProgress;
use crate::queue::{QueueLimits, QueueProducer};
use crate::redis_conn::Keys;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The deadline of a controlled stop's drain: taken once, when the stop is requested, and shared by every thread
/// that drains (each consumer, each hand-off), so that the whole stop ends on it; a second stop signal moves it
/// to now.
#[derive(Debug, Default)]
pub struct DrainDeadline {
    /// [`crate::time::monotonic_ms`] of the deadline plus one; 0 = no stop requested.
    at_ms_plus_one: AtomicU64,
}

impl DrainDeadline {
    /// Sets the deadline `drain` from now, unless one is already set.
    pub fn start(&self, drain: Duration) {
        let at = crate::time::monotonic_ms() + drain.as_millis() as u64;
        let _ =
            self.at_ms_plus_one
                .compare_exchange(0, at + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Ends the drain now (a second stop signal).
    pub fn end_now(&self) {
        self.at_ms_plus_one
            .store(crate::time::monotonic_ms() + 1, Ordering::Relaxed);
    }

    fn at_ms(&self) -> Option<u64> {
        self.at_ms_plus_one.load(Ordering::Relaxed).checked_sub(1)
    }

    /// True once a stop was requested and its deadline passed.
    pub fn passed(&self) -> bool {
        self.at_ms()
            .is_some_and(|at| crate::time::monotonic_ms() >= at)
    }

    /// The deadline as an `Instant`, once a stop was requested.
    pub fn instant(&self) -> Option<Instant> {
        let now = crate::time::monotonic_ms();
        self.at_ms()
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now)))
    }
}

/// What a child process needs to reach Redis.
#[derive(Clone)]
pub struct ProcessEnv {
    pub globals: Globals,
    pub redis_url: String,
    pub keys: Keys,
    pub stop: Arc<AtomicBool>,
    /// The drain deadline of a controlled stop (set with `stop`).
    pub drain: Arc<DrainDeadline>,
    /// Events waiting in each stream (standard, lookup, internal) when the supervisor started this process:
    /// what a previous run left undelivered (the emergency persistence).
    pub backlog_at_start: [u64; 3],
}

impl ProcessEnv {
    pub fn new(globals: Globals, redis_url: String) -> Self {
        let keys = Keys::new(&globals.id);
        ProcessEnv {
            globals,
            redis_url,
            keys,
            stop: Arc::new(AtomicBool::new(false)),
            drain: Arc::default(),
            backlog_at_start: [0; 3],
        }
    }

    pub fn limits(&self) -> QueueLimits {
        QueueLimits {
            max_events: self.globals.queue_max_size_in_messages,
            max_bytes: self.globals.queue_max_size_in_mb * 1024 * 1024,
            wrap_size: self.globals.queue_wrap_max_size_in_messages,
            lz4: self.globals.queue_compression_lz4,
        }
    }

    /// Reads how many events wait in each stream (called by the supervisor before it starts the output).
    pub fn measure_backlog(&mut self) -> redis::RedisResult<()> {
        let mut conn = crate::redis_conn::connect(&self.redis_url, Duration::from_secs(30))?;
        for (i, class) in EventClass::ALL.iter().enumerate() {
            let n: Option<u64> = redis::cmd("HGET")
                .arg(self.keys.stream_size(*class))
                .arg("n")
                .query(&mut conn)?;
            self.backlog_at_start[i] = n.unwrap_or(0);
        }
        Ok(())
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The signals a process waits for on its main thread (blocked in every thread, taken with sigwait).
fn stop_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set
}

/// Blocks the stop signals; call before starting threads so that they all inherit the mask.
pub fn block_stop_signals() {
    let _ = stop_signals().thread_block();
}

/// Waits on the main thread until SIGTERM/SIGINT/SIGHUP arrives, then takes the drain deadline
/// (`stop_drain_timeout_in_sec` from now) and sets the stop flag.
pub fn wait_for_stop_signal(env: &ProcessEnv) -> i32 {
    let sig = stop_signals()
        .wait()
        .map(|s| s as i32)
        .unwrap_or(libc::SIGTERM);
    env.drain
        .start(Duration::from_secs(env.globals.stop_drain_timeout_in_sec));
    env.stop.store(true, Ordering::Relaxed);
    sig
}

/// A stop signal taken within `timeout` (the main thread, after the first one), or None.
pub fn next_stop_signal(timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the set is a valid sigset_t; info may be null.
    let sig = unsafe { libc::sigtimedwait(stop_signals().as_ref(), std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Starts this process's watchdog with the configured stall threshold (`stall_warning_after_in_sec`).
pub fn spawn_watchdog(env: &ProcessEnv) -> JoinHandle<()> {
    crate::watchdog::spawn_watchdog(
        Duration::from_secs(env.globals.stall_warning_after_in_sec),
        env.stop.clone(),
    )
}

/// Installs what makes a panic in any thread of this process visible and fatal (see [`crate::panic_hook`]).
pub fn watch_panics(env: &ProcessEnv) {
    crate::panic_hook::set_redis_target(env);
}

/// Starts the thread that logs the `[GC]` line every `period`. From then on free heap goes back to the system at
/// each report rather than at every `free` ([`crate::memory::hold_free_heap`]).
pub fn spawn_gc_reporter(period: Duration, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    crate::memory::hold_free_heap();
    std::thread::Builder::new()
        .name("MemoryReporter".into())
        .spawn(move || {
            let Ok(mut system) = sysinfo::System::new() else {
                log::warn!("Memory figures are not available on this system: no [GC] report");
                return;
            };
            while sleep_unless(&stop, period) {
                let (line, _) = crate::memory::gc_report(&mut system);
                log::info!("{line}");
            }
        })
        .expect("spawn memory reporter")
}

/// Starts the thread that writes this process's log records (`globals.internal_events_level` and above) to the
/// internal stream.
pub fn spawn_internal_forwarder(env: &ProcessEnv) -> JoinHandle<()> {
    crate::logging::set_internal_events_level(env.globals.internal_events_level);
    let rx = crate::logging::capture_internal_events(10_000);
    let env = env.clone();
    let progress = Arc::new(ForwarderProgress::default());
    progress.running.store(true, Ordering::Relaxed);
    crate::panic_hook::watch_forwarder(rx.clone(), progress.clone());
    std::thread::Builder::new()
        .name(crate::logging::INTERNAL_FORWARDER_THREAD.into())
        .spawn(move || {
            forward_internal_events(&env, &rx, &progress);
            progress.running.store(false, Ordering::Relaxed);
        })
        .expect("spawn internal forwarder")
}

/// The forwarder's loop: batches of records written to the internal stream until the channel closes. After each
/// turn it publishes its progress (for the panic hook, which waits until its record is written).
fn forward_internal_events(
    env: &ProcessEnv,
    rx: &crossbeam_channel::Receiver<crate::event::Event>,
    progress: &ForwarderProgress,
) {
    // A dedicated stop flag: internal events are written until the channel closes, never blocking a stop.
    let never = Arc::new(AtomicBool::new(false));
    let mut producer = None;
    let mut batch = Vec::new();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => Some(e),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        batch.extend(first);
        batch.extend(rx.try_iter().take(1000));
        if !batch.is_empty() {
            if producer.is_none() {
                producer = QueueProducer::connect(
                    &env.redis_url,
                    Duration::from_secs(5),
                    &env.keys,
                    EventClass::Internal,
                    env.limits(),
                    never.clone(),
                )
                .map(|p| p.give_way_to(env.stop.clone()))
                .ok();
            }
            let written = producer
                .as_mut()
                .map(|p| p.push(&batch).is_ok())
                .unwrap_or(false);
            if written || batch.len() > 10_000 {
                batch.clear();
            } else {
                producer = None;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        progress.unwritten.store(batch.len(), Ordering::Relaxed);
        progress.turns.fetch_add(1, Ordering::Relaxed);
        if env.stopping() && rx.is_empty() && batch.is_empty() {
            break;
        }
    }
}

/// Sleeps up to `d` in small steps; false as soon as `stop` is set.
pub fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let until = std::time::Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::DrainDeadline;
    use std::time::Duration;

    #[test]
    fn the_drain_deadline_is_taken_once_and_a_second_signal_moves_it_to_now() {
        let drain = DrainDeadline::default();
        assert!(!drain.passed() && drain.instant().is_none(), "no stop yet");
        drain.start(Duration::from_secs(30));
        let first = drain.instant().expect("set");
        drain.start(Duration::from_secs(3000));
        let again = drain.instant().expect("set");
        assert!(
            again <= first + Duration::from_millis(5),
            "a later start keeps the first deadline"
        );
        assert!(!drain.passed());
        drain.end_now();
        assert!(drain.passed());
    }
}
