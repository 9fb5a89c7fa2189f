//! CloudWatch Logs (seed 002 "Custom Logs": a custom service with `types: [logs]`): the log groups named by
//! `log_group` (a name, a prefix, or `/` for all) read with FilterLogEvents, progress kept per log stream.

pub mod puller;

use crate::keys::{API_REQUEST_PERIOD_IN_SECONDS, ENABLED, REGIONS, REQUESTS_PER_SECOND, TYPES};
use crate::ServiceContext;
use chrono::{DateTime, Utc};
use logferry::config::keys::Default;
use logferry::config::{ConfigErrorKind, Key, KeySet, Section};
use logferry_input::config::PullerSpec;
use logferry_input::runtime::MAX_CYCLE_SECONDS;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The tag of every event (seed 002: "All the events are going to be ingested into the table
/// cloud.aws.cloudwatch.logs").
pub const DEFAULT_TAG: &str = "cloud.aws.cloudwatch.logs";

const LOG_GROUP: Key = Key::text(
    "log_group",
    "the groups read: a name, a prefix of names, or `/` for every group of the region (AwsServiceConfigurationError \
     1 when missing or not a string); groups created later are found at the next cycle",
)
.required();
const START_TIME: Key = Key::format(
    "start_time",
    "RFC 3339 UTC (the pattern of `inputs.aws.cloudtrail_api`; id 1 wrong format, 2 not a string)",
    "oldest event read in a group seen for the first time; a change resets the state",
)
.with_default(Default::Computed(
    "`request_period` before the group is first seen",
));
const USE_FIRST_OPTIMIZED_RETRIEVAL: Key = Key::bool(
    "use_first_optimized_retrieval",
    false,
    "the first retrieval of a group reads all its streams in one FilterLogEvents pass (fewer requests for many \
     streams of medium size) instead of one pass per stream (id 43 when not a boolean)",
);
const TAG: Key = Key::text_or("tag", DEFAULT_TAG, "tag of every event");

/// The keys of a CloudWatch Logs service (`requests_per_second` is the input's, see `inputs.aws`).
pub static CLOUDWATCH_LOGS_KEYS: KeySet = KeySet {
    id: "inputs.aws.cloudwatch_logs",
    place: "`inputs.<name>.services.<service>` of type `aws` with `types: [logs]`",
    groups: &[&[
        TYPES,
        ENABLED,
        LOG_GROUP,
        START_TIME,
        USE_FIRST_OPTIMIZED_RETRIEVAL,
        TAG,
        API_REQUEST_PERIOD_IN_SECONDS,
        MAX_CYCLE_SECONDS,
        REGIONS,
    ]],
};

/// One CloudWatch Logs service; defaults and ranges are declared in [`CLOUDWATCH_LOGS_KEYS`].
#[derive(Debug, Clone)]
pub struct CloudWatchLogsConfig {
    pub client: crate::config::ClientConfig,
    /// `log_group`: a log group name, a prefix of names (every group whose name starts with it), or `/` for every
    /// group of the region. Mandatory. Groups created later are found at the next cycle.
    pub log_group: String,
    /// `start_time`: the oldest event time read in a group seen for the first time (RFC 3339 UTC). Default: the
    /// time the group is first seen minus `request_period_in_seconds`. A change resets the state.
    pub start_time: Option<DateTime<Utc>>,
    /// `use_first_optimized_retrieval`: the first retrieval of a group reads all its streams in one
    /// FilterLogEvents pass (fewer requests for many streams of medium size) instead of one pass per stream.
    /// Default false.
    pub use_first_optimized_retrieval: bool,
    /// `requests_per_second` (input key, mandatory, as seed 002 says): CloudWatch Logs calls per second of this
    /// input's services (FilterLogEvents allows 5 per account and region by default).
    pub requests_per_second: f64,
    /// `tag`: default `cloud.aws.cloudwatch.logs`.
    pub tag: String,
    /// `request_period_in_seconds` ([`CLOUDWATCH_LOGS_KEYS`], as every key here).
    pub request_period: Duration,
    /// `max_cycle_seconds`.
    pub max_cycle: Duration,
}

/// True when a service section asks for CloudWatch Logs (`types: [logs]`).
pub fn wanted(s: &Section<'_>) -> bool {
    matches!(s.get_value(&TYPES), Some(Value::Array(t)) if t.iter().any(|x| x == "logs"))
}

/// Reads `requests_per_second` of the input: mandatory when a CloudWatch Logs service is configured
/// (AwsInputConfigurationError 0 of the seed).
pub fn read_requests_per_second(input: &Section<'_>) -> Option<f64> {
    let key = REQUESTS_PER_SECOND.name;
    if !input.has(&REQUESTS_PER_SECOND) {
        input.error(
            key,
            ConfigErrorKind::Missing,
            format!(
                "AwsInputConfigurationError(0): Mandatory property \"requests_per_second\" is missing (located at: {})",
                input.key_path(key)
            ),
        );
        return None;
    }
    input.get_float_opt(&REQUESTS_PER_SECOND)
}

/// Reads the service's keys and returns its puller, or None when a problem was recorded.
pub fn configure(
    cx: &ServiceContext<'_>,
    s: &Section<'_>,
    requests_per_second: Option<f64>,
) -> Option<PullerSpec> {
    s.accept_declared(&[&TYPES]);
    let key = LOG_GROUP.name;
    let log_group = match s.get_value(&LOG_GROUP) {
        Some(Value::String(g)) if !g.is_empty() => Some(g.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            let path = s.key_path(key);
            s.error(key, ConfigErrorKind::Missing, format!("AwsServiceConfigurationError(1): \"{path}\" mandatory property is missing or empty"));
            None
        }
        Some(_) => {
            let path = s.key_path(key);
            s.error(
                key,
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError(1): \"{path}\" property must be a string"),
            );
            None
        }
    };
    let start_time = crate::api::read_start_time(s, &START_TIME, 2, 1);
    let key = USE_FIRST_OPTIMIZED_RETRIEVAL.name;
    let optimized = match s.get_value(&USE_FIRST_OPTIMIZED_RETRIEVAL) {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            let path = s.key_path(key);
            s.error(
                key,
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError(43): \"{path}\" property must be a boolean"),
            );
            None
        }
    };
    let tag = s.get_text(&TAG).unwrap_or_default();
    let request_period = logferry_input::config::request_period(s, &API_REQUEST_PERIOD_IN_SECONDS);
    let max_cycle = logferry_input::runtime::read_max_cycle(s);
    let cfg = Arc::new(CloudWatchLogsConfig {
        client: cx.client()?,
        log_group: log_group?,
        start_time: start_time?,
        use_first_optimized_retrieval: optimized?,
        requests_per_second: requests_per_second?,
        tag,
        request_period,
        max_cycle,
    });
    let defining = serde_json::json!({
        "log_group": cfg.log_group,
        "start_time": cfg.start_time.map(|t| t.to_rfc3339()),
        "region": cfg.client.region,
    });
    Some(cx.spec_in_module(
        puller::PULLER_NAME,
        "custom",
        cfg.request_period,
        defining,
        Box::new(move || Box::new(puller::CloudWatchLogsPuller::new(cfg.clone()))),
    ))
}
