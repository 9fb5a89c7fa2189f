//! CloudWatch Metrics (seed 002 "Metrics (All metrics)"): `metrics-all`, the per-namespace services (`ec2`...), and
//! custom services with `types: [metrics]`. Every cycle lists the metrics of the namespaces (ListMetrics, paged),
//! then reads the last complete period(s) with GetMetricData in batches of 500 queries (the API's maximum); the
//! end of the periods read is committed after their events are in Redis, so a restart resumes there.

pub mod listing;
pub mod puller;
pub mod window;

use crate::config::ClientConfig;
use crate::keys::{api_service_tag, ENABLED, REGIONS, TYPES};
use crate::tag::TagTemplate;
use crate::ServiceContext;
use logferry::config::{ConfigErrorKind, Key, KeySet, Section};
use logferry_input::config::PullerSpec;
use logferry_input::runtime::MAX_CYCLE_SECONDS;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The default tag (seed 002: `cloud.aws.cloudwatch.metrics.936082584952.us-east-2.1`).
pub const DEFAULT_TAG: &str =
    "cloud.aws.cloudwatch.metrics.{account_id}.{region_id}.{format_version}";

/// The statistics asked for each metric by default.
pub const DEFAULT_STATISTICS: [&str; 5] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"];

/// The predefined per-namespace services: (service, namespaces). `ec2` is the seed's example; the others follow
/// it for the services whose metrics operators ask for most.
pub const NAMESPACE_SERVICES: &[(&str, &[&str])] = &[
    ("ec2", &["AWS/EC2", "AWS/EC2Spot"]),
    ("ebs", &["AWS/EBS"]),
    ("s3", &["AWS/S3"]),
    ("lambda", &["AWS/Lambda"]),
    ("rds", &["AWS/RDS"]),
    ("elb", &["AWS/ELB", "AWS/ApplicationELB", "AWS/NetworkELB"]),
    ("dynamodb", &["AWS/DynamoDB"]),
];

/// The service that reads every namespace.
pub const ALL_SERVICE: &str = "metrics-all";

const METRIC_NAMESPACES: Key = Key::list(
    "metric_namespaces",
    "the namespaces read (AwsServiceConfigurationError(0) when missing for a custom service or not a list)",
)
.computed_default("`metrics-all`: every namespace; per-namespace services: their list; custom: mandatory");
const STATISTICS: Key = Key::list(
    "statistics",
    "1..=10 of `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount` or percentiles (`p99`, `p99.9`), each once; one \
     query per statistic",
)
.computed_default("[Average, Sum, Minimum, Maximum, SampleCount]");
/// The metric period (and cycle period) without `request_period_in_seconds`.
const DEFAULT_PERIOD_SECONDS: u64 = 60;
const PERIOD_IN_SECONDS: Key = Key::int(
    "request_period_in_seconds",
    DEFAULT_PERIOD_SECONDS as i64,
    1,
    window::MAX_PERIOD as i64,
    "cycle and metric period: 1, 5, 10, 30, 60 or a multiple of 60 (AwsServiceConfigurationError(1) otherwise; below \
     60 only high-resolution metrics have data)",
);
const TAG: Key = api_service_tag(
    DEFAULT_TAG,
    "placeholders account_id region_id format_version environment service_name; event_type is `metrics`",
    "the metrics' tag: `cloud.aws.cloudwatch.metrics.<account>.<region>.<version>` (seed 002: \
     `cloud.aws.cloudwatch.metrics.936082584952.us-east-2.1`)",
);
const RETRIEVAL_DELAY_IN_SECONDS: Key = Key::int(
    "retrieval_delay_in_seconds",
    0,
    0,
    3600,
    "how long after its end a period is read (late data points: e.g. 180)",
);
const METRICS_LIST_REFRESH_IN_SECONDS: Key = Key::int(
    "metrics_list_refresh_in_seconds",
    3600,
    0,
    86_400,
    "how long a namespace's metric list (ListMetrics) is used before it is listed again (0: every cycle); metrics new \
     at a refresh are read back to the listing before",
);
const REQUESTS_PER_SECOND: Key = Key::float_in(
    "requests_per_second",
    5.0,
    0.1,
    25.0,
    "ListMetrics + GetMetricData calls per second (AWS: 25 and 50 per account and region)",
);

/// The keys of a CloudWatch Metrics service (in `tag`, `{event_type}` is `metrics`; `max_cycle_seconds`: no new
/// catch-up window after this in one cycle).
pub static METRICS_KEYS: KeySet = KeySet {
    id: "inputs.aws.metrics",
    place: "`inputs.<name>.services.<service>` of type `aws`: `metrics-all`, a per-namespace service or `types: \
            [metrics]`",
    groups: &[&[
        TYPES,
        ENABLED,
        METRIC_NAMESPACES,
        PERIOD_IN_SECONDS,
        STATISTICS,
        RETRIEVAL_DELAY_IN_SECONDS,
        METRICS_LIST_REFRESH_IN_SECONDS,
        REQUESTS_PER_SECOND,
        TAG,
        MAX_CYCLE_SECONDS,
        REGIONS,
    ]],
};

/// One CloudWatch Metrics service in one region.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub client: ClientConfig,
    /// `metric_namespaces`: the namespaces read (`AWS/EC2`, a custom namespace...). Mandatory for a custom
    /// service with `types: [metrics]` (AwsServiceConfigurationError 0 of the seed); for a per-namespace service
    /// it replaces the service's own list; for `metrics-all` it is optional: empty means every namespace.
    pub namespaces: Vec<String>,
    /// `statistics`: the statistics asked for each metric (`Average`, `Sum`, `Minimum`, `Maximum`,
    /// `SampleCount`, or a percentile `p99`, `p99.9`). Default the five basic ones; 1..=10 of them. Each is one
    /// query of GetMetricData, so a batch of 500 queries holds 500 / len metrics.
    pub statistics: Vec<String>,
    /// `request_period_in_seconds`: the cycle's period and the metrics' period (each event is one period of one
    /// metric): 1, 5, 10, 30, 60 or any multiple of 60 up to 86400 (AwsServiceConfigurationError 1 otherwise).
    /// Below 60 only high-resolution metrics have data. Default 60.
    pub period: Duration,
    /// `retrieval_delay_in_seconds`: a period is read this long after it ended, for data points that reach
    /// CloudWatch late (AWS services publish most metrics within 1-3 minutes; a period read before its data
    /// arrived is not read again). Default 0 (the seed's behaviour: the last complete period); 0..=3600.
    pub retrieval_delay: Duration,
    /// `metrics_list_refresh_in_seconds`: a namespace's metric list (ListMetrics, every page) is used this long
    /// before it is listed again, instead of every cycle (Telegraf's `cache_ttl`). Metrics a new list adds are read
    /// back from the period end the list before was used from. Default 3600; 0 (every cycle)..=86400.
    pub metrics_list_refresh: Duration,
    /// `requests_per_second`: ListMetrics + GetMetricData calls per second (AWS allows 25 ListMetrics and 50
    /// GetMetricData per second per account and region). Default 5; 0.1..=25.
    pub requests_per_second: f64,
    /// `tag`: default `cloud.aws.cloudwatch.metrics.{account_id}.{region_id}.{format_version}`.
    pub tag: TagTemplate,
    /// `max_cycle_seconds`: a catch-up after a stop is read window by window; no new window starts after a cycle
    /// ran this long (the next cycle goes on at once). Default 60; 1..=3600.
    pub max_cycle: Duration,
}

impl MetricsConfig {
    /// The values that define where the puller starts: a change resets its state.
    pub fn defining(&self) -> Value {
        serde_json::json!({
            "namespaces": self.namespaces,
            "period": self.period.as_secs(),
            "region": self.client.region,
        })
    }
}

/// True when the service is a metrics service: `metrics-all`, a per-namespace service, or `types: [metrics]`.
pub fn wanted(service: &str, s: &Section<'_>) -> bool {
    service == ALL_SERVICE
        || NAMESPACE_SERVICES.iter().any(|(name, _)| *name == service)
        || matches!(s.get_value(&TYPES), Some(Value::Array(t)) if t.iter().any(|x| x == "metrics"))
}

/// Reads the service's keys and returns its puller, or None when a problem was recorded.
pub fn configure(cx: &ServiceContext<'_>, s: &Section<'_>) -> Option<PullerSpec> {
    let custom =
        !(cx.service == ALL_SERVICE || NAMESPACE_SERVICES.iter().any(|(n, _)| *n == cx.service));
    if custom {
        s.accept_declared(&[&TYPES]);
    }
    let namespaces = read_namespaces(cx.service, s, custom);
    let statistics = read_statistics(s);
    let period = read_period(s);
    let retrieval_delay: u64 = s.get_int(&RETRIEVAL_DELAY_IN_SECONDS);
    let metrics_list_refresh: u64 = s.get_int(&METRICS_LIST_REFRESH_IN_SECONDS);
    let requests_per_second = s.get_float(&REQUESTS_PER_SECOND);
    let tag = cx.tag(s, &TAG);
    let max_cycle = logferry_input::runtime::read_max_cycle(s);
    let cfg = Arc::new(MetricsConfig {
        client: cx.client()?,
        namespaces: namespaces?,
        statistics: statistics?,
        period: period?,
        retrieval_delay: Duration::from_secs(retrieval_delay),
        metrics_list_refresh: Duration::from_secs(metrics_list_refresh),
        requests_per_second,
        tag: tag?,
        max_cycle,
    });
    let module = if custom { "custom" } else { "predefined" };
    Some(cx.spec_in_module(
        puller::PULLER_NAME,
        module,
        cfg.period,
        cfg.defining(),
        Box::new(move || Box::new(puller::MetricsPuller::new(cfg.clone()))),
    ))
}

/// `metric_namespaces` with the seed's AwsServiceConfigurationError 0 (missing for a custom service, not a list).
fn read_namespaces(service: &str, s: &Section<'_>, custom: bool) -> Option<Vec<String>> {
    let own: Vec<String> = NAMESPACE_SERVICES
        .iter()
        .find(|(n, _)| *n == service)
        .map(|(_, ns)| ns.iter().map(|x| (*x).to_owned()).collect())
        .unwrap_or_default();
    let list = match s.get_value(&METRIC_NAMESPACES) {
        None | Some(Value::Null) if custom => {
            s.error(
                METRIC_NAMESPACES.name,
                ConfigErrorKind::Missing,
                format!("AwsServiceConfigurationError(0): Mandatory property \"metric_namespaces\" is missing (located at: {})", s.key_path(METRIC_NAMESPACES.name)),
            );
            return None;
        }
        None | Some(Value::Null) => return Some(own),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect::<Vec<_>>(),
        Some(_) => {
            s.error(
                METRIC_NAMESPACES.name,
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError(0): Mandatory property \"metric_namespaces\" property must be a list (located at: {})", s.key_path(METRIC_NAMESPACES.name)),
            );
            return None;
        }
    };
    if list.is_empty() && custom {
        s.error(
            METRIC_NAMESPACES.name,
            ConfigErrorKind::Missing,
            "AwsServiceConfigurationError(0): Mandatory property \"metric_namespaces\" is missing (the list is empty)",
        );
        return None;
    }
    if let Some(bad) = list.iter().find(|n| !valid_namespace(n)) {
        s.error(
            METRIC_NAMESPACES.name,
            ConfigErrorKind::InvalidValue,
            format!("\"{bad}\" is not a CloudWatch namespace (1..=255 characters, not starting with \"AWS/\" alone, no spaces at the ends)"),
        );
        return None;
    }
    Some(list)
}

fn valid_namespace(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && n.trim() == n && n != "AWS/" && !n.contains(':')
}

/// `statistics`: a non-empty list of at most 10 statistics.
fn read_statistics(s: &Section<'_>) -> Option<Vec<String>> {
    let Some(list) = s.get_list(&STATISTICS) else {
        return (!s.has(&STATISTICS) || s.get_value(&STATISTICS) == Some(&Value::Null))
            .then(|| DEFAULT_STATISTICS.iter().map(|x| (*x).to_owned()).collect());
    };
    if list.is_empty() || list.len() > 10 {
        s.error(
            STATISTICS.name,
            ConfigErrorKind::OutOfRange,
            format!("{} statistics given: 1..=10 are allowed", list.len()),
        );
        return None;
    }
    if let Some(bad) = list.iter().find(|x| !valid_statistic(x)) {
        s.error(
            STATISTICS.name,
            ConfigErrorKind::InvalidValue,
            format!("\"{bad}\" is not a statistic (Average, Sum, Minimum, Maximum, SampleCount, or a percentile such as p99 or p99.9)"),
        );
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = list.iter().find(|x| !seen.insert(x.as_str())) {
        s.error(
            STATISTICS.name,
            ConfigErrorKind::InvalidValue,
            format!("\"{dup}\" is given twice"),
        );
        return None;
    }
    Some(list)
}

fn valid_statistic(x: &str) -> bool {
    DEFAULT_STATISTICS.contains(&x)
        || x.strip_prefix('p').is_some_and(|p| {
            p.parse::<f64>()
                .is_ok_and(|v| (0.0..=100.0).contains(&v) && !p.starts_with('.'))
        })
}

/// `request_period_in_seconds`: 1, 5, 10, 30, 60 or a multiple of 60 (at most a day); the seed's
/// AwsServiceConfigurationError 1 otherwise.
fn read_period(s: &Section<'_>) -> Option<Duration> {
    let raw = s.get_value(&PERIOD_IN_SECONDS);
    let secs = match raw {
        None | Some(Value::Null) => return Some(Duration::from_secs(DEFAULT_PERIOD_SECONDS)),
        Some(v) => v.as_u64(),
    };
    match secs {
        Some(p) if window::valid_period(p) => Some(Duration::from_secs(p)),
        Some(p) if p.is_multiple_of(60) && p > 0 => {
            s.error(
                PERIOD_IN_SECONDS.name,
                ConfigErrorKind::OutOfRange,
                format!(
                    "value {p} is out of range: at most {} seconds (a day)",
                    window::MAX_PERIOD
                ),
            );
            None
        }
        _ => {
            s.error(
                PERIOD_IN_SECONDS.name,
                ConfigErrorKind::InvalidValue,
                format!(
                    "AwsServiceConfigurationError(1): When a service uses \"metrics\" type, the property \"request_period_in_seconds\" must have one of the following values: 1, 5, 10, 30, 60, or any multiple of 60 (found {})",
                    raw.map(Value::to_string).unwrap_or_default()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_the_basic_ones_or_percentiles() {
        for ok in ["Average", "SampleCount", "p99", "p99.9", "p0", "p100"] {
            assert!(valid_statistic(ok), "{ok}");
        }
        for bad in ["average", "p", "p101", "p.5", "Avg", ""] {
            assert!(!valid_statistic(bad), "{bad}");
        }
    }
}
