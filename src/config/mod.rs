//! The configuration file (`globals`, `inputs`, `outputs`, as in the seeds) and the validation vocabulary.
//!
//! The kernel reads the file and `globals`; the input and output crates read their own sections through
//! [`Section`], so that every problem of the whole file is reported in one pass.

pub mod error;
pub mod reader;
pub mod references;

pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, ConfigScope};
pub use reader::{Diagnostics, FromValue, Secret, Section};

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

/// The `globals` section.
#[derive(Debug, Clone)]
pub struct Globals {
    /// Debug logging. Key `debug` (or `debug_status`). Default false.
    pub debug: bool,
    /// Collector id, used in Redis key prefixes and internal events. Default "1"; 1..=32 characters.
    pub id: String,
    /// Collector name, shown in logs and internal events. Default "logferry".
    pub name: String,
    /// Redis location: `persistence: {type: embedded, directory: state}` (default) or `{type: redis, url: ...}`.
    pub persistence: Persistence,
    /// Maximum events waiting in one stream before producers block. Default 10000; 1..=100000.
    pub queue_max_size_in_messages: u64,
    /// Maximum MB waiting in one stream before producers block. Default 32 (10,000 events of up to 3.2 KB: the event
    /// bound governs ordinary logs, this one caps Redis's memory with large events); 1..=5120.
    pub queue_max_size_in_mb: u64,
    /// Events per stream entry (wrap). Default 100; 1..=500.
    pub queue_wrap_max_size_in_messages: usize,
    /// Store wraps LZ4-compressed in Redis (`queue_compression: lz4`) or as they are (`none`, default). LZ4 cuts
    /// Redis's CPU, memory and append-only file by about half and costs the InputProcess more than that.
    pub queue_compression_lz4: bool,
    /// Period of the sender statistics lines. Default 300; 60..=1800 (1..=1800 accepted for tests and demos).
    pub sender_stats_period_in_sec: u64,
    /// Period of the `[GC]` memory report. Default 300; 1..=86400.
    pub memory_report_period_in_sec: u64,
    /// Deadline for the output to drain the queue on a controlled stop. Default 30 (or `$LOGFERRY_STOP_DRAIN_TIMEOUT_IN_SEC`,
    /// 7 in the container image); 0..=3600.
    pub stop_drain_timeout_in_sec: u64,
    /// A puller, consumer or sender that has work and makes no progress for this long is named in a WARNING line
    /// (with what it waits on), and again when it moves. Default 60; 1..=3600.
    pub stall_warning_after_in_sec: u64,
    /// Gzip switch for the Devo transport: on when the mean internal queue usage reaches it; negative = always,
    /// above 1 = never. Default 1.1 (never).
    pub threshold_for_using_gzip_in_transport_layer: f64,
    /// Gzip level for compressed transport. Default 6; 0..=9.
    pub compression_level: u32,
    /// Size of one gzip member in compressed transport. Default 51200; 1024..=16777216.
    pub compression_buffer_in_bytes: usize,
    /// The least severe log level also shipped as an internal event: `INFO` (default, as the seeds), `WARNING`
    /// (warnings and errors only) or `ERROR`.
    pub internal_events_level: log::Level,
    /// `metrics: {listen: "127.0.0.1:9464"}`: serve `/metrics`, `/health` and `/ready` over HTTP on that address
    /// (a MetricsProcess started by the supervisor). Default: off.
    pub metrics: Option<MetricsConfig>,
}

/// The `globals.metrics` section.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Address and port the HTTP endpoint listens on (`host:port`, an IP address; `0.0.0.0:9464` for every
    /// interface, e.g. in a container). Required in the section.
    pub listen: std::net::SocketAddr,
}

impl Globals {
    pub fn read(s: &Section<'_>) -> Globals {
        let debug = s
            .optional::<bool>("debug")
            .or_else(|| s.optional("debug_status"))
            .unwrap_or(false);
        let id = match s.raw("id") {
            None => "1".to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(v)) if !v.is_empty() && v.len() <= 32 => v.clone(),
            Some(_) => {
                s.error(
                    "id",
                    ConfigErrorKind::InvalidValue,
                    "must be a number or a string of 1..=32 characters",
                );
                "1".to_owned()
            }
        };
        let name = s.or("name", "logferry".to_owned());
        let persistence = Self::read_persistence(s);
        let internal_events_level = match s
            .one_of(
                "internal_events_level",
                "INFO",
                &["INFO", "WARNING", "ERROR"],
            )
            .as_str()
        {
            "WARNING" => log::Level::Warn,
            "ERROR" => log::Level::Error,
            _ => log::Level::Info,
        };
        Globals {
            debug,
            id,
            name,
            persistence,
            queue_max_size_in_messages: s.in_range(
                "queue_max_size_in_messages",
                10_000,
                1..=100_000,
            ),
            queue_max_size_in_mb: s.in_range("queue_max_size_in_mb", 32, 1..=5120),
            queue_wrap_max_size_in_messages: s.in_range(
                "queue_wrap_max_size_in_messages",
                100,
                1..=500,
            ),
            queue_compression_lz4: s.one_of("queue_compression", "none", &["none", "lz4"]) == "lz4",
            sender_stats_period_in_sec: s.in_range("sender_stats_period_in_sec", 300, 1..=1800),
            memory_report_period_in_sec: s.in_range("memory_report_period_in_sec", 300, 1..=86_400),
            stop_drain_timeout_in_sec: s.in_range(
                "stop_drain_timeout_in_sec",
                Self::stop_drain_default(s, std::env::var(STOP_DRAIN_DEFAULT_VAR)),
                0..=3600,
            ),
            stall_warning_after_in_sec: s.in_range("stall_warning_after_in_sec", 60, 1..=3600),
            threshold_for_using_gzip_in_transport_layer: s
                .or("threshold_for_using_gzip_in_transport_layer", 1.1),
            compression_level: s.in_range("compression_level", 6, 0..=9),
            compression_buffer_in_bytes: s.in_range(
                "compression_buffer_in_bytes",
                51_200,
                1024..=16_777_216,
            ),
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
                    "stop_drain_timeout_in_sec",
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
        let m = s.section("metrics", false)?;
        let listen = m.required::<String>("listen").and_then(|text| match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                m.error(
                    "listen",
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
        let default_dir = s.base_dir().join("state");
        let Some(p) = s.section("persistence", false) else {
            return Persistence::Embedded {
                directory: default_dir,
            };
        };
        let kind = p.one_of("type", "embedded", &["embedded", "redis"]);
        let result = if kind == "redis" {
            let url: Option<String> = p.required("url");
            if let Some(u) = &url {
                if u.starts_with("rediss://") {
                    p.error(
                        "url",
                        ConfigErrorKind::InvalidValue,
                        "TLS to Redis (rediss://) is not supported: use redis:// or unix:// (a TLS-only Redis \
                         through a local TLS tunnel)",
                    );
                } else if !(u.starts_with("redis://") || u.starts_with("unix://")) {
                    p.error(
                        "url",
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
                .optional::<String>("directory")
                .map(|d| s.base_dir().join(d))
                .unwrap_or(default_dir);
            if p.contains("url") {
                p.error(
                    "url",
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
        let g = Globals::read(&r.section("globals", true).unwrap());
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
