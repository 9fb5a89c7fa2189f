//! `aws-guardduty` (seed 002, "AWS-GuardDuty (Via API)"): GuardDuty findings read with ListDetectors,
//! ListFindings (filtered on `updatedAt` since the last position, sorted by it) and GetFindings (50 at a time).

pub mod position;
pub mod puller;

use crate::tag::TagTemplate;
use crate::ServiceContext;
use chrono::{DateTime, Utc};
use logferry::config::Section;
use logferry_input::config::PullerSpec;
use std::sync::Arc;
use std::time::Duration;

/// The tag of every finding (seed 002: "ingested into the table cloud.aws.guardduty.findings").
pub const DEFAULT_TAG: &str = "cloud.aws.guardduty.findings";

/// One `aws-guardduty` service.
#[derive(Debug, Clone)]
pub struct GuardDutyConfig {
    pub client: crate::config::ClientConfig,
    /// `start_time`: the oldest `updatedAt` read at the first start (RFC 3339 UTC, the seed's `start_time_regex`).
    /// Default: every finding GuardDuty keeps (90 days). Changing it resets the state.
    pub start_time: Option<DateTime<Utc>>,
    /// `requests_per_second`: GuardDuty calls per second of this service (ListDetectors, ListFindings,
    /// GetFindings). Default 5; 0.1..=50. Throttling answers are waited out on the same request.
    pub requests_per_second: f64,
    /// `tag`: tag template (`{account_id}`, `{region_id}`, `{environment}` are filled in). Default
    /// `cloud.aws.guardduty.findings`.
    pub tag: TagTemplate,
    /// `request_period_in_seconds`: time between the starts of two pull cycles. Default 60; 0..=3600.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new batch of findings starts after a cycle ran this long (the next cycle goes on
    /// with no wait). Default 60; 1..=3600.
    pub max_cycle: Duration,
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
    let start_time = crate::api::read_start_time(s, 6, 7);
    let requests_per_second = s.in_range("requests_per_second", 5.0, 0.1..=50.0);
    let tag = cx.tag(s, DEFAULT_TAG);
    let request_period = logferry_input::config::request_period(s, 60, 3600);
    let max_cycle = logferry_input::runtime::read_max_cycle(s);
    let cfg = Arc::new(GuardDutyConfig {
        client: cx.client()?,
        start_time: start_time?,
        requests_per_second,
        tag: tag?,
        request_period,
        max_cycle,
    });
    let defining = cfg.defining();
    Some(cx.spec(
        puller::PULLER_NAME,
        cfg.request_period,
        defining,
        Box::new(move || Box::new(puller::GuardDutyPuller::new(cfg.clone()))),
    ))
}
