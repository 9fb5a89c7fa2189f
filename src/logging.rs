//! The log line operators know: `YYYY-MM-DDTHH:MM:SS.mmm LEVEL ProcessName::ThreadName -> message`.
//!
//! The process name is set after each fork (`MainProcess`, `InputProcess`, `OutputProcess`); the thread name is
//! the Rust thread's name (`MainThread` for the main thread). Records at INFO and above can also be copied to a
//! channel that a process turns into internal events (tag `devo.collectors.out.local.<level>`). Both pass through
//! [`crate::redact`]: no secret of the configuration leaves in a line or an internal event.

use crate::event::Event;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

static PROCESS_NAME: RwLock<String> = RwLock::new(String::new());
static INTERNAL: Mutex<Option<Sender<Event>>> = Mutex::new(None);
static INTERNAL_DROPPED: AtomicU64 = AtomicU64::new(0);
/// The least severe level copied to internal events (`globals.internal_events_level`), as `log::Level as usize`.
static INTERNAL_LEVEL: AtomicUsize = AtomicUsize::new(log::Level::Info as usize);
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Thread names whose records are never copied to internal events (the thread that forwards them).
pub const INTERNAL_FORWARDER_THREAD: &str = "InternalEventsForwarder";

/// Sets the process name shown in every line (call right after fork).
pub fn set_process_name(name: &str) {
    *PROCESS_NAME.write().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
}

pub fn process_name() -> String {
    PROCESS_NAME
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

struct Logger {
    inner: env_logger::Logger,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !self.inner.matches(record) {
            return;
        }
        self.inner.log(record);
        if record.level() as usize <= INTERNAL_LEVEL.load(Ordering::Relaxed) {
            forward_internal(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

fn forward_internal(record: &log::Record) {
    let guard = INTERNAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tx) = guard.as_ref() else { return };
    if std::thread::current().name() == Some(INTERNAL_FORWARDER_THREAD) {
        return;
    }
    let level = record.level().as_str().to_ascii_lowercase();
    let message = format!("{}::{} -> {}", process_name(), thread_name(), record.args());
    let message = crate::redact::redact(&message).into_owned();
    let event = Event::new(
        format!("devo.collectors.out.local.{level}"),
        crate::time::now_ms(),
        message,
    );
    if let Err(TrySendError::Full(_)) = tx.try_send(event) {
        INTERNAL_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ships records of `level` and more severe as internal events (`globals.internal_events_level`; INFO at most).
pub fn set_internal_events_level(level: log::Level) {
    INTERNAL_LEVEL.store(level.min(log::Level::Info) as usize, Ordering::Relaxed);
}

/// Starts copying records (INFO+, or as `set_internal_events_level` says) to a bounded channel; the receiver
/// turns them into internal events.
pub fn capture_internal_events(capacity: usize) -> Receiver<Event> {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    *INTERNAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    rx
}

/// Stops copying records (before fork, and at stop).
pub fn stop_internal_events() {
    *INTERNAL.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Internal events not recorded because their channel was full (the log file still has them).
pub fn internal_events_dropped() -> u64 {
    INTERNAL_DROPPED.load(Ordering::Relaxed)
}

fn thread_name() -> String {
    match std::thread::current().name() {
        Some("main") | None => "MainThread".to_owned(),
        Some(n) => n.to_owned(),
    }
}

/// Installs the logger once per program (before any fork). `debug` switches DEBUG on; `RUST_LOG` overrides.
pub fn init(debug: bool) {
    let level = if debug { "debug" } else { "info" };
    let mut builder = env_logger::Builder::new();
    builder
        .parse_filters(&format!("warn,logferry={level},logferry_input={level},logferry_output={level},logferry_supervisor={level},logferry_input_aws={level},logferry_input_alibaba={level}"));
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    builder.format(|buf, record| {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f");
        let level = match record.level() {
            log::Level::Warn => "WARNING",
            l => l.as_str(),
        };
        let message = record.args().to_string();
        writeln!(
            buf,
            "{now} {level} {}::{} -> {}",
            process_name(),
            thread_name(),
            crate::redact::redact(&message)
        )
    });
    builder.target(env_logger::Target::Stdout);
    let inner = builder.build();
    let max = inner.filter();
    if LOGGER.set(Logger { inner }).is_ok() {
        let _ = log::set_logger(LOGGER.get().expect("just set"));
        log::set_max_level(max);
    }
}
