//! Configuration of the `alibaba` input: credentials and the six services of the seed
//! (`actiontrail`, `actiontrail_log_service`, `access_log_service`, `db_log_service`, `internal_audit_service`, `smq`).
//!
//! ```yaml
//! inputs:
//!   alibaba:
//!     id: 12341
//!     credentials: {access_key_id: LTAI..., access_key_secret: ..., security_token: optional}
//!     services:
//!       actiontrail: {region: cn-hangzhou, initial_start_time_in_utc: "2025-02-01T00:00:00Z"}
//! ```

use crate::keys::*;
use logferry::config::{ConfigErrorKind, Key, Secret, Section};
use logferry_input::runtime::read_max_cycle;
use logferry_input::PullerError;
use std::time::Duration;

/// The seed's datetime format of `initial_start_time_in_utc`.
pub const DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// `credentials` of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    /// `access_key_id`: the AccessKey ID of the account or RAM user. Mandatory.
    pub access_key_id: String,
    /// `access_key_secret`: its secret. Mandatory, never logged.
    pub access_key_secret: Secret,
    /// `security_token`: STS token when the key pair is temporary. Optional.
    pub security_token: Option<Secret>,
}

/// The services of the seed's table, each with its default tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    ActionTrail,
    ActionTrailLogService,
    AccessLogService,
    DbLogService,
    InternalAuditService,
    Smq,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::ActionTrail,
        ServiceKind::ActionTrailLogService,
        ServiceKind::AccessLogService,
        ServiceKind::DbLogService,
        ServiceKind::InternalAuditService,
        ServiceKind::Smq,
    ];

    /// The service name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::ActionTrail => "actiontrail",
            ServiceKind::ActionTrailLogService => "actiontrail_log_service",
            ServiceKind::AccessLogService => "access_log_service",
            ServiceKind::DbLogService => "db_log_service",
            ServiceKind::InternalAuditService => "internal_audit_service",
            ServiceKind::Smq => "smq",
        }
    }

    pub fn from_name(s: &str) -> Option<ServiceKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The default tag (the seed's "Devo Table").
    pub fn default_tag(self) -> &'static str {
        match self {
            ServiceKind::ActionTrail => "cloud.alibaba.actiontrail.events",
            ServiceKind::ActionTrailLogService => "cloud.alibaba.log_service.events",
            ServiceKind::AccessLogService => "cloud.alibaba.log_service.access_log",
            ServiceKind::DbLogService => "cloud.alibaba.log_service.db_log",
            ServiceKind::InternalAuditService => "cloud.alibaba.log_service.audit_service_log",
            ServiceKind::Smq => "my.app.alibaba.smq",
        }
    }

    /// The puller's class name in log lines.
    pub fn puller_name(self) -> &'static str {
        match self {
            ServiceKind::ActionTrail => "ActionTrailStandardPuller",
            ServiceKind::Smq => "SmqPuller",
            _ => "LogServicePuller",
        }
    }

    /// The class name of its setup thread in log lines (seed 000: `ActionTrailPullerSetup`).
    pub fn setup_name(self) -> &'static str {
        match self {
            ServiceKind::ActionTrail => "ActionTrailPullerSetup",
            ServiceKind::Smq => "SmqPullerSetup",
            _ => "LogServicePullerSetup",
        }
    }

    pub fn is_log_service(self) -> bool {
        !matches!(self, ServiceKind::ActionTrail | ServiceKind::Smq)
    }
}

/// Which ActionTrail signature to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `v3`: ACS3-HMAC-SHA256 in headers (default).
    V3,
    /// `v2`: RPC HMAC-SHA1 in the query (legacy, still accepted).
    V2,
}

/// One `LookupAttribute` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAttribute {
    pub key: String,
    pub value: String,
}

/// Keys accepted by LookupEvents' `LookupAttribute.N.Key`.
pub const LOOKUP_KEYS: [&str; 12] = [
    "ServiceName",
    "EventName",
    "User",
    "EventId",
    "ResourceType",
    "ResourceName",
    "EventRW",
    "EventAccessKeyId",
    "SensitiveAction",
    "SourceIpAddress",
    "EventType",
    "RoleName",
];

/// The `actiontrail` service (LookupEvents API); defaults and ranges are declared in
/// [`crate::keys::ACTIONTRAIL_KEYS`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActionTrailConfig {
    /// `region`: region id, e.g. `cn-hangzhou`. Mandatory unless `endpoint` is set.
    pub region: String,
    /// `endpoint`: scheme://host[:port] override (VPC `https://actiontrail-vpc.<region>.aliyuncs.com`, tests).
    /// Default `https://actiontrail.<region>.aliyuncs.com`.
    pub endpoint: String,
    /// `initial_start_time_in_utc`: `YYYY-MM-DDTHH:MM:SSZ`, in the past. Default: 1 day before the first start.
    /// Changing it resets the persistence at the next start.
    pub initial_start_time_in_utc: Option<chrono::DateTime<chrono::Utc>>,
    /// `request_period_in_seconds`: time between two pull cycles.
    pub request_period: Duration,
    /// `lag_in_seconds`: windows end this long before now (events appear ~10 min late).
    pub lag: Duration,
    /// `window_size_in_seconds`: longest window per request series; the state is committed after each.
    pub window: Duration,
    /// `max_cycle_seconds`: no new window starts after a cycle ran this long (a catch-up goes on in the next cycle,
    /// at once), so statistics and `@devo_pulling_id` move on.
    pub max_cycle: Duration,
    /// `max_results`: page size (`MaxResults`).
    pub max_results: u32,
    /// `requests_per_second`: request budget (the API allows ~2/s).
    pub requests_per_second: f64,
    /// `max_retries`: retries of a throttled or failed (5xx) request before the cycle fails.
    pub max_retries: u32,
    /// `signature_version`: `v3` (default) or `v2`.
    pub signature_version: SignatureVersion,
    /// `lookup_attributes`: up to 2 `{key, value}` filters (keys as `LOOKUP_KEYS`). Default none.
    pub lookup_attributes: Vec<LookupAttribute>,
    /// `tag`: tag of the events. Default `cloud.alibaba.actiontrail.events`.
    pub tag: String,
    /// `timeout_in_seconds`: HTTP timeout per request.
    pub timeout: Duration,
    /// `event_id` / `event_id_field`: the name of the stable id member (from the event's `eventId`); None when off.
    pub event_id_field: Option<String>,
}

/// Where a Log Service reader starts when no checkpoint exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    Begin,
    End,
    /// Unix seconds (from `initial_start_time_in_utc`).
    Time(i64),
}

impl StartPosition {
    /// The `from` parameter of GetCursor.
    pub fn as_from(&self) -> String {
        match self {
            StartPosition::Begin => "begin".into(),
            StartPosition::End => "end".into(),
            StartPosition::Time(t) => t.to_string(),
        }
    }
}

/// The four Log Service services (PullLogs); defaults and ranges are declared in
/// [`crate::keys::LOG_SERVICE_KEYS`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogServiceConfig {
    pub kind: ServiceKind,
    /// `region`: region id. Mandatory unless `endpoint` is set.
    pub region: String,
    /// `project`: the Log Service project. Mandatory.
    pub project: String,
    /// `logstore`: the logstore (ActionTrail trails deliver to `actiontrail_<trail>`). Mandatory.
    pub logstore: String,
    /// `endpoint`: scheme://host[:port] override; the project is NOT prepended to an override.
    /// Default `https://<project>.<region>.log.aliyuncs.com` (`-intranet` hosts through the override).
    pub endpoint: String,
    /// `use_consumer_group`: share shards through a server-side consumer group (default true). With false, every
    /// shard is read by this collector and the cursors live in the local persistence.
    pub use_consumer_group: bool,
    /// `consumer_group`: group name. Default `logferry`.
    pub consumer_group: String,
    /// `consumer_name`: this collector's name in the group; two collectors must never share one (both would read
    /// every shard). Default `<host name>-<input id>-<pid of the collector's main process>` (see
    /// [`default_consumer_name`]).
    pub consumer_name: String,
    /// `heartbeat_interval_in_seconds`: consumer-group heartbeat (group timeout = 2x).
    pub heartbeat_interval: Duration,
    /// `initial_start_time_in_utc`: where to start shards without checkpoint; `YYYY-MM-DDTHH:MM:SSZ`.
    /// Default: `start_position`. Changing it resets the local persistence.
    pub initial_start_time_in_utc: Option<chrono::DateTime<chrono::Utc>>,
    /// `start_position`: `begin` (default) or `end`, when `initial_start_time_in_utc` is absent.
    pub start: StartPosition,
    /// `fetch_count`: log groups per PullLogs.
    pub fetch_count: u32,
    /// `request_period_in_seconds`: pause between cycles once every shard is caught up.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new round over the shards starts after a cycle ran this long, so statistics and
    /// `@devo_pulling_id` move on while data keeps coming.
    pub max_cycle: Duration,
    /// `parse_event_field`: parse the `event` JSON string of ActionTrail logs. Default true for
    /// `actiontrail_log_service`, false otherwise.
    pub parse_event_field: bool,
    /// `tag`: tag of the events. Default per service (seed table).
    pub tag: String,
    /// `event_id` / `event_id_field`: the name of the stable id member (from the shard, the batch's cursor and the
    /// log's index in the batch); None when off.
    pub event_id_field: Option<String>,
    /// `timeout_in_seconds`: HTTP timeout per request.
    pub timeout: Duration,
}

/// The default consumer name: unique per machine (the host name from the system, never the environment's
/// `HOSTNAME`, which systemd, cron and plain shells do not export) and per collector process (the pid of the main
/// process, which reads the configuration). A restarted InputProcess keeps the name, so it takes its shards back at
/// its next heartbeat; a restarted collector gets a new one and the old name's shards come to it after the group
/// timeout (in a container the main process has the same pid at every start, so the name is stable there too).
pub fn default_consumer_name(input_id: &str) -> String {
    format!("{}-{input_id}-{}", system_host_name(), std::process::id())
}

/// `consumer_name`, or the default; an explicit one must not be empty.
fn read_consumer_name(s: &Section<'_>, input_id: &str) -> String {
    match s.get_text(&CONSUMER_NAME) {
        Some(name) if name.trim().is_empty() => {
            s.error(
                CONSUMER_NAME.name,
                ConfigErrorKind::InvalidValue,
                "must not be empty (leave it out for the default, unique per machine and process)",
            );
            String::new()
        }
        Some(name) => name,
        None => default_consumer_name(input_id),
    }
}

/// The host name from `gethostname(2)`; `localhost` if the system has none.
pub fn system_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(h) if rc == 0 && !h.is_empty() => h.to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// Parses `initial_start_time_in_utc` with the seed's errors: InitVariablesError 1 (no format), 2 (wrong format),
/// 3 (in the future).
pub fn parse_start_time(
    value: &str,
    format: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, PullerError> {
    if format.is_empty() {
        return Err(PullerError::init(
            1,
            "Datetime format is not present in module globals.",
        ));
    }
    let dt = chrono::NaiveDateTime::parse_from_str(value, format)
        .map_err(|_| {
            PullerError::init(
                2,
                format!(
                    "initial_start_time_in_utc is not set as per the datetime_format : {format}"
                ),
            )
        })?
        .and_utc();
    if dt > now {
        return Err(PullerError::init(
            3,
            format!("Date {value} is in the future"),
        ));
    }
    Ok(dt)
}

/// Reads the start time of a service; errors are recorded with the seed's error text.
fn read_start_time(s: &Section<'_>, declared: &Key) -> Option<chrono::DateTime<chrono::Utc>> {
    let format = s
        .get_text(&crate::keys::DATETIME_FORMAT)
        .unwrap_or_default();
    let value = s.get_text(declared)?;
    match parse_start_time(&value, &format, chrono::Utc::now()) {
        Ok(t) => Some(t),
        Err(e) => {
            s.error(declared.name, ConfigErrorKind::InvalidValue, e.to_string());
            None
        }
    }
}

pub(crate) fn read_credentials(s: &Section<'_>) -> Credentials {
    Credentials {
        access_key_id: s.get_text(&ACCESS_KEY_ID).unwrap_or_default(),
        access_key_secret: s.get_secret(&ACCESS_KEY_SECRET).unwrap_or_default(),
        security_token: s.get_secret(&SECURITY_TOKEN),
    }
}

fn timeout(s: &Section<'_>) -> Duration {
    Duration::from_secs(s.get_int(&TIMEOUT_IN_SECONDS))
}

/// `region`, mandatory unless `endpoint` is given.
pub(crate) fn region_unless_endpoint(s: &Section<'_>, endpoint: &Option<String>) -> Option<String> {
    if endpoint.is_some() {
        s.get_text(&REGION)
    } else {
        s.get_required(&REGION)
    }
}

fn region_and_endpoint(
    s: &Section<'_>,
    endpoint_key: &Key,
    default: impl FnOnce(&str) -> String,
) -> (String, String) {
    let endpoint = s.get_opt::<String>(endpoint_key);
    let region = region_unless_endpoint(s, &endpoint);
    let region = region.unwrap_or_default();
    if let Some(r) = Some(&region).filter(|r| !r.is_empty()) {
        if !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            s.error(
                REGION.name,
                ConfigErrorKind::InvalidValue,
                format!("\"{r}\" is not a region id (e.g. cn-hangzhou)"),
            );
        }
    }
    let endpoint = endpoint_url(s, endpoint, || default(&region));
    (region, endpoint)
}

/// Where a service is reached, for error contexts: `region R, endpoint E`, or `endpoint E` when the region was left
/// out (an endpoint override).
pub fn place(region: &str, endpoint: &str) -> String {
    if region.is_empty() {
        format!("endpoint {endpoint}")
    } else {
        format!("region {region}, endpoint {endpoint}")
    }
}

/// The `endpoint` override, checked (http:// or https://, trailing `/` dropped), or `default()` without one.
pub(crate) fn endpoint_url(
    s: &Section<'_>,
    endpoint: Option<String>,
    default: impl FnOnce() -> String,
) -> String {
    match endpoint {
        Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
            e.trim_end_matches('/').to_owned()
        }
        Some(e) => {
            s.error(
                ACTIONTRAIL_ENDPOINT.name,
                ConfigErrorKind::InvalidValue,
                format!("\"{e}\" must start with http:// or https://"),
            );
            String::new()
        }
        None => default(),
    }
}

pub(crate) fn read_actiontrail(s: &Section<'_>) -> ActionTrailConfig {
    let (region, endpoint) = region_and_endpoint(s, &ACTIONTRAIL_ENDPOINT, |r| {
        format!("https://actiontrail.{r}.aliyuncs.com")
    });
    let signature_version = match s.get_choice(&SIGNATURE_VERSION).as_str() {
        "v2" => SignatureVersion::V2,
        _ => SignatureVersion::V3,
    };
    let mut lookup_attributes = Vec::new();
    match s.get_raw(&LOOKUP_ATTRIBUTES) {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(items)) if items.len() <= 2 => {
            for (i, item) in items.iter().enumerate() {
                let key = item.get("key").and_then(|v| v.as_str());
                let value = item.get("value").and_then(|v| v.as_str());
                match (key, value) {
                    (Some(k), Some(v))
                        if LOOKUP_KEYS.contains(&k)
                            && item.as_object().is_some_and(|o| o.len() == 2) =>
                    {
                        lookup_attributes.push(LookupAttribute {
                            key: k.into(),
                            value: v.into(),
                        })
                    }
                    _ => s.error(
                        &format!("{}.{i}", LOOKUP_ATTRIBUTES.name),
                        ConfigErrorKind::InvalidValue,
                        format!("must be {{key, value}} with key one of {LOOKUP_KEYS:?}"),
                    ),
                }
            }
        }
        Some(_) => s.error(
            LOOKUP_ATTRIBUTES.name,
            ConfigErrorKind::InvalidValue,
            "must be a list of at most 2 {key, value} filters",
        ),
    }
    let rps = s.get_float(&ACTIONTRAIL_REQUESTS_PER_SECOND);
    ActionTrailConfig {
        region,
        endpoint,
        initial_start_time_in_utc: read_start_time(s, &ACTIONTRAIL_START),
        request_period: Duration::from_secs(s.get_int(&ACTIONTRAIL_REQUEST_PERIOD)),
        lag: Duration::from_secs(s.get_int(&LAG_IN_SECONDS)),
        window: Duration::from_secs(s.get_int(&WINDOW_SIZE_IN_SECONDS)),
        max_cycle: read_max_cycle(s),
        max_results: s.get_int(&MAX_RESULTS),
        requests_per_second: rps,
        max_retries: s.get_int(&MAX_RETRIES),
        signature_version,
        lookup_attributes,
        tag: s
            .get_text(&TAG)
            .unwrap_or_else(|| ServiceKind::ActionTrail.default_tag().to_owned()),
        timeout: timeout(s),
        event_id_field: logferry_input::event_id::read_event_id(s),
    }
}

pub(crate) fn read_log_service(
    kind: ServiceKind,
    s: &Section<'_>,
    input_id: &str,
) -> LogServiceConfig {
    let project = s.get_text(&PROJECT).unwrap_or_default();
    let logstore = s.get_text(&LOGSTORE).unwrap_or_default();
    for (key, v) in [(PROJECT.name, &project), (LOGSTORE.name, &logstore)] {
        if !v.is_empty()
            && !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            s.error(
                key,
                ConfigErrorKind::InvalidValue,
                format!("\"{v}\" may only hold letters, digits, - and _"),
            );
        }
    }
    let p = project.clone();
    let (region, endpoint) = region_and_endpoint(s, &LOG_SERVICE_ENDPOINT, |r| {
        format!("https://{p}.{r}.log.aliyuncs.com")
    });
    let start = match s.get_choice(&START_POSITION).as_str() {
        "end" => StartPosition::End,
        _ => StartPosition::Begin,
    };
    let initial = read_start_time(s, &LOG_SERVICE_START);
    LogServiceConfig {
        kind,
        region,
        project,
        logstore,
        endpoint,
        use_consumer_group: s.get_bool(&USE_CONSUMER_GROUP),
        consumer_group: s.get_text(&CONSUMER_GROUP).unwrap_or_default(),
        consumer_name: read_consumer_name(s, input_id),
        heartbeat_interval: Duration::from_secs(s.get_int(&HEARTBEAT_INTERVAL_IN_SECONDS)),
        start: initial
            .map(|t| StartPosition::Time(t.timestamp()))
            .unwrap_or(start),
        initial_start_time_in_utc: initial,
        fetch_count: s.get_int(&FETCH_COUNT),
        request_period: Duration::from_secs(s.get_int(&LOG_SERVICE_REQUEST_PERIOD)),
        max_cycle: read_max_cycle(s),
        parse_event_field: s
            .get_opt(&PARSE_EVENT_FIELD)
            .unwrap_or(kind == ServiceKind::ActionTrailLogService),
        tag: s
            .get_text(&TAG)
            .unwrap_or_else(|| kind.default_tag().to_owned()),
        timeout: timeout(s),
        event_id_field: logferry_input::event_id::read_event_id(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_region_is_not_printed() {
        assert_eq!(
            place("", "http://127.0.0.1:9"),
            "endpoint http://127.0.0.1:9"
        );
        assert_eq!(
            place(
                "cn-hangzhou",
                "https://actiontrail.cn-hangzhou.aliyuncs.com"
            ),
            "region cn-hangzhou, endpoint https://actiontrail.cn-hangzhou.aliyuncs.com"
        );
    }

    #[test]
    fn start_time_errors_follow_the_seed_table() {
        let now = chrono::Utc::now();
        assert_eq!(
            parse_start_time("2024-01-01T00:00:00Z", "", now)
                .unwrap_err()
                .id,
            1
        );
        let e = parse_start_time("2024-01-01 00:00", DATETIME_FORMAT, now).unwrap_err();
        assert_eq!((e.id, e.message.as_str()), (2, "initial_start_time_in_utc is not set as per the datetime_format : %Y-%m-%dT%H:%M:%SZ"));
        let e = parse_start_time("2999-01-01T00:00:00Z", DATETIME_FORMAT, now).unwrap_err();
        assert_eq!(
            (e.id, e.message.as_str()),
            (3, "Date 2999-01-01T00:00:00Z is in the future")
        );
        assert_eq!(
            parse_start_time("2024-01-01T00:00:00Z", DATETIME_FORMAT, now)
                .unwrap()
                .timestamp(),
            1_704_067_200
        );
    }
}
