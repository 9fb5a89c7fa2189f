//! Configuration of `audit-events-all` with `types: [audit_apis]`: CloudTrail event history read with LookupEvents.

use crate::config::ClientConfig;
use crate::keys::{
    api_service_tag, API_REQUEST_PERIOD_IN_SECONDS, AUTO_EVENT_TYPE, ENABLED, REGIONS,
    TAG_PLACEHOLDERS, TYPES,
};
use crate::tag::TagTemplate;
use chrono::{DateTime, Utc};
use logferry::config::keys::Default;
use logferry::config::{ConfigErrorKind, Key, KeySet, Section};
use logferry_input::runtime::MAX_CYCLE_SECONDS;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

pub use crate::api::START_TIME_REGEX;

/// How far back CloudTrail's event history goes: a `start_time` older than this starts here instead.
pub const HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);

pub const START_TIME: Key = Key::format(
    "start_time",
    "RFC 3339 UTC, pattern `^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]00:00)$`, not in the future",
    "oldest event time read (older than 90 days: 90 days ago, with a WARNING); a change resets the state",
)
.with_default(Default::Computed("one slot before `now - gap` at the first start"));
const GAP_UNTIL_NOW_IN_MINUTES: Key = Key::int(
    "gap_until_now_in_minutes",
    15,
    0,
    1440,
    "events newer than this are left for a later cycle (CloudTrail makes events visible within ~5 to 15 min)",
);
const TIME_SLOT_IN_HOURS: Key = Key::int(
    "time_slot_in_hours",
    1,
    1,
    2160,
    "slot length; the state moves once per slot",
);
const SOURCES: Key = Key::format(
    "sources",
    "a string or a list of event sources (`s3.amazonaws.com`); `all_sources` = all",
    "one pass per source",
)
.with_default(Default::Computed("all sources"));
const DROP_EVENT_NAMES: Key = Key::list(
    "drop_event_names",
    "`eventName`s read, counted as dropped, not sent",
);
pub const TAG: Key = api_service_tag(super::DEFAULT_TAG, TAG_PLACEHOLDERS, "tag template");
const REQUESTS_PER_SECOND: Key = Key::float_in(
    "requests_per_second",
    2.0,
    0.1,
    2.0,
    "LookupEvents calls per second (CloudTrail's limit per account and region)",
);

/// The keys of `audit-events-all` with `types: [audit_apis]` (besides the S3 keys when `audits_s3` is there too).
pub static CLOUDTRAIL_API_KEYS: KeySet = KeySet {
    id: "inputs.aws.cloudtrail_api",
    place: "`inputs.<name>.services.audit-events-all` of type `aws` with `types: [audit_apis]`",
    groups: &[&[
        TYPES,
        ENABLED,
        START_TIME,
        GAP_UNTIL_NOW_IN_MINUTES,
        TIME_SLOT_IN_HOURS,
        SOURCES,
        DROP_EVENT_NAMES,
        AUTO_EVENT_TYPE,
        TAG,
        REQUESTS_PER_SECOND,
        API_REQUEST_PERIOD_IN_SECONDS,
        MAX_CYCLE_SECONDS,
        REGIONS,
        logferry_input::event_id::EVENT_ID,
        logferry_input::event_id::EVENT_ID_FIELD,
    ]],
};

/// One `audit-events-all` service reading CloudTrail's event history; defaults and ranges are declared in
/// [`CLOUDTRAIL_API_KEYS`].
#[derive(Debug, Clone)]
pub struct CloudTrailApiConfig {
    pub client: ClientConfig,
    /// `start_time`: the oldest event time to read (UTC, [`START_TIME_REGEX`]). Default: one time slot before
    /// `now - gap_until_now` at the first start. Older than 90 days: starts 90 days ago (the history's depth).
    /// Changing it resets the puller's state.
    pub start_time: Option<DateTime<Utc>>,
    /// `gap_until_now_in_minutes`: events newer than `now - gap` are left for a later cycle, so that CloudTrail
    /// (which makes events visible within about 5 minutes, rarely 15) has them all.
    pub gap_until_now: Duration,
    /// `time_slot_in_hours`: the history is read in slots of this length, oldest first; the state is committed
    /// after each slot is in Redis.
    pub time_slot: Duration,
    /// `sources`: event sources to read (`s3.amazonaws.com`...), one pass per source with the LookupAttribute
    /// EventSource; a string or a list. Default: all sources in one pass.
    pub sources: Vec<String>,
    /// `drop_event_names`: event names (`eventName`) read but not sent (counted as dropped). Default none.
    pub drop_event_names: HashSet<String>,
    /// `auto_event_type`: `{event_type}` from the event's `eventSource` (`s3.amazonaws.com` -> `s3`); default
    /// false (`events`).
    pub auto_event_type: bool,
    /// `tag`: tag template. Default `cloud.aws.cloudtrail.{event_type}.{account_id}.{region_id}.{format_version}`.
    pub tag: TagTemplate,
    /// `requests_per_second`: LookupEvents calls per second (at most CloudTrail's limit per account and region).
    pub requests_per_second: f64,
    /// `request_period_in_seconds`: time between the starts of two pull cycles.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new slot starts after a cycle ran this long (a backfill goes on in the next cycle,
    /// with no wait).
    pub max_cycle: Duration,
    /// `event_id` / `event_id_field`: the name of the stable id member (from the event's `eventId`); None when off.
    pub event_id_field: Option<String>,
}

impl CloudTrailApiConfig {
    /// The values that define where the puller starts: a change resets its state.
    pub fn defining(&self) -> Value {
        serde_json::json!({
            "start_time": self.start_time.map(|t| t.to_rfc3339()),
            "region": self.client.region,
        })
    }
}

/// Reads the keys of the CloudTrail API puller from the service's section.
pub fn read(
    s: &Section<'_>,
    client: Option<ClientConfig>,
    tag: Option<TagTemplate>,
) -> Option<CloudTrailApiConfig> {
    let start_time = crate::api::read_start_time(s, &START_TIME, 6, 7);
    let gap = read_whole(s, &GAP_UNTIL_NOW_IN_MINUTES, 5);
    let slot = read_whole(s, &TIME_SLOT_IN_HOURS, 10);
    let sources = read_sources(s);
    let drop_event_names = read_drop_event_names(s);
    let auto_event_type = s.get_bool(&AUTO_EVENT_TYPE);
    let requests_per_second = s.get_float(&REQUESTS_PER_SECOND);
    let request_period = logferry_input::config::request_period(s, &API_REQUEST_PERIOD_IN_SECONDS);
    let max_cycle = logferry_input::runtime::read_max_cycle(s);
    let event_id_field = logferry_input::event_id::read_event_id(s);
    Some(CloudTrailApiConfig {
        client: client?,
        start_time: start_time?,
        gap_until_now: Duration::from_secs(gap? * 60),
        time_slot: Duration::from_secs(slot? * 3600),
        sources: sources?,
        drop_event_names: drop_event_names?,
        auto_event_type,
        tag: tag?,
        requests_per_second,
        request_period,
        max_cycle,
        event_id_field,
    })
}

/// A declared whole number (its default and range); the seed's `AwsServiceConfigurationError(<id>)` when not an
/// integer.
fn read_whole(s: &Section<'_>, declared: &Key, seed_id: u32) -> Option<u64> {
    let (logferry::config::keys::Kind::Int { min, max }, Default::Int(default)) =
        (declared.kind, declared.default)
    else {
        panic!(
            "{} is not declared as an integer with a default",
            declared.name
        )
    };
    let (default, range) = (default as u64, min as u64..=max as u64);
    let key = declared.name;
    let path = s.key_path(key);
    match s.get_value(declared) {
        None | Some(Value::Null) => Some(default),
        Some(v) => match v.as_u64() {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                s.error(
                    key,
                    ConfigErrorKind::OutOfRange,
                    format!(
                        "value {n} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            None => {
                s.error(
                    key,
                    ConfigErrorKind::WrongType,
                    format!(
                        "AwsServiceConfigurationError({seed_id}): \"{path}\" property must be an integer (not negative), got {v}"
                    ),
                );
                None
            }
        },
    }
}

/// `sources`: a string or a list of strings (AwsServiceConfigurationError 4 otherwise); `all_sources` (or none)
/// is every source in one pass.
fn read_sources(s: &Section<'_>) -> Option<Vec<String>> {
    let key = SOURCES.name;
    let path = s.key_path(key);
    let list: Vec<String> = match s.get_value(&SOURCES) {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            s.error(
                key,
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError(4): \"{path}\" property exists but with wrong format, only \"str\" or \"list\" values are allowed"),
            );
            return None;
        }
    };
    if let Some(bad) = list
        .iter()
        .find(|x| x.is_empty() || x.contains(char::is_whitespace))
    {
        s.error(
            key,
            ConfigErrorKind::InvalidValue,
            format!("\"{bad}\" is not an event source (e.g. s3.amazonaws.com)"),
        );
        return None;
    }
    Some(list.into_iter().filter(|x| x != "all_sources").collect())
}

/// `drop_event_names`: a list of event names (AwsServiceConfigurationError 8 otherwise).
fn read_drop_event_names(s: &Section<'_>) -> Option<HashSet<String>> {
    let key = DROP_EVENT_NAMES.name;
    let path = s.key_path(key);
    match s.get_value(&DROP_EVENT_NAMES) {
        None | Some(Value::Null) => Some(HashSet::new()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Some(_) => {
            s.error(
                key,
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError(8): \"{path}\" property must be a list"),
            );
            None
        }
    }
}
