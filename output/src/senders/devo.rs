//! `devo_platform` / `relay`: the Devo sender. TCP + TLS 1.2+ with mutual authentication (client `cert` + `key`,
//! server verified against `chain`); framing as Devo's own sender (`<14>YYYY-MM-DD HH:MM:SS.mmm HOST TAG: MSG\n`,
//! multiline events octet-counted); optional gzip transport switched on by the DCSDK queue-usage rule; connection
//! hygiene (age, idle, closed by the server), connect/send retries with backoff that give way to a stop, and the
//! devo-sdk pause around lookup control lines.

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Batch, QueueUsage, SendError, Sender, SenderInfo};
use crate::senders::conn::{Connection, Endpoint, EndpointKeys, TIMEOUT_KEYS, WRITE_CHUNK};
use crate::senders::format::{short_host_name, Framing, HeaderFormat, HeaderWriter};
use crate::senders::gzip::GzipMembers;
use crate::senders::retry::{self, Retry, StopFlag, CONNECT_RETRY_KEYS, SEND_RETRY_KEYS};
use crate::senders::tls::TlsKeys;
use logferry::config::{Globals, Key, KeySet, Section};
use logferry::event::EventRef;
use logferry::lookup::CONTROL_TABLE;
use std::time::Duration;

const ENDPOINT: EndpointKeys = EndpointKeys {
    address: Key::text(
        "address",
        "`collector-{us,ca,eu,ap}.devo.io` or the relay's address",
    )
    .required(),
    port: Key::int("port", 443, 1, 65535, "the collector's or relay's port"),
    tls: TlsKeys {
        tls: Key::bool(
            "tls",
            true,
            "only for `type: relay` (refused for `devo_platform`, always mutual TLS): `false` explicitly selects plain \
             TCP (then `chain`, `cert`, `key` are refused)",
        ),
        chain: Key::file("chain", "CA file (PEM) the server certificate is verified against").required(),
        cert: Key::file("cert", "client certificate (PEM)").required(),
        key: Key::file(
            "key",
            "client private key (PEM, PKCS#8/PKCS#1/SEC1); must belong to `cert`",
        )
        .required(),
    },
};
const CONNECTION_MAX_AGE_IN_SECONDS: Key = Key::int(
    "connection_max_age_in_seconds",
    3600,
    1,
    86_400,
    "reconnect before a send when the connection is older",
);
const CONNECTION_MAX_IDLE_IN_SECONDS: Key = Key::int(
    "connection_max_idle_in_seconds",
    30,
    1,
    3600,
    "reconnect when the connection was idle longer",
);
const HOSTNAME: Key = Key::text("hostname", "HOST field").computed_default("short host name");
const LOOKUP_CONTROL_PAUSE_IN_SECONDS: Key = Key::float_in(
    "lookup_control_pause_in_seconds",
    5.0,
    0.0,
    60.0,
    "pause after a lookup's START line and before its END line (devo-sdk's `Lookup.delay`), so that Devo has \
     processed the START before the data lines arrive; 0 = none",
);

/// The keys of `outputs.<name>.config` for the Devo kinds.
pub static DEVO_KEYS: KeySet = KeySet {
    id: "outputs.devo",
    place: "`outputs.<name>.config` with `type: devo_platform` or `relay`",
    groups: &[
        &crate::config::RUNTIME_KEYS,
        &[
            ENDPOINT.address,
            ENDPOINT.port,
            ENDPOINT.tls.chain,
            ENDPOINT.tls.cert,
            ENDPOINT.tls.key,
            ENDPOINT.tls.tls,
            HOSTNAME,
        ],
        &CONNECT_RETRY_KEYS,
        &SEND_RETRY_KEYS,
        &TIMEOUT_KEYS,
        &[
            CONNECTION_MAX_AGE_IN_SECONDS,
            CONNECTION_MAX_IDLE_IN_SECONDS,
            LOOKUP_CONTROL_PAUSE_IN_SECONDS,
        ],
    ],
};

/// Configuration of a Devo output (under `outputs.<name>.config`).
#[derive(Clone)]
pub struct DevoConfig {
    /// Keys `address`, `port`, `chain`, `cert`, `key`, `tls` (relay only), the timeouts and
    /// `connection_max_age_in_seconds`, `connection_max_idle_in_seconds` (declared in [`DEVO_KEYS`], as every key
    /// below). Never a plaintext fallback: `devo_platform` is always mutual TLS.
    pub endpoint: Endpoint,
    /// Key `hostname`.
    pub hostname: String,
    /// Keys `connect_retries`, `connect_retry_initial_wait_in_seconds`, `connect_retry_max_wait_in_seconds`.
    pub connect_retry: Retry,
    /// Keys `send_retries`, `send_retry_initial_wait_in_seconds`, `send_retry_max_wait_in_seconds`.
    pub send_retry: Retry,
    /// Key `lookup_control_pause_in_seconds`: after a lookup's START control line and before its END line the
    /// sender flushes and waits this long, as devo-sdk does, so that Devo has processed the START (control table)
    /// before the data lines (data table) arrive and every data line before the END closes the upload.
    pub lookup_pause: Duration,
}

impl DevoConfig {
    pub fn read(kind: &str, s: &Section<'_>) -> Option<DevoConfig> {
        let tls_refused = (kind != "relay")
            .then_some("type devo_platform always uses mutual TLS; \"tls\" is only for type relay");
        let endpoint = Endpoint::read(s, &ENDPOINT, tls_refused);
        let max_age: u64 = s.get_int(&CONNECTION_MAX_AGE_IN_SECONDS);
        let max_idle: u64 = s.get_int(&CONNECTION_MAX_IDLE_IN_SECONDS);
        let hostname = s.get_text(&HOSTNAME).unwrap_or_else(short_host_name);
        let connect_retry = Retry::read(s, &CONNECT_RETRY_KEYS);
        let send_retry = Retry::read(s, &SEND_RETRY_KEYS);
        let pause = s.get_float(&LOOKUP_CONTROL_PAUSE_IN_SECONDS);
        Some(DevoConfig {
            endpoint: Endpoint {
                max_age: Some(Duration::from_secs(max_age)),
                max_idle: Some(Duration::from_secs(max_idle)),
                ..endpoint?
            },
            hostname,
            connect_retry,
            send_retry,
            lookup_pause: Duration::from_secs_f64(pause),
        })
    }
}

pub struct DevoKind;

impl OutputKind for DevoKind {
    fn types(&self) -> &'static [&'static str] {
        &["devo_platform", "relay"]
    }
    fn keys(&self) -> &'static KeySet {
        &DEVO_KEYS
    }
    fn configure(
        &self,
        name: &str,
        kind: &str,
        config: &Section<'_>,
        _globals: &Globals,
    ) -> Option<OutputSpec> {
        let cfg = DevoConfig::read(kind, config)?;
        Some(super::spec(name, kind, "DevoSender", move |info| {
            DevoSender::new(&cfg, info).stop_on(info.stop.clone())
        }))
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

/// A lookup control line (`my.lookup.control.<name>.<FULL|INC>`: `<id>_<name>|START|...` or `|END|...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupControl {
    Start,
    End,
}

impl LookupControl {
    /// Whether `e` is a lookup control line, and which.
    pub fn of(e: EventRef<'_>) -> Option<LookupControl> {
        e.tag.strip_prefix(CONTROL_TABLE)?.strip_prefix('.')?;
        let (_, rest) = e.message.split_once('|')?;
        match rest.split_once('|')?.0 {
            "START" => Some(LookupControl::Start),
            "END" => Some(LookupControl::End),
            _ => None,
        }
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
    /// From globals: `compression_buffer_in_bytes` (size of one gzip member's input).
    compression_buffer: usize,
    gzip_threshold: f64,
    usage: QueueUsage,
    cfg: DevoConfig,
    stop: StopFlag,
    name: String,
}

impl DevoSender {
    /// Compression settings come from `info.globals` (the globals the OutputProcess runs with). Retries run to
    /// their end unless a stop flag is given with [`DevoSender::stop_on`].
    pub fn new(cfg: &DevoConfig, info: &SenderInfo) -> Self {
        let g = &info.globals;
        DevoSender {
            conn: Connection::new(cfg.endpoint.clone(), &info.name),
            writer: HeaderWriter::new(
                HeaderFormat::Devo,
                Framing::DevoMultiline,
                14,
                &cfg.hostname,
            ),
            out: Vec::with_capacity(WRITE_CHUNK + 64 * 1024),
            text: Vec::with_capacity(g.compression_buffer_in_bytes + 64 * 1024),
            gzip: GzipMembers::new(g.compression_level),
            switch: GzipSwitch::new(g.threshold_for_using_gzip_in_transport_layer),
            compressing: false,
            compression_buffer: g.compression_buffer_in_bytes,
            gzip_threshold: g.threshold_for_using_gzip_in_transport_layer,
            usage: info.usage.clone(),
            name: info.name.clone(),
            cfg: cfg.clone(),
            stop: StopFlag::default(),
        }
    }

    /// Gives up retries and pauses as soon as `stop` is set (the runtime's hard stop): `send` then returns its
    /// last error and the batches stay unacknowledged in Redis.
    pub fn stop_on(mut self, stop: StopFlag) -> Self {
        self.stop = stop;
        self
    }

    /// Whether the last `send` used gzip transport.
    pub fn compressing(&self) -> bool {
        self.compressing
    }

    /// Connects, retrying with backoff (`connect_retries`). A refused certificate or a failed verification does
    /// not heal by retrying quickly, but the server may be reconfigured: retried like any other failure.
    fn connect(&mut self) -> Result<(), SendError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.conn.ensure_open() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let retry = self.cfg.connect_retry;
                    if !retry.again(attempt, &self.stop, &self.name, "connect", &e) {
                        return Err(e);
                    }
                }
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

    /// Everything formatted so far onto the wire, flushed.
    fn flush_all(&mut self) -> Result<(), SendError> {
        self.compress_text();
        self.write_out()?;
        self.conn.flush()
    }

    /// The pause around lookup control lines, after flushing what precedes it.
    fn lookup_pause(&mut self, at: LookupControl) -> Result<(), SendError> {
        self.flush_all()?;
        if retry::pause(&self.stop, self.cfg.lookup_pause) {
            return Ok(());
        }
        Err(SendError::Write {
            destination: self.conn.endpoint().destination(),
            reason: format!("stop requested during the pause at a lookup {at:?} line"),
        })
    }

    fn record(&mut self, e: EventRef<'_>) -> Result<(), SendError> {
        if self.compressing {
            self.writer
                .record(&mut self.text, e.time_ms, e.tag, e.message);
            if self.text.len() > self.compression_buffer {
                self.compress_text();
            }
        } else {
            self.writer
                .record(&mut self.out, e.time_ms, e.tag, e.message);
        }
        if self.out.len() >= WRITE_CHUNK {
            self.write_out()?;
        }
        Ok(())
    }

    /// One attempt at writing every batch.
    fn try_send(&mut self, batches: &[Batch]) -> Result<(), SendError> {
        self.connect()?;
        self.out.clear();
        self.text.clear();
        let pauses = !self.cfg.lookup_pause.is_zero();
        for b in batches {
            for e in b.events() {
                let control = LookupControl::of(e).filter(|_| pauses);
                if control == Some(LookupControl::End) {
                    self.lookup_pause(LookupControl::End)?;
                }
                self.record(e)?;
                if control == Some(LookupControl::Start) {
                    self.lookup_pause(LookupControl::Start)?;
                }
            }
        }
        self.flush_all()
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
                self.gzip_threshold
            );
            self.compressing = compress;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Err(e) = self.try_send(batches) else {
                return Ok(());
            };
            self.conn.close();
            // Connect failures were already retried by `connect`.
            if matches!(e, SendError::Connect { .. } | SendError::Tls { .. })
                || !self
                    .cfg
                    .send_retry
                    .again(attempt, &self.stop, &self.name, "send", &e)
            {
                return Err(e);
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
    fn lookup_control_lines_are_recognised() {
        use logferry::lookup::{ColumnType, Lookup, LookupAction};
        let l = Lookup::with_id("t_1", &[("k", ColumnType::Str)], "k", "1.5").unwrap();
        let evs = l
            .publish(LookupAction::Inc, &[vec!["START"]], &[vec!["END"]], 0)
            .unwrap();
        let got: Vec<_> = evs.iter().map(|e| LookupControl::of(e.as_ref())).collect();
        assert_eq!(
            got,
            [
                Some(LookupControl::Start),
                None,
                None,
                Some(LookupControl::End)
            ]
        );
        assert_eq!(
            LookupControl::of(logferry::Event::new("my.app", 0, "1_t|START|[]").as_ref()),
            None
        );
    }
}
