//! What the InputProcess and OutputProcess share: signal handling, the `[GC]` reporter thread and the thread that
//! turns the process's own log records into internal events.

use crate::config::Globals;
use crate::event::EventClass;
use crate::queue::{QueueLimits, QueueProducer};
use crate::redis_conn::Keys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a child process needs to reach Redis.
#[derive(Clone)]
pub struct ProcessEnv {
    pub globals: Globals,
    pub redis_url: String,
    pub keys: Keys,
    pub stop: Arc<AtomicBool>,
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
            backlog_at_start: [0; 3],
        }
    }

    pub fn limits(&self) -> QueueLimits {
        QueueLimits {
            max_events: self.globals.queue_max_size_in_messages,
            max_bytes: self.globals.queue_max_size_in_mb * 1024 * 1024,
            wrap_size: self.globals.queue_wrap_max_size_in_messages,
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

/// Waits on the main thread until SIGTERM/SIGINT/SIGHUP arrives, then sets the stop flag.
pub fn wait_for_stop_signal(stop: &AtomicBool) -> i32 {
    let sig = stop_signals()
        .wait()
        .map(|s| s as i32)
        .unwrap_or(libc::SIGTERM);
    stop.store(true, Ordering::Relaxed);
    sig
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
    std::thread::Builder::new()
        .name(crate::logging::INTERNAL_FORWARDER_THREAD.into())
        .spawn(move || {
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
                if batch.is_empty() {
                    if env.stopping() {
                        break;
                    }
                    continue;
                }
                if producer.is_none() {
                    producer = QueueProducer::connect(
                        &env.redis_url,
                        Duration::from_secs(5),
                        &env.keys,
                        EventClass::Internal,
                        env.limits(),
                        never.clone(),
                    )
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
                if env.stopping() && rx.is_empty() {
                    break;
                }
            }
        })
        .expect("spawn internal forwarder")
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
