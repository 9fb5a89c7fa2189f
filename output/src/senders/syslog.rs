//! `syslog` / `in_house_relay` / `sidecar`: events to a syslog relay over TCP, optionally TLS (with or without a
//! client certificate). Header: the DCSDK relay format `<14>Mon DD HH:MM:SS HOST TAG: MSG` (default) or RFC 5424;
//! framing: newline (default) or RFC 6587 octet counting; with newline framing an event's own line breaks are
//! escaped (default) or the event is sent octet-counted (`multiline_events`), so that no event is ever split. UTF-8 is kept as is. With TLS and no `chain`, the relay's
//! certificate is verified against the system trust store (a relay with a public certificate needs no CA file).

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Batch, SendError, Sender, SenderInfo};
use crate::senders::conn::{Connection, Endpoint, WRITE_CHUNK};
use crate::senders::format::{system_host_name, Framing, HeaderFormat, HeaderWriter};
use crate::senders::tls::{TlsPolicy, TlsSwitch};
use logferry::config::{ConfigErrorKind, Globals, Section};

/// Configuration of a syslog output (under `outputs.<name>.config`).
#[derive(Clone)]
pub struct SyslogConfig {
    /// `address`, `port` (mandatory, 1..=65535), `connect_timeout_in_seconds`, `send_timeout_in_seconds` (default
    /// 5, 1..=300) and TLS: `tls` (default false); with TLS, the server is verified against `chain` (CA file) or,
    /// without `chain`, the system trust store; `cert` + `key` optional (mutual TLS).
    pub endpoint: Endpoint,
    /// `header_format`: `relay` (default, `<14>Mon DD HH:MM:SS HOST TAG: MSG`) or `rfc5424`.
    pub header_format: HeaderFormat,
    /// `framing`: `newline` (default) or `octet_counting` (RFC 6587), with `multiline_events` (only with
    /// `newline`): `escape` (default: line breaks inside an event are sent as the two characters `\n` / `\r`) or
    /// `octet_counting` (an event with line breaks is sent as one RFC 6587 octet-counted frame, the others
    /// newline-terminated; the receiver must detect the framing per frame, as rsyslog does).
    pub framing: Framing,
    /// `hostname`: HOST field. Default: the machine's host name as the system reports it.
    pub hostname: String,
}

impl SyslogConfig {
    pub fn read(s: &Section<'_>) -> Option<SyslogConfig> {
        let endpoint = Endpoint::read(s, None, TlsSwitch::Key(false), TlsPolicy::Optional);
        let header_format = match s
            .one_of("header_format", "relay", &["relay", "rfc5424"])
            .as_str()
        {
            "rfc5424" => HeaderFormat::Rfc5424,
            _ => HeaderFormat::Relay,
        };
        let framing = Self::read_framing(s);
        let hostname = s.optional("hostname").unwrap_or_else(system_host_name);
        Some(SyslogConfig {
            endpoint: endpoint?,
            header_format,
            framing,
            hostname,
        })
    }
}

impl SyslogConfig {
    fn read_framing(s: &Section<'_>) -> Framing {
        let framing = s.one_of("framing", "newline", &["newline", "octet_counting"]);
        let multiline = s.one_of("multiline_events", "escape", &["escape", "octet_counting"]);
        match (framing.as_str(), multiline.as_str()) {
            ("octet_counting", _) => {
                if s.contains("multiline_events") {
                    s.error(
                        "multiline_events",
                        ConfigErrorKind::Conflict,
                        "only valid with framing: newline (octet-counted framing never splits an event)",
                    );
                }
                Framing::OctetCounting
            }
            (_, "octet_counting") => Framing::NewlineOrOctetCounted,
            _ => Framing::NewlineEscaped,
        }
    }
}

pub struct SyslogKind;

impl OutputKind for SyslogKind {
    fn types(&self) -> &'static [&'static str] {
        &["syslog", "in_house_relay", "sidecar"]
    }
    fn configure(
        &self,
        name: &str,
        kind: &str,
        config: &Section<'_>,
        _globals: &Globals,
    ) -> Option<OutputSpec> {
        let cfg = SyslogConfig::read(config)?;
        Some(super::spec(name, kind, "SyslogSender", move |info| {
            SyslogSender::new(&cfg, info)
        }))
    }
}

/// One connection to the relay; formats every batch of a `send` into a reused buffer, one flush per call.
pub struct SyslogSender {
    conn: Connection,
    writer: HeaderWriter,
    buf: Vec<u8>,
}

impl SyslogSender {
    pub fn new(cfg: &SyslogConfig, info: &SenderInfo) -> Self {
        SyslogSender {
            conn: Connection::new(cfg.endpoint.clone(), &info.name),
            writer: HeaderWriter::new(cfg.header_format, cfg.framing, 14, &cfg.hostname),
            buf: Vec::with_capacity(WRITE_CHUNK + 64 * 1024),
        }
    }
}

impl Sender for SyslogSender {
    fn send(&mut self, batches: &mut Vec<Batch>) -> Result<(), SendError> {
        self.conn.ensure_open()?;
        self.buf.clear();
        for b in batches.iter() {
            for e in b.events() {
                self.writer
                    .record(&mut self.buf, e.time_ms, e.tag, e.message);
                if self.buf.len() >= WRITE_CHUNK {
                    self.conn.write_all(&self.buf)?;
                    self.buf.clear();
                }
            }
        }
        if !self.buf.is_empty() {
            self.conn.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.conn.flush()
    }

    fn is_connection_open(&self) -> bool {
        self.conn.is_open()
    }

    fn close(&mut self) {
        let _ = self.conn.flush();
        self.conn.close();
    }
}
