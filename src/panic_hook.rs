//! No thread dies in silence: a panic in any thread is logged as an ERROR line (with the thread's name, the panic
//! message and its location), written to the internal stream in Redis, and then the whole process exits with
//! [`PANIC_EXIT_CODE`], so that the supervisor restarts it instead of letting it live on without the thread.
//!
//! The internal event goes the usual way (the log record is copied to the internal events channel and the
//! forwarder thread writes it); the hook waits until the forwarder wrote it. When there is no forwarder (the
//! supervisor) or the forwarder itself panicked, the hook writes the event to Redis itself.

use crate::event::{Event, EventClass};
use crate::process::ProcessEnv;
use crate::queue::QueueProducer;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit code of a process ended by a panic (`EX_SOFTWARE`).
pub const PANIC_EXIT_CODE: i32 = 70;

/// How long the hook waits for the internal event to reach Redis before the process exits anyway.
const INTERNAL_EVENT_DEADLINE: Duration = Duration::from_secs(5);

/// Where this process writes internal events when the hook must write them itself.
static REDIS_TARGET: Mutex<Option<ProcessEnv>> = Mutex::new(None);

/// The running internal-events forwarder, watched by the hook.
static FORWARDER: Mutex<Option<ForwarderWatch>> = Mutex::new(None);

/// What the forwarder publishes after each turn of its loop, so that the hook knows when a record is written.
#[derive(Default)]
pub struct ForwarderProgress {
    /// Turns of the loop completed.
    pub turns: AtomicU64,
    /// Events taken from the channel and not yet written at the end of the last turn.
    pub unwritten: AtomicUsize,
    /// False once the forwarder left its loop.
    pub running: AtomicBool,
}

struct ForwarderWatch {
    channel: crossbeam_channel::Receiver<Event>,
    progress: Arc<ForwarderProgress>,
}

/// Installs the hook for the whole program (the forked children inherit it); call once, before any fork.
pub fn install() {
    std::panic::set_hook(Box::new(on_panic));
}

/// Lets the hook write internal events of this process to Redis itself (call after fork, in each process).
pub fn set_redis_target(env: &ProcessEnv) {
    *REDIS_TARGET.lock().unwrap_or_else(|e| e.into_inner()) = Some(env.clone());
}

/// Registers the forwarder of this process (its channel and its progress).
pub fn watch_forwarder(
    channel: crossbeam_channel::Receiver<Event>,
    progress: Arc<ForwarderProgress>,
) {
    *FORWARDER.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(ForwarderWatch { channel, progress });
}

fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "unknown location".to_owned());
    let text = format!(
        "Thread panicked at {location}: {message}. The process exits with code {PANIC_EXIT_CODE} so that it is restarted"
    );
    // Whatever blocks below (a full internal stream, a lock held by the panicking code), the process ends.
    let _ = std::thread::Builder::new().spawn(|| {
        std::thread::sleep(INTERNAL_EVENT_DEADLINE + Duration::from_secs(1));
        std::process::exit(PANIC_EXIT_CODE);
    });
    log::error!("{text}");
    let until = Instant::now() + INTERNAL_EVENT_DEADLINE;
    if !forwarder_wrote_everything(until) {
        write_internal_event(&text, until);
    }
    log::logger().flush();
    std::process::exit(PANIC_EXIT_CODE);
}

/// Waits until the forwarder wrote what the channel held at the panic; false when it cannot (none running, it is
/// the panicking thread, or the deadline passed).
fn forwarder_wrote_everything(until: Instant) -> bool {
    if std::thread::current().name() == Some(crate::logging::INTERNAL_FORWARDER_THREAD) {
        return false;
    }
    let guard = FORWARDER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(watch) = guard.as_ref() else {
        return false;
    };
    let running = || watch.progress.running.load(Ordering::Relaxed);
    while !watch.channel.is_empty() {
        if !running() || Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The turn under way may hold the record; the one after it started with the channel empty, so when it ends
    // with nothing unwritten, the record is in Redis.
    let turn = watch.progress.turns.load(Ordering::Relaxed);
    loop {
        let done = watch.progress.turns.load(Ordering::Relaxed) >= turn + 2;
        if done && watch.progress.unwritten.load(Ordering::Relaxed) == 0 {
            return true;
        }
        if !running() || Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes the panic as an internal event on a connection of its own.
fn write_internal_event(text: &str, until: Instant) {
    let Some(env) = REDIS_TARGET
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    else {
        return;
    };
    let thread = std::thread::current();
    let event = Event::new(
        "devo.collectors.out.local.error".to_owned(),
        crate::time::now_ms(),
        format!(
            "{}::{} -> {text}",
            crate::logging::process_name(),
            thread.name().unwrap_or("MainThread")
        ),
    );
    let timeout = until
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    let written = QueueProducer::connect(
        &env.redis_url,
        timeout,
        &env.keys,
        EventClass::Internal,
        env.limits(),
        Arc::new(AtomicBool::new(false)),
    )
    .and_then(|mut producer| producer.push(std::slice::from_ref(&event)));
    if let Err(e) = written {
        log::error!("The panic could not be written as an internal event: {e}");
    }
}
