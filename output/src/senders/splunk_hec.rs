//! `splunk_hec`: Splunk HTTP Event Collector. Events are batched (by bytes and by time) into posts of JSON
//! envelopes (`time` from the event, `host`/`index`/`sourcetype`/`source` from the config with a per-tag mapping),
//! gzip-compressed, sent with the token on one channel GUID. With indexer acknowledgement a stream entry is
//! completed only when every post holding its events is acknowledged (`ackId` polling); unacknowledged posts are
//! re-posted after `ack_timeout_in_seconds`. A failed post returns its error and is retried by the next `send` or
//! `poll`, which the pool worker delays by its backoff ([`crate::failures`]: 503/429 with `Retry-After` honoured,
//! 401/403 an ERROR naming the output's token, retried no sooner than every 5 s); a post refused as invalid data is split until the bad event is
//! isolated, which is reported and set aside ([`crate::senders::rejects`]) while the rest is delivered.

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Batch, SendError, Sender, SenderInfo};
use crate::senders::format::system_host_name;
use crate::senders::gzip::GzipMembers;
use crate::senders::rejects::{self, RejectSink, Rejected};
use logferry::config::{ConfigErrorKind, Globals, Key, KeySet, Secret, Section};
use logferry::event::EventRef;
use logferry::json_text::push_json_str;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-tag overrides: the longest matching dotted prefix of the event tag wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMapping {
    /// A tag (`cloud.aws.cloudtrail.events`) or a dotted prefix of tags (`cloud.aws`).
    pub tag: String,
    pub index: Option<String>,
    pub sourcetype: Option<String>,
    pub source: Option<String>,
}

const URL: Key = Key::format(
    "url",
    "https://host:8088 (http:// accepted)",
    "base URL of the HTTP Event Collector",
)
.required();
const TOKEN: Key = Key::text(
    "token",
    "HEC token, sent as `Authorization: Splunk <token>`",
)
.required()
.secret();
const INDEX: Key =
    Key::text("index", "envelope field `index`").computed_default("the token's default");
const SOURCETYPE: Key =
    Key::text("sourcetype", "envelope field `sourcetype`").computed_default("the token's default");
const SOURCE: Key =
    Key::text("source", "envelope field `source`").computed_default("the token's default");
const HOST: Key = Key::text("host", "envelope field `host`").computed_default("system host name");
const TAG_MAPPING: Key = Key::dict(
    "tag_mapping",
    None,
    "`{<tag or dotted tag prefix>: {index, sourcetype, source}}`; longest match wins, unset fields fall back to the \
     output's",
);
const CHAIN: Key =
    Key::file("chain", "CA file (PEM) to verify the collector").computed_default("web PKI roots");
const GZIP: Key = Key::bool("gzip", true, "`Content-Encoding: gzip`");
const COMPRESSION_LEVEL: Key = Key::int(
    "compression_level",
    DEFAULT_COMPRESSION_LEVEL,
    1,
    9,
    "gzip level of the posts when `gzip` is true: 1 is the fastest, 9 the smallest (6 is zlib's own default)",
);
/// Chosen by `bench/hec/run.sh` (docs/outputs.md, Splunk HEC figures).
const DEFAULT_COMPRESSION_LEVEL: i64 = 1;
const BATCH_MAX_BYTES: Key = Key::int(
    "batch_max_bytes",
    1_048_576,
    1024,
    16_777_216,
    "a post is sent once its JSON reaches this size",
);
const BATCH_MAX_WAIT_IN_MS: Key = Key::int(
    "batch_max_wait_in_ms",
    0,
    0,
    60_000,
    "a smaller post is sent once its oldest event waited this long; 0: as soon as the sender took every batch \
     waiting for it (posts grow with the load, since batches gather while a post is under way)",
);
const USE_ACK: Key = Key::bool("use_ack", true, "indexer acknowledgement");
const ACK_POLL_MIN_INTERVAL_IN_MS: Key = Key::int(
    "ack_poll_min_interval_in_ms",
    5,
    1,
    60_000,
    "at most `ack_poll_interval_in_ms`: the first acknowledgement poll comes this long after a post, and polls that \
     bring acknowledgements are repeated this often",
);
const ACK_POLL_INTERVAL_IN_MS: Key = Key::int(
    "ack_poll_interval_in_ms",
    500,
    50,
    60_000,
    "the longest wait between polls; each poll that brings no acknowledgement doubles the wait up to this",
);
const ACK_TIMEOUT_IN_SECONDS: Key = Key::int(
    "ack_timeout_in_seconds",
    120,
    1,
    3600,
    "an unacknowledged post is posted again",
);
const MAX_PENDING_POSTS: Key = Key::int(
    "max_pending_posts",
    32,
    1,
    1024,
    "posts waiting for acks before new batches are refused (backpressure)",
);
const REQUEST_TIMEOUT_IN_SECONDS: Key = Key::int(
    "request_timeout_in_seconds",
    30,
    1,
    300,
    "timeout of one HTTP request",
);

const EVENT_ID_FIELD: Key = Key::format(
    "event_id_field",
    logferry::config::keys::JSON_MEMBER_NAME,
    "the name of the stable event id member the collector's inputs add (`@logferry_id` with their `event_id: \
     true`); an event holding `\"<name>\":\"<id>\"` also carries the id in `fields`, where Splunk can deduplicate on \
     it; none = not copied",
);

/// The keys of `outputs.<name>.config` for `splunk_hec`.
pub static HEC_KEYS: KeySet = KeySet {
    id: "outputs.splunk_hec",
    place: "`outputs.<name>.config` with `type: splunk_hec`",
    groups: &[
        &crate::config::RUNTIME_KEYS,
        &[
            URL,
            TOKEN,
            INDEX,
            SOURCETYPE,
            SOURCE,
            HOST,
            TAG_MAPPING,
            CHAIN,
            GZIP,
            COMPRESSION_LEVEL,
            BATCH_MAX_BYTES,
            BATCH_MAX_WAIT_IN_MS,
            USE_ACK,
            ACK_POLL_MIN_INTERVAL_IN_MS,
            ACK_POLL_INTERVAL_IN_MS,
            ACK_TIMEOUT_IN_SECONDS,
            MAX_PENDING_POSTS,
            REQUEST_TIMEOUT_IN_SECONDS,
            EVENT_ID_FIELD,
        ],
    ],
};

/// Configuration of a Splunk HEC output (under `outputs.<name>.config`).
#[derive(Clone)]
pub struct HecConfig {
    /// Key `url` (declared in [`HEC_KEYS`], as every key below), without a trailing `/`.
    pub url: String,
    /// Key `token`.
    pub token: Secret,
    /// Key `index`; `None` = the token's default (as `sourcetype` and `source`).
    pub index: Option<String>,
    pub sourcetype: Option<String>,
    pub source: Option<String>,
    pub host: String,
    /// Key `tag_mapping`, longest tag first.
    pub tag_mapping: Vec<TagMapping>,
    /// Key `chain`: `None` = the public web PKI roots.
    pub chain: Option<Vec<ureq::tls::Certificate<'static>>>,
    pub gzip: bool,
    /// Key `compression_level`: the gzip level, 1..=9.
    pub compression_level: u32,
    pub batch_max_bytes: usize,
    /// Key `batch_max_wait_in_ms` (0: a post goes out as soon as the sender took every batch waiting for it).
    pub batch_max_wait: Duration,
    pub use_ack: bool,
    /// Key `ack_poll_min_interval_in_ms`: the poll follows the indexer's pace, never above `ack_poll_interval`.
    pub ack_poll_min_interval: Duration,
    /// Key `ack_poll_interval_in_ms`.
    pub ack_poll_interval: Duration,
    /// Key `ack_timeout_in_seconds`.
    pub ack_timeout: Duration,
    pub max_pending_posts: usize,
    /// Key `request_timeout_in_seconds`.
    pub request_timeout: Duration,
    /// Key `event_id_field`: `None` = the id is not copied into `fields`.
    pub event_id_field: Option<String>,
}

impl HecConfig {
    pub fn read(s: &Section<'_>) -> Option<HecConfig> {
        let url = s.get_text(&URL);
        let url = url.and_then(|u| {
            if u.starts_with("https://") || u.starts_with("http://") {
                Some(u.trim_end_matches('/').to_owned())
            } else {
                s.error(
                    URL.name,
                    ConfigErrorKind::InvalidValue,
                    format!("\"{u}\" must start with https:// or http://"),
                );
                None
            }
        });
        let token = s.get_secret(&TOKEN);
        let chain = s.get_file(&CHAIN).and_then(|p| match std::fs::read(&p) {
            Ok(bytes) => {
                let certs: Vec<_> = ureq::tls::parse_pem(&bytes)
                    .filter_map(|i| match i {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    s.error(
                        CHAIN.name,
                        ConfigErrorKind::InvalidValue,
                        format!("\"{}\" holds no PEM certificate", p.display()),
                    );
                    None
                } else {
                    Some(certs)
                }
            }
            Err(e) => {
                s.error(
                    CHAIN.name,
                    ConfigErrorKind::FileUnreadable,
                    format!("cannot read \"{}\": {e}", p.display()),
                );
                None
            }
        });
        let mut tag_mapping = Vec::new();
        if let Some(m) = s.get_section(&TAG_MAPPING) {
            for (tag, t) in m.entries() {
                tag_mapping.push(TagMapping {
                    tag: tag.to_owned(),
                    index: t.get_text(&INDEX),
                    sourcetype: t.get_text(&SOURCETYPE),
                    source: t.get_text(&SOURCE),
                });
                t.finish();
            }
            m.finish();
        }
        tag_mapping.sort_by_key(|m| std::cmp::Reverse(m.tag.len()));
        let cfg = HecConfig {
            url: url.unwrap_or_default(),
            token: token.unwrap_or_default(),
            index: s.get_text(&INDEX),
            sourcetype: s.get_text(&SOURCETYPE),
            source: s.get_text(&SOURCE),
            host: s.get_text(&HOST).unwrap_or_else(system_host_name),
            tag_mapping,
            chain,
            event_id_field: s.json_member_name(&EVENT_ID_FIELD),
            gzip: s.get_bool(&GZIP),
            compression_level: s.get_int(&COMPRESSION_LEVEL),
            batch_max_bytes: s.get_int(&BATCH_MAX_BYTES),
            batch_max_wait: Duration::from_millis(s.get_int(&BATCH_MAX_WAIT_IN_MS)),
            use_ack: s.get_bool(&USE_ACK),
            ack_poll_min_interval: Duration::from_millis(s.get_int(&ACK_POLL_MIN_INTERVAL_IN_MS)),
            ack_poll_interval: Duration::from_millis(s.get_int(&ACK_POLL_INTERVAL_IN_MS)),
            ack_timeout: Duration::from_secs(s.get_int(&ACK_TIMEOUT_IN_SECONDS)),
            max_pending_posts: s.get_int(&MAX_PENDING_POSTS),
            request_timeout: Duration::from_secs(s.get_int(&REQUEST_TIMEOUT_IN_SECONDS)),
        };
        if cfg.ack_poll_min_interval > cfg.ack_poll_interval {
            s.error(
                ACK_POLL_MIN_INTERVAL_IN_MS.name,
                ConfigErrorKind::Conflict,
                format!(
                    "{} ms is more than ack_poll_interval_in_ms ({} ms), the longest wait between polls",
                    cfg.ack_poll_min_interval.as_millis(),
                    cfg.ack_poll_interval.as_millis()
                ),
            );
            return None;
        }
        if cfg.url.is_empty() || cfg.token.expose().is_empty() {
            return None;
        }
        Some(cfg)
    }

    fn mapping(&self, tag: &str) -> Option<&TagMapping> {
        self.tag_mapping.iter().find(|m| {
            tag == m.tag
                || (tag.len() > m.tag.len()
                    && tag.starts_with(&m.tag)
                    && tag.as_bytes()[m.tag.len()] == b'.')
        })
    }
}

pub struct SplunkHecKind;

impl OutputKind for SplunkHecKind {
    fn types(&self) -> &'static [&'static str] {
        &["splunk_hec"]
    }
    fn keys(&self) -> &'static KeySet {
        &HEC_KEYS
    }
    fn configure(
        &self,
        name: &str,
        kind: &str,
        config: &Section<'_>,
        _globals: &Globals,
    ) -> Option<OutputSpec> {
        let cfg = HecConfig::read(config)?;
        let output = name.to_owned();
        Some(super::spec(name, kind, "SplunkHecSender", move |info| {
            SplunkHecSender::new(&cfg, info, &output, rejects::current())
        }))
    }
}

/// One post: JSON envelopes, with the byte range and stream entry of each event.
struct Post {
    body: Vec<u8>,
    /// (start, end, entry key) of each event in `body`.
    events: Vec<(usize, usize, u64)>,
    /// Distinct entries with events in this post.
    entries: Vec<u64>,
    opened: Instant,
    sent: Option<Instant>,
}

impl Post {
    fn new() -> Post {
        Post {
            body: Vec::new(),
            events: Vec::new(),
            entries: Vec::new(),
            opened: Instant::now(),
            sent: None,
        }
    }
}

/// When to poll for acknowledgements: soon after a post, again at the shortest interval while polls bring
/// acknowledgements, and doubling the wait (up to the longest) while they bring none, so that the poll follows the
/// indexer's pace without flooding a slow one.
#[derive(Debug, Clone, Copy)]
struct AckPacer {
    shortest: Duration,
    longest: Duration,
    wait: Duration,
    next: Option<Instant>,
}

impl AckPacer {
    fn new(shortest: Duration, longest: Duration) -> Self {
        AckPacer {
            shortest,
            longest,
            wait: shortest,
            next: None,
        }
    }

    /// A post now awaits acknowledgement: a poll is due within the current wait (not later than one already due).
    fn posted(&mut self, now: Instant) {
        let due = now + self.wait;
        self.next = Some(self.next.map_or(due, |n| n.min(due)));
    }

    /// A poll was made; `acknowledged`: it brought at least one acknowledgement.
    fn polled(&mut self, now: Instant, acknowledged: bool) {
        self.wait = if acknowledged {
            self.shortest
        } else {
            (self.wait * 2).min(self.longest)
        };
        self.next = Some(now + self.wait);
    }

    /// Nothing awaits acknowledgement any more.
    fn idle(&mut self) {
        self.next = None;
    }

    /// How long until the next poll is due (zero when overdue); None when none is scheduled.
    fn due_in(&self, now: Instant) -> Option<Duration> {
        self.next.map(|n| n.saturating_duration_since(now))
    }
}

struct Held {
    batch: Batch,
    /// Posts holding events of this entry that are not yet confirmed.
    remaining: usize,
}

/// What the collector answered to a post.
enum Outcome {
    Accepted(Option<u64>),
    Invalid {
        reason: String,
        index: Option<usize>,
    },
}

/// HEC answer body.
#[derive(serde::Deserialize, Default)]
struct Answer {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(rename = "ackId", default)]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number", default)]
    invalid_event_number: Option<usize>,
}

/// Counters of one sender, for tests and statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HecCounters {
    pub posts: u64,
    pub acked_posts: u64,
    pub reposts_after_ack_timeout: u64,
    /// Posts sent again because the indexer's ackIds started again (it restarted and lost its acknowledgements).
    pub reposts_after_indexer_restart: u64,
    pub rejected_events: u64,
    pub completed_entries: u64,
}

pub struct SplunkHecSender {
    cfg: HecConfig,
    /// `"<event_id_field>":"`, looked up in each event (None: no id in `fields`).
    id_needle: Option<String>,
    agent: ureq::Agent,
    channel: String,
    name: String,
    /// The output's name in the configuration (`outputs.<output>`), for the lines that tell what to change.
    output: String,
    origin: String,
    reject: Arc<dyn RejectSink>,
    next_key: u64,
    held: HashMap<u64, Held>,
    current: Post,
    ready: VecDeque<Post>,
    awaiting: HashMap<u64, Post>,
    /// The last ackId the indexer gave on this channel: ids only grow until the indexer restarts.
    last_ack_id: Option<u64>,
    pacer: AckPacer,
    /// The envelope parts of the last tag seen.
    tag_parts: Option<TagParts>,
    gzip: GzipMembers,
    zbuf: Vec<u8>,
    health_checked: bool,
    /// The runtime's hard stop: a wait for room gives way to it.
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub counters: HecCounters,
}

/// A random (version 4) UUID from the kernel's generator.
fn channel_guid() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    if b == [0u8; 16] {
        let t = logferry::time::now_ms() as u128 ^ ((std::process::id() as u128) << 64);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The stable id in an event's text (`"<event_id_field>":"<id>"`, as the inputs splice it: no escapes); `needle`
/// is `"<event_id_field>":"`.
fn event_id<'m>(needle: &Option<String>, message: &'m str) -> Option<&'m str> {
    let needle = needle.as_deref()?;
    let rest = &message[message.find(needle)? + needle.len()..];
    Some(&rest[..rest.find('"')?])
}

/// The parts of an envelope that depend only on the event's tag, as JSON text.
struct TagParts {
    tag: String,
    /// `,"host":..,"index":..,"sourcetype":..,"source":..,"event":` (the fields set).
    before_event: String,
    /// `,"fields":{"tag":"<tag>"`.
    fields: String,
}

impl TagParts {
    fn render(cfg: &HecConfig, tag: &str) -> TagParts {
        let m = cfg.mapping(tag);
        let mut before_event = String::from(",\"host\":");
        push_json_str(&mut before_event, &cfg.host);
        let fields = [
            (
                "index",
                m.and_then(|m| m.index.as_ref()).or(cfg.index.as_ref()),
            ),
            (
                "sourcetype",
                m.and_then(|m| m.sourcetype.as_ref())
                    .or(cfg.sourcetype.as_ref()),
            ),
            (
                "source",
                m.and_then(|m| m.source.as_ref()).or(cfg.source.as_ref()),
            ),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                before_event.push_str(&format!(",\"{k}\":"));
                push_json_str(&mut before_event, v);
            }
        }
        before_event.push_str(",\"event\":");
        let mut fields = String::from(",\"fields\":{\"tag\":");
        push_json_str(&mut fields, tag);
        TagParts {
            tag: tag.to_owned(),
            before_event,
            fields,
        }
    }
}

impl SplunkHecSender {
    pub fn new(
        cfg: &HecConfig,
        info: &SenderInfo,
        output: &str,
        reject: Arc<dyn RejectSink>,
    ) -> Self {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(chain) = &cfg.chain {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(chain));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.request_timeout))
            .tls_config(tls.build())
            .build()
            .into();
        SplunkHecSender {
            cfg: cfg.clone(),
            id_needle: (cfg.event_id_field.as_ref()).map(|name| format!("\"{name}\":\"")),
            agent,
            channel: channel_guid(),
            name: info.name.clone(),
            output: output.to_owned(),
            origin: format!("output {output} ({})", info.name),
            reject,
            next_key: 0,
            held: HashMap::new(),
            current: Post::new(),
            ready: VecDeque::new(),
            awaiting: HashMap::new(),
            last_ack_id: None,
            pacer: AckPacer::new(cfg.ack_poll_min_interval, cfg.ack_poll_interval),
            tag_parts: None,
            gzip: GzipMembers::new(cfg.compression_level),
            zbuf: Vec::new(),
            health_checked: false,
            stop: info.stop.clone(),
            counters: HecCounters::default(),
        }
    }

    /// The channel GUID of this sender (`X-Splunk-Request-Channel`).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Appends the envelope of `e`: `{"time":..` then the parts fixed per tag (rendered once per tag, see
    /// [`SplunkHecSender::tag_parts`]), the event text escaped straight into the body.
    fn envelope(&mut self, out: &mut Vec<u8>, e: EventRef<'_>) {
        let secs = e.time_ms.div_euclid(1000);
        let ms = e.time_ms.rem_euclid(1000);
        let _ = write!(out, "{{\"time\":{secs}.{ms:03}");
        let parts = self.tag_parts(e.tag);
        out.extend_from_slice(parts.before_event.as_bytes());
        push_json_str(out, e.message);
        out.extend_from_slice(parts.fields.as_bytes());
        if let (Some(name), Some(id)) = (
            &self.cfg.event_id_field,
            event_id(&self.id_needle, e.message),
        ) {
            out.push(b',');
            push_json_str(out, name);
            out.push(b':');
            push_json_str(out, id);
        }
        out.extend_from_slice(b"}}\n");
    }

    /// The envelope parts fixed for events of `tag` (the last tag's are kept: a stream's events mostly share one).
    fn tag_parts(&mut self, tag: &str) -> &TagParts {
        match &mut self.tag_parts {
            Some(parts) if parts.tag == tag => {}
            slot => *slot = Some(TagParts::render(&self.cfg, tag)),
        }
        self.tag_parts.as_ref().expect("rendered above")
    }

    fn finalize_current(&mut self) {
        if !self.current.events.is_empty() {
            let post = std::mem::replace(&mut self.current, Post::new());
            self.ready.push_back(post);
        }
    }

    fn stage(&mut self, batch: Batch) {
        let key = self.next_key;
        self.next_key += 1;
        let events = batch.events.clone();
        self.held.insert(
            key,
            Held {
                batch,
                remaining: 0,
            },
        );
        if events.is_empty() {
            // Nothing to deliver: complete right away.
            if let Some(h) = self.held.remove(&key) {
                h.batch.complete();
            }
            return;
        }
        for e in events.iter() {
            if self.current.events.is_empty() {
                self.current.opened = Instant::now();
            }
            let start = self.current.body.len();
            let mut body = std::mem::take(&mut self.current.body);
            self.envelope(&mut body, e);
            self.current.body = body;
            let end = self.current.body.len();
            self.current.events.push((start, end, key));
            if self.current.entries.last() != Some(&key) {
                self.current.entries.push(key);
                self.held.get_mut(&key).expect("held above").remaining += 1;
            }
            if self.current.body.len() >= self.cfg.batch_max_bytes {
                self.finalize_current();
            }
        }
    }

    /// One post is confirmed (acknowledged, accepted without ack, or its bad event set aside).
    fn confirm(&mut self, post: &Post) {
        for key in &post.entries {
            let done = match self.held.get_mut(key) {
                Some(h) => {
                    h.remaining -= 1;
                    h.remaining == 0
                }
                None => false,
            };
            if done {
                if let Some(h) = self.held.remove(key) {
                    h.batch.complete();
                    self.counters.completed_entries += 1;
                }
            }
        }
    }

    /// Builds the sub-post of `post` holding events `range`.
    fn sub_post(&mut self, post: &Post, range: std::ops::Range<usize>) -> Post {
        let mut p = Post::new();
        for &(s, e, key) in &post.events[range] {
            let start = p.body.len();
            p.body.extend_from_slice(&post.body[s..e]);
            p.events.push((start, p.body.len(), key));
            if p.entries.last() != Some(&key) {
                p.entries.push(key);
                if let Some(h) = self.held.get_mut(&key) {
                    h.remaining += 1;
                }
            }
        }
        p
    }

    /// A post was refused as invalid: split it to isolate the bad event(s); a single bad event is set aside.
    fn isolate(&mut self, post: Post, reason: String, index: Option<usize>) {
        let n = post.events.len();
        if n == 1 {
            let (s, e, key) = post.events[0];
            let entry = self
                .held
                .get(&key)
                .map(|h| h.batch.entry_id().to_owned())
                .unwrap_or_default();
            self.reject.reject(&Rejected {
                origin: format!("{}, entry {entry}", self.origin),
                reason: reason.clone(),
                payload: post.body[s..e].to_vec(),
            });
            self.counters.rejected_events += 1;
            self.confirm(&post);
            return;
        }
        let parts: Vec<std::ops::Range<usize>> = match index {
            Some(i) if i < n => [0..i, i..i + 1, i + 1..n]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect(),
            _ => vec![0..n / 2, n / 2..n],
        };
        let subs: Vec<Post> = parts.into_iter().map(|r| self.sub_post(&post, r)).collect();
        // The sub-posts hold the entries now; release the original's share.
        self.confirm(&post);
        for p in subs.into_iter().rev() {
            self.ready.push_front(p);
        }
    }

    /// A POST to `url` with the token and this sender's channel.
    fn authorized_post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.agent
            .post(url)
            .header(
                "Authorization",
                &format!("Splunk {}", self.cfg.token.expose()),
            )
            .header("X-Splunk-Request-Channel", &self.channel)
    }

    fn request(
        &mut self,
        path: &str,
        body: &[u8],
        gzip: bool,
    ) -> Result<(u16, Answer, Option<Duration>), SendError> {
        let url = format!("{}{path}", self.cfg.url);
        let mut req = self
            .authorized_post(&url)
            .header("Content-Type", "application/json");
        let payload: &[u8] = if gzip {
            self.zbuf.clear();
            self.gzip.member(body, &mut self.zbuf);
            req = req.header("Content-Encoding", "gzip");
            &self.zbuf
        } else {
            body
        };
        let mut resp = req.send(payload).map_err(|e| SendError::Write {
            destination: url.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let answer: Answer = serde_json::from_str(&text).unwrap_or(Answer {
            text,
            ..Answer::default()
        });
        Ok((status, answer, retry_after))
    }

    fn post(&mut self, body: &[u8]) -> Result<Outcome, SendError> {
        let (status, a, retry_after) =
            self.request("/services/collector/event", body, self.cfg.gzip)?;
        self.counters.posts += 1;
        let destination = self.cfg.url.clone();
        let reason = format!(
            "code {}: {}",
            a.code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            a.text
        );
        match status {
            200..=299 => Ok(Outcome::Accepted(a.ack_id)),
            400 if matches!(a.code, Some(6 | 7 | 12 | 13)) => Ok(Outcome::Invalid {
                reason: format!("status 400, {reason}"),
                index: a.invalid_event_number,
            }),
            429 | 503 => Err(SendError::Busy {
                destination,
                status,
                reason,
                retry_after,
            }),
            401 | 403 => Err(SendError::Rejected {
                destination,
                status,
                reason: format!(
                    "{reason}: the HEC token of output {} is refused; set outputs.{}.config.token to a valid, \
                     enabled token of this collector (events are held until it is accepted)",
                    self.output, self.output
                ),
            }),
            400..=499 => Err(SendError::Rejected {
                destination,
                status,
                reason,
            }),
            _ => Err(SendError::Busy {
                destination,
                status,
                reason,
                retry_after,
            }),
        }
    }

    fn health_check(&mut self) {
        if self.health_checked {
            return;
        }
        self.health_checked = true;
        let url = format!("{}/services/collector/health", self.cfg.url);
        match self.agent.get(&url).call() {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                let a: Answer = serde_json::from_str(&text).unwrap_or_default();
                if status == 200 {
                    log::info!(
                        "{} -> Splunk HEC {} is healthy (code {})",
                        self.name,
                        self.cfg.url,
                        a.code.unwrap_or(-1)
                    );
                } else {
                    log::warn!(
                        "{} -> Splunk HEC {} is NOT healthy: status {status}, code {}, \"{}\"; events are held until it accepts them",
                        self.name,
                        self.cfg.url,
                        a.code.unwrap_or(-1),
                        a.text
                    );
                }
            }
            Err(e) => log::warn!(
                "{} -> Splunk HEC {} health check failed: {e}",
                self.name,
                self.cfg.url
            ),
        }
    }

    /// Sends what is due: the current post when full or old enough, then every ready post (within the
    /// acknowledgement window).
    fn pump(&mut self) -> Result<(), SendError> {
        if !self.current.events.is_empty()
            && (self.current.body.len() >= self.cfg.batch_max_bytes
                || self.current.opened.elapsed() >= self.cfg.batch_max_wait)
        {
            self.finalize_current();
        }
        while let Some(mut post) = self.ready.pop_front() {
            if self.cfg.use_ack && self.awaiting.len() >= self.cfg.max_pending_posts {
                self.ready.push_front(post);
                break;
            }
            match self.post(&post.body) {
                Ok(Outcome::Accepted(ack)) => match (self.cfg.use_ack, ack) {
                    (true, Some(id)) => {
                        self.note_ack_id(id);
                        let now = Instant::now();
                        post.sent = Some(now);
                        self.awaiting.insert(id, post);
                        self.pacer.posted(now);
                    }
                    (true, None) => {
                        log::warn!("{} -> the collector returned no ackId (acknowledgement disabled on the token?)", self.name);
                        self.confirm(&post);
                    }
                    (false, _) => self.confirm(&post),
                },
                Ok(Outcome::Invalid { reason, index }) => self.isolate(post, reason, index),
                Err(e) => {
                    self.ready.push_front(post);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// An ackId not above the last one means the indexer started its ids again on this channel (a restart lost
    /// its acknowledgements): the posts still awaited will never be acknowledged, and their ids now name new posts,
    /// so they are posted again (their events may arrive twice; none is lost).
    fn note_ack_id(&mut self, id: u64) {
        if self.last_ack_id.is_some_and(|last| id <= last) && !self.awaiting.is_empty() {
            let posts: Vec<Post> = self.awaiting.drain().map(|(_, p)| p).collect();
            let events: usize = posts.iter().map(|p| p.events.len()).sum();
            log::warn!(
                "{} -> Splunk HEC {} gave ackId {id} after {}: it restarted and lost its acknowledgements; posting \
                 the {} unacknowledged posts ({events} events) again",
                self.name,
                self.cfg.url,
                self.last_ack_id.unwrap_or_default(),
                posts.len()
            );
            self.counters.reposts_after_indexer_restart += posts.len() as u64;
            self.ready.extend(posts);
        }
        self.last_ack_id = Some(id);
    }

    /// Polls the acknowledgement endpoint for every awaited post when the pacer says it is time (or at once with
    /// `force`); re-posts the ones that timed out.
    fn poll_acks(&mut self, force: bool) -> Result<(), SendError> {
        if self.awaiting.is_empty() {
            self.pacer.idle();
            return Ok(());
        }
        let now = Instant::now();
        if !force && self.pacer.due_in(now).is_some_and(|d| !d.is_zero()) {
            return Ok(());
        }
        let acked_before = self.counters.acked_posts;
        self.request_acks();
        self.pacer
            .polled(Instant::now(), self.counters.acked_posts > acked_before);
        self.repost_expired();
        if self.awaiting.is_empty() {
            self.pacer.idle();
        }
        Ok(())
    }

    /// One poll of the acknowledgement endpoint: confirms the posts acknowledged. A failed poll is only logged
    /// (DEBUG): the posts stay awaited and the next poll asks again.
    fn request_acks(&mut self) {
        let mut ids: Vec<u64> = self.awaiting.keys().copied().collect();
        ids.sort_unstable();
        let body = serde_json::to_vec(&serde_json::json!({ "acks": ids })).expect("json");
        let url = format!(
            "{}/services/collector/ack?channel={}",
            self.cfg.url, self.channel
        );
        let resp = self
            .authorized_post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..]);
        match resp {
            Ok(mut r) if r.status().as_u16() == 200 => {
                let text = r.body_mut().read_to_string().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(acks) = v.get("acks").and_then(|a| a.as_object()) {
                    for (id, ok) in acks {
                        if ok.as_bool() == Some(true) {
                            if let Some(post) = id
                                .parse::<u64>()
                                .ok()
                                .and_then(|id| self.awaiting.remove(&id))
                            {
                                self.counters.acked_posts += 1;
                                self.confirm(&post);
                            }
                        }
                    }
                }
            }
            Ok(r) => log::debug!(
                "{} -> ack poll answered status {}",
                self.name,
                r.status().as_u16()
            ),
            Err(e) => log::debug!("{} -> ack poll failed: {e}", self.name),
        }
    }

    /// Posts not acknowledged within `ack_timeout_in_seconds` are posted again.
    fn repost_expired(&mut self) {
        let timeout = self.cfg.ack_timeout;
        let expired: Vec<u64> = self
            .awaiting
            .iter()
            .filter(|(_, p)| p.sent.is_some_and(|s| s.elapsed() >= timeout))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(post) = self.awaiting.remove(&id) {
                log::warn!(
                    "{} -> ackId {id} not acknowledged after {} s: posting its {} events again",
                    self.name,
                    timeout.as_secs(),
                    post.events.len()
                );
                self.counters.reposts_after_ack_timeout += 1;
                self.ready.push_back(post);
            }
        }
    }

    /// The window of posts awaiting acknowledgement is full: polls at the indexer's pace until room is made, for at
    /// most `ack_poll_interval_in_ms`; then the sender is busy (the pool worker waits and calls again).
    fn wait_for_room(&mut self) -> Result<(), SendError> {
        let give_up = Instant::now() + self.cfg.ack_poll_interval;
        loop {
            self.poll_acks(false)?;
            self.pump()?;
            if self.pending_posts() < self.cfg.max_pending_posts {
                return Ok(());
            }
            let now = Instant::now();
            let wait = self
                .pacer
                .due_in(now)
                .unwrap_or(self.cfg.ack_poll_min_interval);
            if now + wait > give_up || self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(SendError::Busy {
                    destination: self.cfg.url.clone(),
                    status: 0,
                    reason: format!(
                        "{} posts wait for indexer acknowledgement",
                        self.pending_posts()
                    ),
                    retry_after: self.pacer.due_in(now),
                });
            }
            std::thread::sleep(wait);
        }
    }

    fn pending_posts(&self) -> usize {
        self.ready.len() + self.awaiting.len()
    }
}

impl Sender for SplunkHecSender {
    fn send(&mut self, batches: &mut Vec<Batch>) -> Result<(), SendError> {
        self.health_check();
        if self.pending_posts() >= self.cfg.max_pending_posts {
            self.wait_for_room()?;
        }
        for b in batches.drain(..) {
            self.stage(b);
        }
        self.pump()
    }

    fn poll(&mut self) -> Result<(), SendError> {
        self.health_check();
        self.pump()?;
        self.poll_acks(false)
    }

    fn in_flight(&self) -> usize {
        self.held.len()
    }

    fn poll_due_in(&self) -> Option<Duration> {
        let now = Instant::now();
        let batch_due = (!self.current.events.is_empty()).then(|| {
            self.cfg
                .batch_max_wait
                .saturating_sub(self.current.opened.elapsed())
        });
        [self.pacer.due_in(now), batch_due]
            .into_iter()
            .flatten()
            .min()
    }

    fn is_connection_open(&self) -> bool {
        self.health_checked
    }

    fn close(&mut self) {
        self.finalize_current();
        let _ = self.pump();
        let _ = self.poll_acks(true);
        if !self.held.is_empty() {
            log::info!(
                "{} -> {} entries not acknowledged at stop: they stay in Redis",
                self.name,
                self.held.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AckPacer;
    use std::time::{Duration, Instant};

    #[test]
    fn ack_polls_follow_the_indexer_and_back_off_when_nothing_comes() {
        let ms = Duration::from_millis;
        let mut p = AckPacer::new(ms(5), ms(500));
        let t0 = Instant::now();
        assert_eq!(p.due_in(t0), None, "nothing awaited, no poll");
        p.posted(t0);
        assert_eq!(p.due_in(t0), Some(ms(5)), "first poll soon after a post");
        // Polls that bring nothing double the wait, up to the longest.
        let mut waits = Vec::new();
        for _ in 0..9 {
            p.polled(t0, false);
            waits.push(p.due_in(t0).unwrap().as_millis());
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 500, 500, 500]);
        // A new post does not bring a backed-off poll closer than the current wait.
        p.posted(t0);
        assert_eq!(p.due_in(t0), Some(ms(500)));
        // Acknowledgements coming: back to the shortest interval.
        p.polled(t0, true);
        assert_eq!(p.due_in(t0), Some(ms(5)));
        p.idle();
        assert_eq!(p.due_in(t0), None);
    }
}
