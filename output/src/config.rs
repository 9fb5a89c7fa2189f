//! The `outputs` section: `<name>: {type, config: {...}}`. The runtime reads `type` and
//! `config.concurrent_connections`; the output's kind reads the rest of `config`.

use crate::sender::{Sender, SenderInfo};
use logferry::config::{ConfigErrorKind, Globals, Key, KeySet, Section};

/// `concurrent_connections`, read by the runtime in every output's `config` (each kind's key set includes it).
pub const RUNTIME_KEYS: [Key; 1] = [Key::int(
    "concurrent_connections",
    1,
    1,
    64,
    "senders in the pool of the standard class (read by the runtime)",
)];

const TYPE: Key = Key::text(
    "type",
    "the output's kind: devo_platform, relay, syslog, in_house_relay, sidecar, splunk_hec, console or stdout",
)
.required();
const ENABLED: Key = Key::bool("enabled", true, "a disabled output is still validated");
const CONFIG: Key = Key::dict("config", None, "the kind's keys (the tables below)");

/// The keys of every output (`outputs.<name>`).
pub static OUTPUT_KEYS: KeySet = KeySet {
    id: "outputs",
    place: "`outputs.<name>`",
    groups: &[&[TYPE, ENABLED, CONFIG]],
};

/// Builds one sender of a pool from its place in the pool.
pub type SenderFactory = Box<dyn Fn(&SenderInfo) -> Box<dyn Sender> + Send + Sync>;

/// One configured output, ready to build senders in the OutputProcess.
pub struct OutputSpec {
    /// The output's key in the configuration.
    pub name: String,
    /// Its `type`.
    pub kind: String,
    /// Class name of its senders in logs (`SyslogSender`, `ConsoleSender`, `DevoSender`, `SplunkHecSender`).
    pub sender_label: &'static str,
    /// `concurrent_connections`: senders in the pool of the standard class. Default 1; 1..=64.
    pub concurrent_connections: usize,
    /// Builds one sender of the pool.
    pub build: SenderFactory,
}

/// A kind of output, reading its `config` dictionary.
pub trait OutputKind: Send + Sync {
    /// The `type` values it accepts (e.g. `["syslog", "in_house_relay", "sidecar"]`).
    fn types(&self) -> &'static [&'static str];
    /// The declarations of the keys it reads (with [`RUNTIME_KEYS`]).
    fn keys(&self) -> &'static KeySet;
    /// Reads `config` (every key except `concurrent_connections`); `None` when it is unusable.
    fn configure(
        &self,
        name: &str,
        kind: &str,
        config: &Section<'_>,
        globals: &Globals,
    ) -> Option<OutputSpec>;
}

/// Reads `outputs` with the registered kinds.
pub fn configure_outputs(
    outputs: &Section<'_>,
    kinds: &[&dyn OutputKind],
    globals: &Globals,
) -> Vec<OutputSpec> {
    let mut specs = Vec::new();
    for (name, section) in outputs.entries() {
        let Some(kind) = section.get_text(&TYPE) else {
            section.finish();
            continue;
        };
        let Some(k) = kinds.iter().find(|k| k.types().contains(&kind.as_str())) else {
            let known: Vec<_> = kinds
                .iter()
                .flat_map(|k| k.types().iter().copied())
                .collect();
            section.error(
                TYPE.name,
                ConfigErrorKind::UnknownType,
                format!("unknown output type \"{kind}\"; known: {known:?}"),
            );
            section.accept_declared(&[&CONFIG, &ENABLED]);
            section.finish();
            continue;
        };
        let enabled = section.get_bool(&ENABLED);
        let config = section.get_section_or_empty(&CONFIG);
        let connections = config.get_int(&RUNTIME_KEYS[0]);
        let spec = k.configure(name, &kind, &config, globals);
        config.finish();
        section.finish();
        if let (true, Some(mut spec)) = (enabled, spec) {
            spec.concurrent_connections = connections;
            specs.push(spec);
        }
    }
    if specs.is_empty() && outputs.diagnostics().is_empty() {
        outputs.error(
            "",
            ConfigErrorKind::Missing,
            "at least one enabled output is needed",
        );
    }
    specs
}
