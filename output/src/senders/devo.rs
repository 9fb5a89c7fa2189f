//! `devo_platform` / `relay`: the Devo sender. TCP + TLS 1.2+ with mutual authentication (client `cert` + `key`,
//! server verified against `chain`); framing as Devo's own sender (`<14>YYYY-MM-DD HH:MM:SS.mmm HOST TAG: MSG\n`,
//! multiline events octet-counted); optional gzip transport switched on by the DCSDK queue-usage rule; connection
//! hygiene (age, idle, closed by the server) and connect/send retries with backoff.

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Batch, QueueUsage, SendError, Sender, SenderInfo};
use crate::senders::conn::{Connection, Endpoint};
use crate::senders::format::{short_host_name, Framing, HeaderFormat, HeaderWriter};
use crate::senders::gzip::GzipMembers;
use crate::senders::syslog::WRITE_CHUNK;
use logferry::config::{ConfigErrorKind, Globals, Section};
use std::sync::Arc;
use std::time::Duration;

/// Retry policy: `attempts` tries, waiting `initial` then growing (doubling) up to `max` between tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Retry {
    /// The wait after failed attempt number `n` (1-based).
    pub fn wait(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Configuration of a Devo output (under `outputs.<name>.config`).
#[derive(Clone)]
pub struct DevoConfig {
    /// `address`: collector host (`collector-eu.devo.io`) or relay address. Mandatory.
    pub address: String,
    /// `port`: default 443; 1..=65535.
    pub port: u16,
    /// TLS client configuration from `chain` (CA file), `cert` and `key` (client certificate and key), all three
    /// mandatory. Only for `type: relay`, `tls: false` explicitly selects plain TCP (never a silent fallback).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `hostname`: HOST field of each line. Default: the machine's short host name.
    pub hostname: String,
    /// `connect_retries` (default 5, 1..=100), `connect_retry_initial_wait_in_seconds` (default 2, 0..=60),
    /// `connect_retry_max_wait_in_seconds` (default 60, 0..=600).
    pub connect_retry: Retry,
    /// `send_retries` (default 5, 1..=100), `send_retry_initial_wait_in_seconds` (default 2, 0..=60),
    /// `send_retry_max_wait_in_seconds` (default 60, 0..=600).
    pub send_retry: Retry,
    /// `connect_timeout_in_seconds`: default 5, 1..=300.
    pub connect_timeout: Duration,
    /// `send_timeout_in_seconds`: a write blocked this long fails. Default 5, 1..=300.
    pub send_timeout: Duration,
    /// `connection_max_age_in_seconds`: reconnect before a send when the connection is older. Default 3600, 1..=86400.
    pub max_age: Duration,
    /// `connection_max_idle_in_seconds`: reconnect when idle for longer. Default 30, 1..=3600.
    pub max_idle: Duration,
    /// From globals: `threshold_for_using_gzip_in_transport_layer` (negative = always, above 1 = never).
    pub gzip_threshold: f64,
    /// From globals: `compression_level` 0..=9.
    pub compression_level: u32,
    /// From globals: `compression_buffer_in_bytes` (size of one gzip member's input).
    pub compression_buffer: usize,
}

fn seconds(s: &Section<'_>, key: &str, default: f64, max: f64) -> Duration {
    Duration::from_secs_f64(s.in_range(key, default, 0.0..=max))
}

impl DevoConfig {
    pub fn read(kind: &str, s: &Section<'_>, globals: &Globals) -> Option<DevoConfig> {
        let address: Option<String> = s.required("address");
        let port = s.in_range("port", 443u16, 1..=65535);
        let use_tls = if kind == "relay" {
            s.or("tls", true)
        } else {
            if s.contains("tls") {
                s.raw("tls");
                s.error(
                    "tls",
                    ConfigErrorKind::InvalidValue,
                    "type devo_platform always uses mutual TLS; \"tls\" is only for type relay",
                );
            }
            true
        };
        let tls = if use_tls {
            Some(crate::senders::tls::from_section(s, true))
        } else {
            for k in ["chain", "cert", "key"] {
                if s.contains(k) {
                    s.raw(k);
                    s.error(
                        k,
                        ConfigErrorKind::Conflict,
                        "certificate files are set but \"tls: false\"",
                    );
                }
            }
            None
        };
        let retry = |prefix: &str| Retry {
            attempts: s.in_range(&format!("{prefix}_retries"), 5u32, 1..=100),
            initial: seconds(
                s,
                &format!("{prefix}_retry_initial_wait_in_seconds"),
                2.0,
                60.0,
            ),
            max: seconds(
                s,
                &format!("{prefix}_retry_max_wait_in_seconds"),
                60.0,
                600.0,
            ),
        };
        let connect_retry = retry("connect");
        let send_retry = retry("send");
        let cfg = DevoConfig {
            address: address.unwrap_or_default(),
            port,
            tls: None,
            hostname: s.optional("hostname").unwrap_or_else(short_host_name),
            connect_retry,
            send_retry,
            connect_timeout: Duration::from_secs(s.in_range(
                "connect_timeout_in_seconds",
                5u64,
                1..=300,
            )),
            send_timeout: Duration::from_secs(s.in_range("send_timeout_in_seconds", 5u64, 1..=300)),
            max_age: Duration::from_secs(s.in_range(
                "connection_max_age_in_seconds",
                3600u64,
                1..=86_400,
            )),
            max_idle: Duration::from_secs(s.in_range(
                "connection_max_idle_in_seconds",
                30u64,
                1..=3600,
            )),
            gzip_threshold: globals.threshold_for_using_gzip_in_transport_layer,
            compression_level: globals.compression_level,
            compression_buffer: globals.compression_buffer_in_bytes,
        };
        if cfg.address.is_empty() {
            return None;
        }
        let tls = match tls {
            Some(None) => return None,
            Some(Some(c)) => Some(c),
            None => None,
        };
        Some(DevoConfig { tls, ..cfg })
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: self.address.clone(),
            port: self.port,
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            write_timeout: self.send_timeout,
            max_age: Some(self.max_age),
            max_idle: Some(self.max_idle),
        }
    }
}

pub struct DevoKind;

impl OutputKind for DevoKind {
    fn types(&self) -> &'static [&'static str] {
        &["devo_platform", "relay"]
    }
    fn configure(
        &self,
        name: &str,
        kind: &str,
        config: &Section<'_>,
        globals: &Globals,
    ) -> Option<OutputSpec> {
        let cfg = DevoConfig::read(kind, config, globals)?;
        Some(OutputSpec {
            name: name.to_owned(),
            kind: kind.to_owned(),
            sender_label: "DevoSender",
            concurrent_connections: 1,
            build: Box::new(move |info: &SenderInfo| {
                Box::new(DevoSender::new(&cfg, info)) as Box<dyn Sender>
            }),
        })
    }
}

/// The DCSDK gzip rule: on when the mean of the recent internal queue usage samples reaches the threshold;
/// a negative threshold means always, above 1 never.
pub struct GzipSwitch {
    threshold: f64,
    samples: [f64; 16],
    next: usize,
    filled: usize,
}

impl GzipSwitch {
    pub fn new(threshold: f64) -> Self {
        GzipSwitch {
            threshold,
            samples: [0.0; 16],
            next: 0,
            filled: 0,
        }
    }

    /// Records a usage sample (0..=1) and tells whether compression is on.
    pub fn sample(&mut self, usage: f64) -> bool {
        if self.threshold < 0.0 {
            return true;
        }
        if self.threshold > 1.0 {
            return false;
        }
        self.samples[self.next] = usage;
        self.next = (self.next + 1) % self.samples.len();
        self.filled = (self.filled + 1).min(self.samples.len());
        let mean = self.samples[..self.filled].iter().sum::<f64>() / self.filled as f64;
        mean >= self.threshold
    }
}

/// One connection to Devo.
pub struct DevoSender {
    conn: Connection,
    writer: HeaderWriter,
    /// Wire bytes waiting to be written.
    out: Vec<u8>,
    /// Plain records waiting to be compressed into one gzip member.
    text: Vec<u8>,
    gzip: GzipMembers,
    switch: GzipSwitch,
    compressing: bool,
    usage: QueueUsage,
    cfg: DevoConfig,
    name: String,
}

impl DevoSender {
    /// Compression settings come from `info.globals` (the globals the OutputProcess runs with).
    pub fn new(cfg: &DevoConfig, info: &SenderInfo) -> Self {
        let g = &info.globals;
        let cfg = DevoConfig {
            gzip_threshold: g.threshold_for_using_gzip_in_transport_layer,
            compression_level: g.compression_level,
            compression_buffer: g.compression_buffer_in_bytes,
            ..cfg.clone()
        };
        DevoSender {
            conn: Connection::new(cfg.endpoint(), &info.name),
            writer: HeaderWriter::new(
                HeaderFormat::Devo,
                Framing::DevoMultiline,
                14,
                &cfg.hostname,
            ),
            out: Vec::with_capacity(WRITE_CHUNK + 64 * 1024),
            text: Vec::with_capacity(cfg.compression_buffer + 64 * 1024),
            gzip: GzipMembers::new(cfg.compression_level),
            switch: GzipSwitch::new(cfg.gzip_threshold),
            compressing: false,
            usage: info.usage.clone(),
            name: info.name.clone(),
            cfg,
        }
    }

    /// Whether the last `send` used gzip transport.
    pub fn compressing(&self) -> bool {
        self.compressing
    }

    /// Connects, retrying with backoff (`connect_retries`).
    fn connect(&mut self) -> Result<(), SendError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.conn.ensure_open() {
                Ok(()) => return Ok(()),
                // A refused certificate or a failed verification does not heal by retrying quickly, but the
                // server may be reconfigured: retried like any other failure, with the error logged.
                Err(e) if attempt < self.cfg.connect_retry.attempts => {
                    let wait = self.cfg.connect_retry.wait(attempt);
                    log::warn!(
                        "{} -> connect attempt {attempt} failed: {e}; retrying in {:.1} s",
                        self.name,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write_out(&mut self) -> Result<(), SendError> {
        if !self.out.is_empty() {
            self.conn.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    fn compress_text(&mut self) {
        if !self.text.is_empty() {
            self.gzip.member(&self.text, &mut self.out);
            self.text.clear();
        }
    }

    /// One attempt at writing every batch.
    fn try_send(&mut self, batches: &[Batch]) -> Result<(), SendError> {
        self.connect()?;
        self.out.clear();
        self.text.clear();
        for b in batches {
            for e in b.events() {
                if self.compressing {
                    self.writer
                        .record(&mut self.text, e.time_ms, &e.tag, &e.message);
                    if self.text.len() > self.cfg.compression_buffer {
                        self.compress_text();
                    }
                } else {
                    self.writer
                        .record(&mut self.out, e.time_ms, &e.tag, &e.message);
                }
                if self.out.len() >= WRITE_CHUNK {
                    self.write_out()?;
                }
            }
        }
        self.compress_text();
        self.write_out()?;
        self.conn.flush()
    }
}

impl Sender for DevoSender {
    fn send(&mut self, batches: &mut Vec<Batch>) -> Result<(), SendError> {
        let compress = self.switch.sample(self.usage.ratio());
        if compress != self.compressing {
            log::info!(
                "{} -> gzip transport {} (threshold {})",
                self.name,
                if compress { "enabled" } else { "disabled" },
                self.cfg.gzip_threshold
            );
            self.compressing = compress;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_send(batches) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.conn.close();
                    if attempt >= self.cfg.send_retry.attempts
                        || matches!(e, SendError::Connect { .. } | SendError::Tls { .. })
                    {
                        // Connect failures were already retried by `connect`.
                        return Err(e);
                    }
                    let wait = self.cfg.send_retry.wait(attempt);
                    log::warn!(
                        "{} -> send attempt {attempt} failed: {e}; retrying in {:.1} s",
                        self.name,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn poll(&mut self) -> Result<(), SendError> {
        if self.conn.needs_reopen().is_some() {
            log::debug!("{} -> closing a stale connection", self.name);
            self.conn.close();
        }
        Ok(())
    }

    fn is_connection_open(&self) -> bool {
        self.conn.is_open()
    }

    fn close(&mut self) {
        let _ = self.conn.flush();
        self.conn.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_switch_follows_the_dcsdk_rule() {
        assert!(GzipSwitch::new(-1.0).sample(0.0));
        assert!(!GzipSwitch::new(1.1).sample(1.0));
        let mut s = GzipSwitch::new(0.5);
        assert!(!s.sample(0.2));
        assert!(!s.sample(0.6)); // mean 0.4
        assert!(s.sample(0.9)); // mean 0.566
        assert!(s.sample(0.5));
        for _ in 0..16 {
            s.sample(0.0);
        }
        assert!(!s.sample(0.0));
    }

    #[test]
    fn retry_waits_grow_to_the_max() {
        let r = Retry {
            attempts: 5,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let w: Vec<_> = (1..=7).map(|n| r.wait(n).as_secs()).collect();
        assert_eq!(w, [2, 4, 8, 16, 32, 60, 60]);
    }
}
