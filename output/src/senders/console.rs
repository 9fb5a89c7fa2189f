//! `console` / `stdout`: writes each event as one line on standard output (a debugging aid, every event class).
//! Line format: `<14>YYYY-MM-DD HH:MM:SS.mmm HOST TAG: MESSAGE` (what Devo would receive).

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Batch, SendError, Sender, SenderInfo};
use crate::senders::format::{short_host_name, Framing, HeaderFormat, HeaderWriter};
use logferry::config::{Globals, Key, KeySet, Section};
use std::io::Write;

const HOSTNAME: Key =
    Key::text("hostname", "host name written in each line").computed_default("short host name");

/// The keys of `outputs.<name>.config` for the console kinds.
pub static CONSOLE_KEYS: KeySet = KeySet {
    id: "outputs.console",
    place: "`outputs.<name>.config` with `type: console` or `stdout`",
    groups: &[&crate::config::RUNTIME_KEYS, &[HOSTNAME]],
};

/// Configuration of a console output (under `outputs.<name>.config`).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Key `hostname` ([`CONSOLE_KEYS`]).
    pub hostname: String,
}

impl ConsoleConfig {
    pub fn read(s: &Section<'_>) -> ConsoleConfig {
        ConsoleConfig {
            hostname: s.get_text(&HOSTNAME).unwrap_or_else(short_host_name),
        }
    }
}

pub struct ConsoleKind;

impl OutputKind for ConsoleKind {
    fn types(&self) -> &'static [&'static str] {
        &["console", "stdout"]
    }
    fn keys(&self) -> &'static KeySet {
        &CONSOLE_KEYS
    }
    fn configure(
        &self,
        name: &str,
        kind: &str,
        config: &Section<'_>,
        _globals: &Globals,
    ) -> Option<OutputSpec> {
        let cfg = ConsoleConfig::read(config);
        Some(super::spec(name, kind, "ConsoleSender", move |info| {
            ConsoleSender::new(&cfg, info)
        }))
    }
}

/// Writes to stdout (or another writer, for tests) through a reused buffer, one write per `send`.
pub struct ConsoleSender {
    writer: HeaderWriter,
    buf: Vec<u8>,
    name: String,
    out: Option<Box<dyn Write + Send>>,
}

impl ConsoleSender {
    pub fn new(cfg: &ConsoleConfig, info: &SenderInfo) -> Self {
        ConsoleSender {
            writer: HeaderWriter::new(HeaderFormat::Devo, Framing::Newline, 14, &cfg.hostname),
            buf: Vec::with_capacity(64 * 1024),
            name: info.name.clone(),
            out: None,
        }
    }

    /// Writes to `out` instead of stdout.
    pub fn with_writer(cfg: &ConsoleConfig, info: &SenderInfo, out: Box<dyn Write + Send>) -> Self {
        ConsoleSender {
            out: Some(out),
            ..Self::new(cfg, info)
        }
    }
}

impl Sender for ConsoleSender {
    fn send(&mut self, batches: &mut Vec<Batch>) -> Result<(), SendError> {
        self.buf.clear();
        for b in batches.iter() {
            for e in b.events() {
                self.writer
                    .record(&mut self.buf, e.time_ms, e.tag, e.message);
            }
        }
        let destination = || format!("stdout ({})", self.name);
        let result = match self.out.as_mut() {
            Some(w) => w.write_all(&self.buf).and_then(|_| w.flush()),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.buf).and_then(|_| out.flush())
            }
        };
        result.map_err(|e| SendError::Write {
            destination: destination(),
            reason: e.to_string(),
        })
    }

    fn is_connection_open(&self) -> bool {
        true
    }
}
