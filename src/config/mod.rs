//! The configuration file (`globals`, `inputs`, `outputs`, as in the seeds) and the validation vocabulary.
//!
//! The kernel reads the file and `globals`; the input and output crates read their own sections through
//! [`Section`], so that every problem of the whole file is reported in one pass.
//!
//! # Declaring a key (once)
//! Every key is declared once, as a [`Key`] in the [`KeySet`] of its dictionary, next to the config struct that
//! reads it ([`keys`]); the reader, `logferry validate`, `logferry config-reference` and the docs' tables all use
//! that declaration, so nothing else repeats its default, range or meaning:
//! ```ignore
//! const BATCH_SIZE: Key = Key::int("batch_size", 100, 1, 10_000, "events per request");   // default, min, max
//! const REGION: Key = Key::text("region", "the service's region").required();
//! const FORMAT: Key = Key::one_of("format", "json", &["json", "csv"], "how records are parsed");
//! const SECRET: Key = Key::text("secret_key", "the API secret").required().secret();
//! const PROXY: Key = Key::rejected("proxy", "proxies are not supported: ...");   // documented by the seeds, refused
//! pub static MY_SERVICE_KEYS: KeySet = KeySet {
//!     id: "inputs.aws.my_service",                       // the docs region `<!-- generated: inputs.aws.my_service -->`
//!     place: "`inputs.<name>.services.<service>` with `types: [my_service]`",
//!     groups: &[&[BATCH_SIZE, REGION, FORMAT, SECRET, PROXY], &SHARED_KEYS],   // shared groups are consts too
//! };
//! // reading: the declaration gives the default, the range check and the error message
//! let batch: usize = s.get_int(&BATCH_SIZE);           // get_int_or (computed default), get_int_opt (no default)
//! let region = s.get_text(&REGION);                    // Missing error when required and absent
//! let format = s.get_choice(&FORMAT);
//! s.refuse_rejected(&MY_SERVICE_KEYS);                 // every rejected key present is an error with its reason
//! ```
//! Only declared keys can be read: every public read of [`Section`] takes a `&Key` (`get_*`; `get_value` for a
//! value whose format the component checks itself, `has` for presence, `accept_declared` for keys another reader
//! handles), and the string-keyed reads are private to the reader. So the converse of the unit test
//! `every_declared_key_is_read` (supervisor/src/reference.rs) holds by construction: every key read is declared;
//! a key read without a declaration does not compile. The names of a dictionary of dictionaries (`inputs`,
//! `outputs`, `services`) are the user's, read with [`Section::entries`]; the file's top level is [`root_keys`].
//!
//! Register the set where the kind is registered (`OutputKind::keys`, `InputKind::keys`), add a
//! `<!-- generated: <id> -->` / `<!-- end generated -->` region to the docs page and run
//! `cargo run -p logferry-supervisor -- config-reference --write-docs docs`; `tests/config_reference.rs` fails while a
//! table differs from the declarations. Field doc comments name the key (`/// Key \`batch_size\`.`) instead of
//! repeating its default and range.

pub mod error;
pub mod keys;
pub mod reader;
pub mod references;

pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, ConfigScope};
pub use keys::{Key, KeySet};
pub use reader::{DeclaredInt, Diagnostics, FromValue, Secret, Section};

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The parsed file, before validation.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The file's values, `${env:...}`/`${file:...}` references resolved.
    pub root: Value,
    /// One problem per reference that could not be resolved ([`references`]); the field keeps its reference text.
    pub reference_problems: Vec<ConfigError>,
}

impl ConfigFile {
    /// Reads a YAML or JSON file (JSON is valid YAML, but `.json` files are parsed as JSON for exact errors),
    /// resolves its `${env:NAME}` and `${file:PATH}` references ([`references`]), and registers its secrets, the
    /// resolved values included, for redaction ([`crate::redact`]).
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::FileNotReadable,
                "",
                format!("cannot read \"{}\": {e}", path.display()),
            )
        })?;
        let mut root = Self::parse(&text, path.extension().is_some_and(|e| e == "json"))?;
        let base_dir = Self::dir_of(path);
        let resolution = references::resolve(&mut root, &base_dir, &|name| std::env::var(name));
        // Before anything can log a value of the file (validation messages included).
        for (field, value) in &resolution.resolved {
            crate::redact::register_secret_at(value, field);
        }
        crate::redact::register_config_secrets(&root);
        Ok(ConfigFile {
            path: path.to_path_buf(),
            root,
            reference_problems: resolution.problems,
        })
    }

    /// The problems of validation (`found`) with the references' problems first; a field whose reference could
    /// not be resolved is reported once, for its reference.
    pub fn with_reference_problems(&self, found: Vec<ConfigError>) -> Vec<ConfigError> {
        let mut problems = self.reference_problems.clone();
        problems.extend(
            found
                .into_iter()
                .filter(|p| !self.reference_problems.iter().any(|r| r.path == p.path)),
        );
        problems
    }

    pub fn parse(text: &str, json: bool) -> Result<Value, ConfigError> {
        let parsed: Result<Value, String> = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())
        };
        let root = parsed.map_err(|e| {
            ConfigError::new(ConfigErrorKind::Syntax, "", format!("invalid syntax: {e}"))
        })?;
        if !root.is_object() {
            return Err(ConfigError::new(
                ConfigErrorKind::Syntax,
                "",
                "the file must contain a dictionary with globals, inputs and outputs",
            ));
        }
        Ok(root)
    }

    /// Directory that relative paths in the file (certificates, state) are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        Self::dir_of(&self.path)
    }

    fn dir_of(path: &Path) -> PathBuf {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The root section reader; `globals`, `inputs` and `outputs` are read from it.
    pub fn root_section<'a>(&'a self, diagnostics: &Diagnostics) -> Section<'a> {
        Section::new(
            "",
            self.root.as_object().expect("checked at parse"),
            diagnostics.clone(),
            &self.base_dir(),
        )
    }
}

/// Where Redis (queue and state) lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Persistence {
    /// An external Redis, `redis://host:port/db` or `unix:///path`.
    Redis { url: String },
    /// A `redis-server` run by the supervisor, with append-only persistence in `directory`.
    Embedded { directory: PathBuf },
}

/// Environment variable holding the default of `globals.stop_drain_timeout_in_sec` (used when the file sets none).
pub const STOP_DRAIN_DEFAULT_VAR: &str = "LOGFERRY_STOP_DRAIN_TIMEOUT_IN_SEC";

/// The keys of `globals`.
pub mod globals_keys {
    use super::keys::{Default, Key, KeySet};

    pub const DEBUG: Key = Key::bool("debug", false, "DEBUG log lines").aliases(&["debug_status"]);
    pub const ID: Key = Key::format(
        "id",
        "1..=32 characters (or a number)",
        "collector id; prefixes every Redis key (`logferry:<id>:`)",
    )
    .with_default(Default::Text("1"));
    pub const NAME: Key = Key::text_or("name", "logferry", "shown in the start line");
    pub const PERSISTENCE: Key = Key::dict(
        "persistence",
        Some(&PERSISTENCE_KEYS),
        "where Redis (queue and state) lives; default: an embedded redis-server with its files in `state`",
    );
    pub const QUEUE_MAX_SIZE_IN_MESSAGES: Key = Key::int(
        "queue_max_size_in_messages",
        10_000,
        1,
        100_000,
        "events waiting per stream before pullers block: each push is checked against this and `queue_max_size_in_mb` \
         with the size after every push of every puller and worker thread of the process (the check and the push hold \
         the stream, one push at a time per process), so the bound holds with any number of pullers; an empty stream \
         takes any push. A waiting puller shows as `waiting_for_queue` in `logferry status` and `/metrics`, and logs \
         `Queue ... is full (limits: ...): waiting for the queue until the output makes room` once a minute",
    );
    pub const QUEUE_MAX_SIZE_IN_MB: Key = Key::int(
        "queue_max_size_in_mb",
        32,
        1,
        5120,
        "MB waiting per stream before pullers block (checked with `queue_max_size_in_messages`, the same way). 32 MB \
         keeps the default 10,000 events of up to 3.2 KB each, so ordinary logs are bounded by their count, and caps \
         the embedded Redis's memory with large events: 24 KB events through Redis measured 380 MiB of Redis memory \
         (PSS, rewrites included) and 6.1 CPU s per GiB with the former default of 256, 80 MiB and 4.4 s with 32 \
         (`bench/redis/options.py`; docs/aws.md, \"Redis's share\")",
    );
    pub const QUEUE_WRAP_MAX_SIZE_IN_MESSAGES: Key = Key::int(
        "queue_wrap_max_size_in_messages",
        100,
        1,
        500,
        "events per stream entry (wrap)",
    );
    pub const QUEUE_COMPRESSION: Key = Key::one_of(
        "queue_compression",
        "none",
        &["none", "lz4"],
        "`lz4`: wraps stored as LZ4 blocks (entry field `z`) when that saves an eighth of them; Redis then keeps, \
         appends to its AOF and sends about half the bytes (measured: Redis CPU -45 to -51 %, all processes' peak \
         memory -17 %), but the InputProcess spends more on compressing than Redis saves (all processes' CPU +11 to \
         +25 % on JSON lines). Entries of either format are always read, so the key can change between runs",
    );
    pub const SENDER_STATS_PERIOD_IN_SEC: Key = Key::int(
        "sender_stats_period_in_sec",
        300,
        1,
        1800,
        "period of the sender statistics lines",
    );
    pub const MEMORY_REPORT_PERIOD_IN_SEC: Key = Key::int(
        "memory_report_period_in_sec",
        300,
        1,
        86_400,
        "period of the `[GC]` line of every process; each report also returns to the system the freed heap a process \
         keeps between reports (up to 64 MiB, for its next reads)",
    );
    pub const STOP_DRAIN_TIMEOUT_IN_SEC: Key = Key::int(
        "stop_drain_timeout_in_sec",
        30,
        0,
        3600,
        "how long a controlled stop drains the queue: the whole stop ends within it + 2 s ([Stop, restarts, \
         stalls](#stop-restarts-stalls)); an invalid `LOGFERRY_STOP_DRAIN_TIMEOUT_IN_SEC` is a problem of this key \
         naming the variable",
    )
    .computed_default(
        "30 (the environment variable `LOGFERRY_STOP_DRAIN_TIMEOUT_IN_SEC` when set: 7 in the container image)",
    );
    pub const STALL_WARNING_AFTER_IN_SEC: Key = Key::int(
        "stall_warning_after_in_sec",
        60,
        1,
        3600,
        "a puller, consumer or sender that has work and makes no progress for this long is named in a WARNING line \
         with what it waits on (and again in an INFO line when it moves)",
    );
    pub const THRESHOLD_FOR_USING_GZIP_IN_TRANSPORT_LAYER: Key = Key::float(
        "threshold_for_using_gzip_in_transport_layer",
        1.1,
        "Devo gzip switch: on when the mean internal queue usage reaches it (negative: always; > 1: never)",
    );
    pub const COMPRESSION_LEVEL: Key = Key::int("compression_level", 6, 0, 9, "Devo gzip level");
    pub const COMPRESSION_BUFFER_IN_BYTES: Key = Key::int(
        "compression_buffer_in_bytes",
        51_200,
        1024,
        16_777_216,
        "Devo gzip member size",
    );
    pub const INTERNAL_EVENTS_LEVEL: Key = Key::one_of(
        "internal_events_level",
        "INFO",
        &["INFO", "WARNING", "ERROR"],
        "the least severe log line also shipped as an internal event: INFO as the seeds; WARNING ships only warnings \
         and errors (the log file keeps every line)",
    );
    pub const METRICS: Key = Key::dict(
        "metrics",
        Some(&METRICS_KEYS),
        "serve `/metrics` (Prometheus), `/health` and `/ready` over HTTP from a MetricsProcess ([Status, metrics, \
         health](#status-metrics-health)); without this section nothing listens",
    );

    pub static GLOBALS_KEYS: KeySet = KeySet {
        id: "globals",
        place: "`globals`",
        groups: &[&[
            DEBUG,
            ID,
            NAME,
            PERSISTENCE,
            QUEUE_MAX_SIZE_IN_MESSAGES,
            QUEUE_MAX_SIZE_IN_MB,
            QUEUE_WRAP_MAX_SIZE_IN_MESSAGES,
            QUEUE_COMPRESSION,
            SENDER_STATS_PERIOD_IN_SEC,
            MEMORY_REPORT_PERIOD_IN_SEC,
            STOP_DRAIN_TIMEOUT_IN_SEC,
            STALL_WARNING_AFTER_IN_SEC,
            THRESHOLD_FOR_USING_GZIP_IN_TRANSPORT_LAYER,
            COMPRESSION_LEVEL,
            COMPRESSION_BUFFER_IN_BYTES,
            INTERNAL_EVENTS_LEVEL,
            METRICS,
        ]],
    };

    pub const PERSISTENCE_TYPE: Key = Key::one_of(
        "type",
        "embedded",
        &["embedded", "redis"],
        "embedded: the supervisor runs redis-server; redis: use `url`",
    );
    pub const PERSISTENCE_DIRECTORY: Key = Key::path(
        "directory",
        "state",
        "embedded: Redis append-only file and socket (the AOF is rewritten once it passes 256 MB and has doubled: \
         allow about 3 x the queued data, and at least 1 GB, of disk)",
    );
    pub const PERSISTENCE_URL: Key = Key::format(
        "url",
        "redis://, unix://",
        "redis: the server (mandatory), e.g. `redis://:password@host:6379/0`, `redis://user:password@host:6379/0`, \
         `unix:///run/redis.sock?db=0&pass=password`. TLS (`rediss://`) is rejected: reach a TLS-only Redis through \
         a local TLS tunnel",
    );
    pub static PERSISTENCE_KEYS: KeySet = KeySet {
        id: "globals.persistence",
        place: "`globals.persistence`",
        groups: &[&[PERSISTENCE_TYPE, PERSISTENCE_DIRECTORY, PERSISTENCE_URL]],
    };

    pub const METRICS_LISTEN: Key = Key::format(
        "listen",
        "ip:port",
        "the address the HTTP endpoint listens on, e.g. `127.0.0.1:9464` (`0.0.0.0:9464` in a container). A port \
         already in use stops the collector at start",
    )
    .required();
    pub static METRICS_KEYS: KeySet = KeySet {
        id: "globals.metrics",
        place: "`globals.metrics`",
        groups: &[&[METRICS_LISTEN]],
    };
}

/// The file's top-level keys (as in the seeds).
pub mod root_keys {
    use super::globals_keys::GLOBALS_KEYS;
    use super::Key;

    pub const GLOBALS: Key = Key::dict(
        "globals",
        Some(&GLOBALS_KEYS),
        "the collector's own settings",
    );
    pub const INPUTS: Key = Key::dict("inputs", None, "the inputs, by name").required();
    pub const OUTPUTS: Key = Key::dict("outputs", None, "the outputs, by name").required();
}

/// The `globals` section; each field reads the key of the same name declared in [`globals_keys`].
#[derive(Debug, Clone)]
pub struct Globals {
    /// Key `debug` (or `debug_status`).
    pub debug: bool,
    /// Collector id, used in Redis key prefixes and internal events.
    pub id: String,
    pub name: String,
    /// Key `persistence`.
    pub persistence: Persistence,
    pub queue_max_size_in_messages: u64,
    pub queue_max_size_in_mb: u64,
    pub queue_wrap_max_size_in_messages: usize,
    /// `queue_compression: lz4`.
    pub queue_compression_lz4: bool,
    pub sender_stats_period_in_sec: u64,
    pub memory_report_period_in_sec: u64,
    pub stop_drain_timeout_in_sec: u64,
    pub stall_warning_after_in_sec: u64,
    pub threshold_for_using_gzip_in_transport_layer: f64,
    pub compression_level: u32,
    pub compression_buffer_in_bytes: usize,
    pub internal_events_level: log::Level,
    /// Key `metrics`: `None` when the section is absent (nothing listens).
    pub metrics: Option<MetricsConfig>,
}

/// The `globals.metrics` section.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Key `listen`.
    pub listen: std::net::SocketAddr,
}

impl Globals {
    pub fn read(s: &Section<'_>) -> Globals {
        use globals_keys as k;
        let id = match s.get_raw(&k::ID) {
            None => "1".to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(v)) if !v.is_empty() && v.len() <= 32 => v.clone(),
            Some(_) => {
                s.error(
                    k::ID.name,
                    ConfigErrorKind::InvalidValue,
                    "must be a number or a string of 1..=32 characters",
                );
                "1".to_owned()
            }
        };
        let internal_events_level = match s.get_choice(&k::INTERNAL_EVENTS_LEVEL).as_str() {
            "WARNING" => log::Level::Warn,
            "ERROR" => log::Level::Error,
            _ => log::Level::Info,
        };
        Globals {
            debug: s.get_bool(&k::DEBUG),
            id,
            name: s.get_text(&k::NAME).unwrap_or_default(),
            persistence: Self::read_persistence(s),
            queue_max_size_in_messages: s.get_int(&k::QUEUE_MAX_SIZE_IN_MESSAGES),
            queue_max_size_in_mb: s.get_int(&k::QUEUE_MAX_SIZE_IN_MB),
            queue_wrap_max_size_in_messages: s.get_int(&k::QUEUE_WRAP_MAX_SIZE_IN_MESSAGES),
            queue_compression_lz4: s.get_choice(&k::QUEUE_COMPRESSION) == "lz4",
            sender_stats_period_in_sec: s.get_int(&k::SENDER_STATS_PERIOD_IN_SEC),
            memory_report_period_in_sec: s.get_int(&k::MEMORY_REPORT_PERIOD_IN_SEC),
            stop_drain_timeout_in_sec: s.get_int_or(
                &k::STOP_DRAIN_TIMEOUT_IN_SEC,
                Self::stop_drain_default(s, std::env::var(STOP_DRAIN_DEFAULT_VAR)),
            ),
            stall_warning_after_in_sec: s.get_int(&k::STALL_WARNING_AFTER_IN_SEC),
            threshold_for_using_gzip_in_transport_layer: s
                .get_float(&k::THRESHOLD_FOR_USING_GZIP_IN_TRANSPORT_LAYER),
            compression_level: s.get_int(&k::COMPRESSION_LEVEL),
            compression_buffer_in_bytes: s.get_int(&k::COMPRESSION_BUFFER_IN_BYTES),
            internal_events_level,
            metrics: Self::read_metrics(s),
        }
    }

    /// The default of `stop_drain_timeout_in_sec`: 30 s, or the environment variable [`STOP_DRAIN_DEFAULT_VAR`]
    /// (the container image sets 7 s, so that its stop fits a plain `docker stop`'s 10 s); a value that is not
    /// 0..=3600 is a problem of the key, naming the variable.
    fn stop_drain_default(s: &Section<'_>, from_env: Result<String, std::env::VarError>) -> u64 {
        const BUILT_IN: u64 = 30;
        let Ok(text) = from_env else {
            return BUILT_IN;
        };
        match text.trim().parse::<u64>() {
            Ok(seconds) if seconds <= 3600 => seconds,
            _ => {
                s.error(
                    globals_keys::STOP_DRAIN_TIMEOUT_IN_SEC.name,
                    ConfigErrorKind::InvalidValue,
                    format!(
                        "its default from the environment, {STOP_DRAIN_DEFAULT_VAR}=\"{text}\", is not a number of \
                         seconds in 0..=3600"
                    ),
                );
                BUILT_IN
            }
        }
    }

    fn read_metrics(s: &Section<'_>) -> Option<MetricsConfig> {
        let m = s.get_section(&globals_keys::METRICS)?;
        let listen = m.get_text(&globals_keys::METRICS_LISTEN).and_then(|text| match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                m.error(
                    globals_keys::METRICS_LISTEN.name,
                    ConfigErrorKind::InvalidValue,
                    format!("\"{text}\" is not an address and port such as 127.0.0.1:9464 or 0.0.0.0:9464"),
                );
                None
            }
        });
        m.finish();
        listen.map(|listen| MetricsConfig { listen })
    }

    fn read_persistence(s: &Section<'_>) -> Persistence {
        use globals_keys as k;
        let default_dir = s.base_dir().join("state");
        let Some(p) = s.get_section(&k::PERSISTENCE) else {
            return Persistence::Embedded {
                directory: default_dir,
            };
        };
        let kind = p.get_choice(&k::PERSISTENCE_TYPE);
        let result = if kind == "redis" {
            let url: Option<String> = p.get_required(&k::PERSISTENCE_URL);
            if let Some(u) = &url {
                if u.starts_with("rediss://") {
                    p.error(
                        k::PERSISTENCE_URL.name,
                        ConfigErrorKind::InvalidValue,
                        "TLS to Redis (rediss://) is not supported: use redis:// or unix:// (a TLS-only Redis \
                         through a local TLS tunnel)",
                    );
                } else if !(u.starts_with("redis://") || u.starts_with("unix://")) {
                    p.error(
                        k::PERSISTENCE_URL.name,
                        ConfigErrorKind::InvalidValue,
                        "must start with redis:// or unix://",
                    );
                }
            }
            Persistence::Redis {
                url: url.unwrap_or_default(),
            }
        } else {
            let dir = p
                .get_text(&k::PERSISTENCE_DIRECTORY)
                .map(|d| s.base_dir().join(d))
                .unwrap_or(default_dir);
            if p.has(&k::PERSISTENCE_URL) {
                p.error(
                    k::PERSISTENCE_URL.name,
                    ConfigErrorKind::Conflict,
                    "url is only valid with type: redis",
                );
            }
            Persistence::Embedded { directory: dir }
        };
        p.finish();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(yaml: &str) -> (Globals, Vec<ConfigError>) {
        let root = ConfigFile::parse(yaml, false).unwrap();
        let file = ConfigFile {
            path: PathBuf::from("/etc/lf/c.yaml"),
            root,
            reference_problems: Vec::new(),
        };
        let d = Diagnostics::default();
        let r = file.root_section(&d);
        let g = Globals::read(&r.get_section(&root_keys::GLOBALS).unwrap());
        (g, d.take())
    }

    #[test]
    fn defaults_follow_the_reference() {
        let (g, errs) = globals("globals: {}\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(g.queue_max_size_in_messages, 10_000);
        assert_eq!(g.queue_wrap_max_size_in_messages, 100);
        assert_eq!(
            g.persistence,
            Persistence::Embedded {
                directory: PathBuf::from("/etc/lf/state")
            }
        );
    }

    #[test]
    fn bad_yaml_is_a_syntax_error() {
        let e = ConfigFile::parse("globals: [unclosed", false).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert!(e.to_string().starts_with("ConfigFileError(11)"));
    }

    #[test]
    fn redis_url_is_plain_or_a_unix_socket() {
        for ok in ["redis://:pw@10.0.0.5:6379/2", "unix:///run/redis.sock?db=1"] {
            let (_, errs) = globals(&format!(
                "globals:\n  persistence: {{type: redis, url: \"{ok}\"}}\n"
            ));
            assert!(errs.is_empty(), "{ok}: {errs:?}");
        }
        for (bad, says) in [
            (
                "rediss://redis.example:6380/0",
                "TLS to Redis (rediss://) is not supported",
            ),
            ("http://redis:6379", "must start with redis:// or unix://"),
        ] {
            let (_, errs) = globals(&format!(
                "globals:\n  persistence: {{type: redis, url: \"{bad}\"}}\n"
            ));
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(errs[0].path, "globals.persistence.url");
            assert_eq!(errs[0].kind, ConfigErrorKind::InvalidValue);
            assert!(errs[0].to_string().contains(says), "{}", errs[0]);
        }
    }

    #[test]
    fn metrics_are_off_by_default_and_listen_is_an_address() {
        let (g, errs) = globals("globals: {}\n");
        assert!(errs.is_empty() && g.metrics.is_none());
        let (g, errs) = globals("globals:\n  metrics: {listen: \"127.0.0.1:9464\"}\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(g.metrics.unwrap().listen.port(), 9464);
        for (bad, kind) in [
            ("{listen: \"localhost\"}", ConfigErrorKind::InvalidValue),
            ("{}", ConfigErrorKind::Missing),
        ] {
            let (g, errs) = globals(&format!("globals:\n  metrics: {bad}\n"));
            assert!(g.metrics.is_none());
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(errs[0].path, "globals.metrics.listen");
            assert_eq!(errs[0].kind, kind);
        }
    }

    #[test]
    fn the_stop_drain_default_may_come_from_the_environment() {
        let root = ConfigFile::parse("globals: {}\n", false).unwrap();
        let map = root["globals"].as_object().unwrap();
        let d = Diagnostics::default();
        let s = Section::new("globals", map, d.clone(), Path::new("/"));
        let not_set = Err(std::env::VarError::NotPresent);
        assert_eq!(Globals::stop_drain_default(&s, not_set), 30);
        assert_eq!(Globals::stop_drain_default(&s, Ok("7".into())), 7);
        assert!(d.is_empty());
        assert_eq!(Globals::stop_drain_default(&s, Ok("7s".into())), 30);
        let errs = d.take();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "globals.stop_drain_timeout_in_sec");
        assert!(
            errs[0]
                .message
                .contains("LOGFERRY_STOP_DRAIN_TIMEOUT_IN_SEC=\"7s\""),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn redis_needs_a_url() {
        let (_, errs) = globals("globals:\n  persistence: {type: redis}\n");
        assert_eq!(errs[0].path, "globals.persistence.url");
        assert_eq!(errs[0].kind, ConfigErrorKind::Missing);
    }
}
