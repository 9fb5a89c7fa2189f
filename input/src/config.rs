//! The `inputs` section: common keys of an input (`id`, `enabled`, `type`) read here; everything else (credentials,
//! services) read by the input's [`InputKind`].

use crate::Puller;
use logferry::config::{ConfigErrorKind, Key, KeySet, Section};
use serde_json::Value;
use std::time::Duration;

/// Names a puller in thread names, log lines and state keys, as its seed does (see [`ThreadNaming`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullerIdentity {
    /// The input's key in the configuration (`aws`, `alibaba`, `demo`...).
    pub input: String,
    /// The input's `id` (the seeds' `short_unique_id`), part of the state key.
    pub input_id: String,
    /// The service's key under `services`.
    pub service: String,
    /// `predefined`, or the name of a custom module.
    pub module: String,
    /// The puller's class name in logs, e.g. `ActionTrailStandardPuller`.
    pub puller: String,
    /// How the seed of this input names the puller's threads.
    pub naming: ThreadNaming,
}

/// The thread names of a puller and of its setup thread, as each seed prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadNaming {
    /// Seed 000 (Alibaba): `ActionTrailStandardPuller(alibaba#12341,actiontrail#predefined)`, setup thread
    /// `ActionTrailPullerSetup(alibaba#12341,actiontrail#predefined)` (`setup` is the setup thread's class name).
    Hashed { setup: String },
    /// Seed 002 (`aws`): `AwsCloudtrailApiPuller(aws,abc123,audit-events-all,predefined,us-east-2)`, setup thread
    /// `AwsCloudtrailApiPullerSetup(aws,aws#abc123,audit-events-all#predefined,us-east-2)`.
    Regional { region: String },
    /// Seed 001 (`sqs_collector`, and the demo input): `AWSsqsPuller(sqs_collector,12345,aws_sqs_vpc,predefined)`,
    /// setup thread `AWSsqsPullerSetup(unknown,sqs_collector#12345,aws_sqs_vpc#predefined)`; the puller's thread
    /// says `Waiting until setup will be executed` (a WARNING in the seed).
    Plain,
}

impl PullerIdentity {
    /// The puller's thread name.
    pub fn thread_name(&self) -> String {
        let (puller, input, id, service, module) = (
            &self.puller,
            &self.input,
            &self.input_id,
            &self.service,
            &self.module,
        );
        match &self.naming {
            ThreadNaming::Hashed { .. } => format!("{puller}({input}#{id},{service}#{module})"),
            ThreadNaming::Regional { region } => {
                format!("{puller}({input},{id},{service},{module},{region})")
            }
            ThreadNaming::Plain => format!("{puller}({input},{id},{service},{module})"),
        }
    }

    /// The name of the thread that runs the puller's setup.
    pub fn setup_thread_name(&self) -> String {
        let (puller, input, id, service, module) = (
            &self.puller,
            &self.input,
            &self.input_id,
            &self.service,
            &self.module,
        );
        match &self.naming {
            ThreadNaming::Hashed { setup } => format!("{setup}({input}#{id},{service}#{module})"),
            ThreadNaming::Regional { region } => {
                format!("{puller}Setup({input},{input}#{id},{service}#{module},{region})")
            }
            ThreadNaming::Plain => {
                format!("{puller}Setup(unknown,{input}#{id},{service}#{module})")
            }
        }
    }

    /// The parts of the state key: a regional puller's key ends with its region, so that the pullers of one
    /// service in several regions (`regions: [...]`) keep their own progress.
    pub fn state_parts(&self) -> Vec<&str> {
        let mut parts = vec![
            self.input.as_str(),
            &self.input_id,
            &self.service,
            &self.module,
        ];
        if let ThreadNaming::Regional { region } = &self.naming {
            parts.push(region);
        }
        parts
    }

    /// The state key's parts of the versions before regions (no region): a regional puller adopts the state
    /// stored there when its own key has none and the stored defining values (which name the region) match.
    pub fn legacy_state_parts(&self) -> Option<[&str; 4]> {
        matches!(self.naming, ThreadNaming::Regional { .. }).then_some([
            self.input.as_str(),
            &self.input_id,
            &self.service,
            &self.module,
        ])
    }
}

/// One service to run: built in the InputProcess (after fork) from what validation produced.
pub struct PullerSpec {
    pub identity: PullerIdentity,
    /// Time between the starts of two pull cycles (`request_period_in_seconds`).
    pub request_period: Duration,
    /// Configuration values that define the starting point; a change resets the state at start.
    pub defining: Value,
    /// Builds the puller (called in the InputProcess thread that runs it).
    pub build: Box<dyn Fn() -> Box<dyn Puller> + Send + Sync>,
}

/// The common keys of an input, read before its kind reads the rest.
#[derive(Debug, Clone)]
pub struct InputInfo {
    /// The input's key in the configuration.
    pub name: String,
    /// Key `id` ([`INPUT_KEYS`]).
    pub id: String,
}

const ID: Key = Key::format(
    "id",
    "1..=32 characters without ':' (or a number)",
    "unique id of this input (1..=5 digits in the seeds), part of each puller's state key",
)
.required();
const ENABLED: Key =
    Key::bool("enabled", true, "a disabled input is still validated").aliases(&["input_status"]);
const TYPE: Key = Key::text(
    "type",
    "the input's kind: demo, aws, sqs_collector or alibaba",
)
.computed_default("the input's name");

/// The keys every input has (`inputs.<name>`); its kind declares the rest.
pub static INPUT_KEYS: KeySet = KeySet {
    id: "inputs",
    place: "`inputs.<name>`",
    groups: &[&[ID, ENABLED, TYPE]],
};

/// A kind of input (`demo`, `aws`, `sqs_collector`, `alibaba`): reads its section and its services.
pub trait InputKind: Send + Sync {
    /// The input's name in the configuration (its key, or its `type`).
    fn name(&self) -> &'static str;
    /// The declarations of the keys it reads: the input's own keys and each service kind's.
    fn keys(&self) -> &'static [&'static KeySet];
    /// Reads every key of the input except `id`, `enabled` and `type`, and returns one spec per enabled service.
    /// Problems are recorded in `section`'s diagnostics; unknown keys are reported by the caller.
    fn configure(&self, info: &InputInfo, section: &Section<'_>) -> Vec<PullerSpec>;
}

/// Reads `inputs` with the registered kinds. Disabled inputs are still validated but produce no puller.
pub fn configure_inputs(inputs: &Section<'_>, kinds: &[&dyn InputKind]) -> Vec<PullerSpec> {
    let mut specs = Vec::new();
    for (name, section) in inputs.entries() {
        let kind_name = section.get_text(&TYPE).unwrap_or_else(|| name.to_owned());
        let enabled = section.get_bool(&ENABLED);
        // Missing (or null) is recorded by the read, as for every mandatory key.
        let id = match section.get_raw(&ID) {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 32 && !s.contains(':') => {
                Some(s.clone())
            }
            Some(Value::String(_)) => {
                section.error(
                    ID.name,
                    ConfigErrorKind::InvalidValue,
                    "must be 1..=32 characters without ':'",
                );
                None
            }
            Some(_) => {
                section.error(
                    ID.name,
                    ConfigErrorKind::WrongType,
                    "property must be a number or a string",
                );
                None
            }
            None => None,
        };
        let Some(kind) = kinds.iter().find(|k| k.name() == kind_name) else {
            let known: Vec<_> = kinds.iter().map(|k| k.name()).collect();
            section.error(
                TYPE.name,
                ConfigErrorKind::UnknownType,
                format!("unknown input type \"{kind_name}\"; known: {known:?}"),
            );
            continue;
        };
        let info = InputInfo {
            name: name.to_owned(),
            id: id.unwrap_or_default(),
        };
        let built = kind.configure(&info, &section);
        section.finish();
        if enabled {
            specs.extend(built);
        }
    }
    specs
}

/// Reads `request_period_in_seconds` as the service kind declares it (default and range differ per kind).
pub fn request_period(section: &Section<'_>, key: &Key) -> Duration {
    Duration::from_secs(section.get_int(key))
}
