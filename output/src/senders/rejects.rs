//! Events a destination refused as invalid (Splunk HEC codes 6, 7, 12, 13 after isolation): reported with their
//! origin and set aside, never blocking the others. By default they are logged and counted; the OutputProcess
//! installs [`DeadLetterRejects`] so they are kept in the dead-letter stream of Redis.

use logferry::deadletter::DeadLetters;
use logferry::redis_conn::Keys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// One refused event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// `output splunk (SplunkHecSender(standard_senders,splunk_0)), entry 1-0`.
    pub origin: String,
    /// What the destination said (`status 400, code 6: Invalid data format`).
    pub reason: String,
    /// The event as it was sent (the HEC JSON envelope).
    pub payload: Vec<u8>,
}

/// Where refused events go.
pub trait RejectSink: Send + Sync {
    fn reject(&self, r: &Rejected);
}

/// Logs each refused event (error line with origin and reason) and counts them.
#[derive(Default)]
pub struct LogRejects {
    pub count: AtomicU64,
}

impl RejectSink for LogRejects {
    fn reject(&self, r: &Rejected) {
        self.count.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "Set aside {}: {} ({} bytes)",
            r.origin,
            r.reason,
            r.payload.len()
        );
    }
}

/// Keeps refused events in the dead-letter stream (`logferry:<id>:deadletter`); falls back to the log when Redis
/// cannot be reached.
pub struct DeadLetterRejects {
    url: String,
    keys: Keys,
    conn: Mutex<Option<DeadLetters>>,
    fallback: LogRejects,
}

impl DeadLetterRejects {
    pub fn new(redis_url: &str, keys: &Keys) -> Self {
        DeadLetterRejects {
            url: redis_url.to_owned(),
            keys: keys.clone(),
            conn: Mutex::new(None),
            fallback: LogRejects::default(),
        }
    }
}

impl RejectSink for DeadLetterRejects {
    fn reject(&self, r: &Rejected) {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match logferry::redis_conn::RedisLink::open(&self.url, Duration::from_secs(5)) {
                Ok(c) => *guard = Some(DeadLetters::new(c, &self.keys)),
                Err(e) => log::error!("cannot reach Redis to set aside a refused event: {e}"),
            }
        }
        let stored = guard
            .as_mut()
            .map(|d| d.put(&r.origin, &r.reason, &r.payload));
        match stored {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                log::error!("cannot store a refused event in the dead letters: {e}");
                *guard = None;
                self.fallback.reject(r);
            }
            None => self.fallback.reject(r),
        }
    }
}

fn global() -> &'static RwLock<Arc<dyn RejectSink>> {
    static GLOBAL: OnceLock<RwLock<Arc<dyn RejectSink>>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(LogRejects::default())))
}

/// Installs the sink used by senders built afterwards (the OutputProcess calls it once at start:
/// `install(Arc::new(DeadLetterRejects::new(&redis_url, &keys)))`).
pub fn install(sink: Arc<dyn RejectSink>) {
    *global().write().unwrap_or_else(|p| p.into_inner()) = sink;
}

/// The installed sink.
pub fn current() -> Arc<dyn RejectSink> {
    global().read().unwrap_or_else(|p| p.into_inner()).clone()
}
