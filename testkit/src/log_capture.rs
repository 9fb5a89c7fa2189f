//! The log records of a test process, kept for assertions (and echoed to stderr).

use std::sync::{Arc, Mutex};

/// Every record logged since [`LogCapture::install`], as `LEVEL thread: message`.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<String>>>);

impl LogCapture {
    /// Installs the capture as the process's logger (once per test process; nextest runs each test in its own).
    pub fn install() -> LogCapture {
        let capture = LogCapture::default();
        log::set_boxed_logger(Box::new(capture.clone())).expect("the only logger");
        log::set_max_level(log::LevelFilter::Info);
        capture
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records that contain `what`.
    pub fn count(&self, what: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(what)).count()
    }
}

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        let line = format!("{} {thread}: {}", record.level(), record.args());
        eprintln!("{line}");
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    fn flush(&self) {}
}
