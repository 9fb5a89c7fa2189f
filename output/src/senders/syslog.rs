//! `syslog` / `in_house_relay` / `sidecar`: events to a syslog relay over TCP, optionally TLS (with or without a
//! client certificate). Header: the DCSDK relay format `<14>Mon DD HH:MM:SS HOST TAG: MSG` (default) or RFC 5424;
//! framing: newline (default) or RFC 6587 octet counting; with newline framing an event's own line breaks are
//! escaped (default) or the event is sent octet-counted (`multiline_events`), so that no event is ever split. UTF-8 is kept as is. With TLS and no `chain`, the relay's
//! certificate is verified against the system trust store (a relay with a public certificate needs no CA file).

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Batch, SendError, Sender, SenderInfo};
use crate::senders::conn::{Connection, Endpoint, EndpointKeys, TIMEOUT_KEYS, WRITE_CHUNK};
use crate::senders::format::{system_host_name, Framing, HeaderFormat, HeaderWriter};
use crate::senders::tls::TlsKeys;
use logferry::config::{ConfigErrorKind, Globals, Key, KeySet, Section};

const ENDPOINT: EndpointKeys = EndpointKeys {
    address: Key::text("address", "host name or IP of the relay").required(),
    port: Key::int_unset("port", 1, 65535, "the relay's port").required(),
    tls: TlsKeys {
        tls: Key::bool(
            "tls",
            false,
            "true: TLS 1.2+, the relay's certificate verified (name = `address`); `cert` + `key` optional (mutual \
             TLS); false: plain TCP, and `chain`, `cert`, `key` are refused",
        ),
        chain: Key::file(
            "chain",
            "CA file (PEM); when given, only its certificates are trusted. Without it the system trust store is used \
             (`rustls-native-certs`: the distribution's CA bundle, e.g. `/etc/ssl/certs` from Debian's \
             `ca-certificates`, or the file/directory named by `SSL_CERT_FILE` / `SSL_CERT_DIR`); an empty or \
             unreadable store is a config error on `chain`",
        )
        .computed_default("system trust store"),
        cert: Key::file("cert", "client certificate (PEM), together with `key`"),
        key: Key::file("key", "client private key (PEM), together with `cert`"),
    },
};
const HEADER_FORMAT: Key = Key::one_of(
    "header_format",
    "relay",
    &["relay", "rfc5424"],
    "`relay`: `<14>Mon DD HH:MM:SS HOST TAG: MSG` (DCSDK relay format, event time in UTC); `rfc5424`: \
     `<14>1 YYYY-MM-DDTHH:MM:SS.mmmZ HOST TAG - - - MSG` (TAG as APP-NAME, max 48 printable ASCII)",
);
const FRAMING: Key = Key::one_of(
    "framing",
    "newline",
    &["newline", "octet_counting"],
    "`newline` (`\\n` appended when missing) or `octet_counting` (RFC 6587 `LEN SP MSG`)",
);
const MULTILINE_EVENTS: Key = Key::one_of(
    "multiline_events",
    "escape",
    &["escape", "octet_counting"],
    "only with `framing: newline` (a Conflict error otherwise): what happens to an event with line breaks inside (a \
     pretty-printed JSON record from S3, a stack trace). `escape`: each `\\n` is sent as the two characters `\\n` \
     (`\\r` as `\\r`), as rsyslog writes control characters as `#012`; `octet_counting`: that event is sent as one \
     RFC 6587 octet-counted frame, the others newline-terminated (the receiver must detect the framing per frame, as \
     rsyslog's `imtcp` does)",
);
const HOSTNAME: Key = Key::text("hostname", "HOST field").computed_default("system host name");

/// The keys of `outputs.<name>.config` for the syslog kinds.
pub static SYSLOG_KEYS: KeySet = KeySet {
    id: "outputs.syslog",
    place: "`outputs.<name>.config` with `type: syslog`, `in_house_relay` or `sidecar`",
    groups: &[
        &crate::config::RUNTIME_KEYS,
        &[ENDPOINT.address, ENDPOINT.port],
        &[HEADER_FORMAT, FRAMING, MULTILINE_EVENTS],
        &[
            ENDPOINT.tls.tls,
            ENDPOINT.tls.chain,
            ENDPOINT.tls.cert,
            ENDPOINT.tls.key,
        ],
        &[HOSTNAME],
        &TIMEOUT_KEYS,
    ],
};

/// Configuration of a syslog output (under `outputs.<name>.config`).
#[derive(Clone)]
pub struct SyslogConfig {
    /// Keys `address`, `port`, `tls`, `chain`, `cert`, `key`, `connect_timeout_in_seconds`,
    /// `send_timeout_in_seconds` (declared in [`SYSLOG_KEYS`], as every key below).
    pub endpoint: Endpoint,
    /// Key `header_format`.
    pub header_format: HeaderFormat,
    /// Keys `framing` and `multiline_events`.
    pub framing: Framing,
    /// Key `hostname`.
    pub hostname: String,
}

impl SyslogConfig {
    pub fn read(s: &Section<'_>) -> Option<SyslogConfig> {
        let endpoint = Endpoint::read(s, &ENDPOINT, None);
        let header_format = match s.get_choice(&HEADER_FORMAT).as_str() {
            "rfc5424" => HeaderFormat::Rfc5424,
            _ => HeaderFormat::Relay,
        };
        let framing = Self::read_framing(s);
        let hostname = s.get_text(&HOSTNAME).unwrap_or_else(system_host_name);
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
        let framing = s.get_choice(&FRAMING);
        let multiline = s.get_choice(&MULTILINE_EVENTS);
        match (framing.as_str(), multiline.as_str()) {
            ("octet_counting", _) => {
                if s.has(&MULTILINE_EVENTS) {
                    s.error(
                        MULTILINE_EVENTS.name,
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
    fn keys(&self) -> &'static KeySet {
        &SYSLOG_KEYS
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
