//! Configuration of `audit-events-all` with `types: [audit_apis]`: CloudTrail event history read with LookupEvents.

use crate::config::ClientConfig;
use crate::tag::TagTemplate;
use chrono::{DateTime, Utc};
use logferry::config::{ConfigErrorKind, Section};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

pub use crate::api::START_TIME_REGEX;

/// How far back CloudTrail's event history goes: a `start_time` older than this starts here instead.
pub const HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);

/// One `audit-events-all` service reading CloudTrail's event history.
#[derive(Debug, Clone)]
pub struct CloudTrailApiConfig {
    pub client: ClientConfig,
    /// `start_time`: the oldest event time to read (UTC, [`START_TIME_REGEX`]). Default: one time slot before
    /// `now - gap_until_now` at the first start. Older than 90 days: starts 90 days ago (the history's depth).
    /// Changing it resets the puller's state.
    pub start_time: Option<DateTime<Utc>>,
    /// `gap_until_now_in_minutes`: events newer than `now - gap` are left for a later cycle, so that CloudTrail
    /// (which makes events visible within about 5 minutes, rarely 15) has them all. Default 15; 0..=1440.
    pub gap_until_now: Duration,
    /// `time_slot_in_hours`: the history is read in slots of this length, oldest first; the state is committed
    /// after each slot is in Redis. Default 1; 1..=2160.
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
    /// `requests_per_second`: LookupEvents calls per second. Default 2 (CloudTrail's limit per account and region);
    /// 0.1..=2.
    pub requests_per_second: f64,
    /// `request_period_in_seconds`: time between the starts of two pull cycles. Default 60; 0..=3600.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new slot starts after a cycle ran this long (a backfill goes on in the next cycle,
    /// with no wait). Default 60; 1..=3600.
    pub max_cycle: Duration,
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
    let start_time = crate::api::read_start_time(s, 6, 7);
    let gap = read_whole(s, "gap_until_now_in_minutes", 15, 0..=1440, 5);
    let slot = read_whole(s, "time_slot_in_hours", 1, 1..=2160, 10);
    let sources = read_sources(s);
    let drop_event_names = read_drop_event_names(s);
    let auto_event_type = s.or("auto_event_type", false);
    let requests_per_second = s.in_range("requests_per_second", 2.0, 0.1..=2.0);
    let request_period = logferry_input::config::request_period(s, 60, 3600);
    let max_cycle = logferry_input::runtime::read_max_cycle(s);
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
    })
}

/// A whole number with a default and a range; the seed's `AwsServiceConfigurationError(<id>)` when not an integer.
fn read_whole(
    s: &Section<'_>,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    seed_id: u32,
) -> Option<u64> {
    let path = s.key_path(key);
    match s.raw(key) {
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
    let path = s.key_path("sources");
    let list: Vec<String> = match s.raw("sources") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            s.error(
                "sources",
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
            "sources",
            ConfigErrorKind::InvalidValue,
            format!("\"{bad}\" is not an event source (e.g. s3.amazonaws.com)"),
        );
        return None;
    }
    Some(list.into_iter().filter(|x| x != "all_sources").collect())
}

/// `drop_event_names`: a list of event names (AwsServiceConfigurationError 8 otherwise).
fn read_drop_event_names(s: &Section<'_>) -> Option<HashSet<String>> {
    let path = s.key_path("drop_event_names");
    match s.raw("drop_event_names") {
        None | Some(Value::Null) => Some(HashSet::new()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Some(_) => {
            s.error(
                "drop_event_names",
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError(8): \"{path}\" property must be a list"),
            );
            None
        }
    }
}
