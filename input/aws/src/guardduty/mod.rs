//! `aws-guardduty` (seed 002, "AWS-GuardDuty (Via API)"): GuardDuty findings read with ListDetectors,
//! ListFindings (filtered on `updatedAt` since the last position, sorted by it) and GetFindings (50 at a time).

pub mod position;
pub mod puller;

use crate::keys::{api_service_tag, API_REQUEST_PERIOD_IN_SECONDS, ENABLED, REGIONS};
use crate::tag::TagTemplate;
use crate::ServiceContext;
use chrono::{DateTime, Utc};
use logferry::config::keys::Default;
use logferry::config::{Key, KeySet, Section};
use logferry_input::config::PullerSpec;
use logferry_input::runtime::MAX_CYCLE_SECONDS;
use std::sync::Arc;
use std::time::Duration;

/// The tag of every finding (seed 002: "ingested into the table cloud.aws.guardduty.findings").
pub const DEFAULT_TAG: &str = "cloud.aws.guardduty.findings";

const START_TIME: Key = Key::format(
    "start_time",
    "RFC 3339 UTC (AwsServiceConfigurationError 6 not a string, 7 wrong format)",
    "oldest `updatedAt` read at the first start; a change resets the state",
)
.with_default(Default::Computed("every finding GuardDuty keeps (90 days)"));
const REQUESTS_PER_SECOND: Key = Key::float_in(
    "requests_per_second",
    5.0,
    0.1,
    50.0,
    "GuardDuty calls per second of this service (ListDetectors, ListFindings, GetFindings); throttling answers are \
     waited out on the same request",
);
const TAG: Key = api_service_tag(
    DEFAULT_TAG,
    "placeholders account_id region_id format_version environment service_name; event_type is `findings`",
    "the findings' tag (seed 002: `cloud.aws.guardduty.findings`, the same for every account and region)",
);

/// The keys of an `aws-guardduty` service (in `tag`, `{event_type}` is `findings`).
pub static GUARDDUTY_KEYS: KeySet = KeySet {
    id: "inputs.aws.guardduty",
    place: "`inputs.<name>.services.aws-guardduty` of type `aws`",
    groups: &[&[
        ENABLED,
        START_TIME,
        REQUESTS_PER_SECOND,
        TAG,
        API_REQUEST_PERIOD_IN_SECONDS,
        MAX_CYCLE_SECONDS,
        REGIONS,
        logferry_input::event_id::EVENT_ID,
        logferry_input::event_id::EVENT_ID_FIELD,
    ]],
};

/// One `aws-guardduty` service; defaults and ranges are declared in [`GUARDDUTY_KEYS`].
#[derive(Debug, Clone)]
pub struct GuardDutyConfig {
    pub client: crate::config::ClientConfig,
    /// `start_time`: the oldest `updatedAt` read at the first start (the seed's `start_time_regex`); `None` =
    /// every finding GuardDuty keeps. Changing it resets the state.
    pub start_time: Option<DateTime<Utc>>,
    /// `requests_per_second`: throttling answers are waited out on the same request.
    pub requests_per_second: f64,
    /// `tag`: default [`DEFAULT_TAG`].
    pub tag: TagTemplate,
    /// `request_period_in_seconds`: time between the starts of two pull cycles.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new batch of findings starts after a cycle ran this long (the next cycle goes on
    /// with no wait).
    pub max_cycle: Duration,
    /// `event_id` / `event_id_field`: the name of the stable id member (from the finding's id and `updatedAt`);
    /// None when off.
    pub event_id_field: Option<String>,
}

impl GuardDutyConfig {
    /// The values that define where the puller starts: a change resets its state.
    pub fn defining(&self) -> serde_json::Value {
        serde_json::json!({
            "start_time": self.start_time.map(|t| t.to_rfc3339()),
            "region": self.client.region,
        })
    }
}

/// True for the service this module reads: `aws-guardduty`.
pub fn wanted(service: &str, _: &Section<'_>) -> bool {
    service == "aws-guardduty"
}

/// Reads the service's keys and returns its puller, or None when a problem was recorded.
pub fn configure(cx: &ServiceContext<'_>, s: &Section<'_>) -> Option<PullerSpec> {
    let start_time = crate::api::read_start_time(s, &START_TIME, 6, 7);
    let requests_per_second = s.get_float(&REQUESTS_PER_SECOND);
    let tag = cx.tag(s, &TAG);
    let request_period = logferry_input::config::request_period(s, &API_REQUEST_PERIOD_IN_SECONDS);
    let max_cycle = logferry_input::runtime::read_max_cycle(s);
    let event_id_field = logferry_input::event_id::read_event_id(s);
    let cfg = Arc::new(GuardDutyConfig {
        client: cx.client()?,
        start_time: start_time?,
        requests_per_second,
        tag: tag?,
        request_period,
        max_cycle,
        event_id_field,
    });
    let defining = cfg.defining();
    Some(cx.spec(
        puller::PULLER_NAME,
        cfg.request_period,
        defining,
        Box::new(move || Box::new(puller::GuardDutyPuller::new(cfg.clone()))),
    ))
}
