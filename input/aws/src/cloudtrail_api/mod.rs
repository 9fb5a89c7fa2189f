//! `audit-events-all` with `types: [audit_apis]` (seed 002, "Audit events (via API)"): CloudTrail's event history
//! read with LookupEvents, in time slots, oldest first, the state committed after each slot.

pub mod config;
pub mod puller;
pub mod slots;

pub use config::CloudTrailApiConfig;

use crate::ServiceContext;
use logferry::config::Section;
use logferry_input::config::PullerSpec;
use std::sync::Arc;

/// The default tag of the service (the same tables as the S3+SQS CloudTrail service).
pub const DEFAULT_TAG: &str =
    "cloud.aws.cloudtrail.{event_type}.{account_id}.{region_id}.{format_version}";

/// Reads the service's keys and returns its puller, or None when a problem was recorded.
pub fn configure(cx: &ServiceContext<'_>, s: &Section<'_>) -> Option<PullerSpec> {
    let tag = cx.tag(s, &config::TAG);
    let cfg = Arc::new(config::read(s, cx.client(), tag)?);
    let defining = cfg.defining();
    Some(cx.spec(
        puller::PULLER_NAME,
        cfg.request_period,
        defining,
        Box::new(move || Box::new(puller::CloudTrailApiPuller::new(cfg.clone()))),
    ))
}
