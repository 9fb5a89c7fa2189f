//! Configuration of the AWS pullers: the `aws` input (seed 002: credentials, region, services) and the generic
//! `sqs_collector` input (seed 001). Every key is read through [`Section`], so every problem is reported with its
//! field path and unknown keys are never silently ignored.

use crate::keys::*;
use crate::sqs::records::RecordCheck;
use crate::tag::TagTemplate;
use logferry::config::{ConfigErrorKind, Key, Secret, Section};
use regex::Regex;
use std::time::Duration;

/// How the pullers authenticate (seed 002 "Accepted authentication methods", seed 001's cross-account keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialsConfig {
    /// `access_key` (seed 001: `aws_access_key_id`): access key id. Needed with `access_secret`; none = default chain.
    pub access_key: Option<String>,
    /// `access_secret` (seed 001: `aws_secret_access_key`): the secret access key. Never logged.
    pub access_secret: Option<Secret>,
    /// `session_token`: optional token of temporary static credentials.
    pub session_token: Option<Secret>,
    /// `base_assume_role` (seed 001: `aws_base_account_role`): role ARN assumed first (self-account), or the
    /// collector's own role in cross-account mode.
    pub base_assume_role: Option<String>,
    /// `target_assume_role` (seed 001: `aws_cross_account_role`): role ARN in the customer account, assumed with
    /// the base role's session (cross-account). Needs `base_assume_role`.
    pub target_assume_role: Option<String>,
    /// `assume_role_external_id` (seed 001: `aws_external_id`): external id of the cross-account assume role.
    pub external_id: Option<Secret>,
    /// `profile`: named profile of the default provider chain (when no access key is given).
    pub profile: Option<String>,
    /// `session_duration_in_seconds`: lifetime of assumed-role sessions. Sessions are
    /// renewed by the SDK's identity cache before they expire.
    pub session_duration: Duration,
}

/// The authentication method the credentials select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Access key + secret.
    Static,
    /// Access key + secret, then assume `base_assume_role` (self-account).
    AssumeRole,
    /// Default chain (instance/profile) assumes `base_assume_role`, then `target_assume_role` (cross-account).
    CrossAccount,
    /// Environment, profile, web identity, container or instance role.
    DefaultChain,
}

impl CredentialsConfig {
    pub fn method(&self) -> AuthMethod {
        match (
            &self.access_key,
            &self.base_assume_role,
            &self.target_assume_role,
        ) {
            (_, Some(_), Some(_)) => AuthMethod::CrossAccount,
            (Some(_), Some(_), None) => AuthMethod::AssumeRole,
            (Some(_), None, _) => AuthMethod::Static,
            (None, Some(_), None) => AuthMethod::AssumeRole,
            (None, None, _) => AuthMethod::DefaultChain,
        }
    }
}

/// The credential key names of one input, for the messages.
struct CredentialNames {
    access_key: &'static str,
    access_secret: &'static str,
    base_role: &'static str,
    target_role: &'static str,
    external_id: &'static str,
}

/// Reads the credentials with the seed's key names and checks the combinations of the seed's table.
pub fn read_credentials(s: &Section<'_>, keys: &CredentialKeys) -> CredentialsConfig {
    let text = |key: &Key| s.get_text(key).filter(|v| !v.is_empty());
    let secret = |key: &Key| s.get_secret(key).filter(|v| !v.0.is_empty());
    let c = CredentialsConfig {
        access_key: text(&keys.access_key),
        access_secret: secret(&keys.access_secret),
        session_token: secret(&SESSION_TOKEN),
        base_assume_role: text(&keys.base_role),
        target_assume_role: text(&keys.target_role),
        external_id: secret(&keys.external_id),
        profile: text(&PROFILE),
        session_duration: Duration::from_secs(s.get_int(&SESSION_DURATION_IN_SECONDS)),
    };
    let k = CredentialNames {
        access_key: keys.access_key.name,
        access_secret: keys.access_secret.name,
        base_role: keys.base_role.name,
        target_role: keys.target_role.name,
        external_id: keys.external_id.name,
    };
    if c.access_key.is_some() != c.access_secret.is_some() {
        let missing = if c.access_key.is_some() {
            k.access_secret
        } else {
            k.access_key
        };
        s.error(
            missing,
            ConfigErrorKind::Missing,
            format!(
                "\"{}\" and \"{}\" go together",
                k.access_key, k.access_secret
            ),
        );
    }
    if c.target_assume_role.is_some() && c.base_assume_role.is_none() {
        s.error(
            k.base_role,
            ConfigErrorKind::Missing,
            format!(
                "cross-account access (\"{}\") needs \"{}\"",
                k.target_role, k.base_role
            ),
        );
    }
    if c.external_id.is_some() && c.base_assume_role.is_none() {
        s.error(
            k.external_id,
            ConfigErrorKind::Conflict,
            format!("\"{}\" is only used when assuming a role", k.external_id),
        );
    }
    if c.target_assume_role.is_some() && c.access_key.is_some() {
        s.error(
            k.access_key,
            ConfigErrorKind::Conflict,
            "cross-account access uses the machine's own identity (default chain): remove the access key and secret",
        );
    }
    for declared in [&keys.base_role, &keys.target_role] {
        let key = declared.name;
        if let Some(arn) = s
            .get_value(declared)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
        {
            if !arn.starts_with("arn:aws") || !arn.contains(":role/") {
                s.error(
                    key,
                    ConfigErrorKind::InvalidValue,
                    format!("\"{arn}\" is not a role ARN (arn:aws:iam::<account>:role/<name>)"),
                );
            }
        }
    }
    c
}

/// Where the AWS clients connect.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `region`: AWS region of the queue and the buckets, e.g. `us-east-1`. Mandatory.
    pub region: String,
    /// `endpoint`: endpoint override (`scheme://host:port`) for VPC interface endpoints or a local test server.
    /// Used for SQS, S3 (path style) and STS. Default none (AWS's public endpoints).
    pub endpoint: Option<String>,
    pub credentials: CredentialsConfig,
}

/// Where the queue is.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueRef {
    /// The queue URL (`base_url` of seed 001, or `sqs_queue_url`).
    Url(String),
    /// The queue name, resolved with GetQueueUrl at setup (`sqs_queue_name`).
    Name(String),
}

impl QueueRef {
    pub fn display_name(&self) -> &str {
        match self {
            QueueRef::Url(u) => u.rsplit('/').next().unwrap_or(u),
            QueueRef::Name(n) => n,
        }
    }
}

/// How the content of an S3 object becomes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    /// `{"Records": [...]}`: one event per element (CloudTrail). Streamed element by element.
    CloudTrail,
    /// VPC flow logs (header line skipped) and CloudFront access logs (`#` comment lines skipped): one event per line.
    NonCloudwatchLogs { flowlogs: bool, cloudfront: bool },
    /// Cisco Umbrella CSV: one event per line, tag by key path (dnslogs / iplogs / proxylogs).
    Umbrella,
    /// `{"Records": [...]}` documents are split, anything else is one event per line (JSON lines or plain lines).
    Auto,
    /// One event per line, whatever the content.
    Lines,
}

/// How a message without an S3 object becomes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectKind {
    /// An EventBridge event (service-events-all): one event, tag by `source`.
    EventBridge,
    /// Security Hub findings in an EventBridge event: one event per element of `detail.findings`.
    SecurityHub,
    /// The message body itself, one event per line (`direct_mode: true` of seed 001).
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The messages are S3 notifications naming objects to read.
    S3(ObjectFormat),
    /// The messages are the events.
    Direct(DirectKind),
}

/// What to do with an object that cannot be read as its format (corrupt gzip, undecodable JSON, vanished key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadObjectPolicy {
    /// Report it, keep it in the dead-letter stream (origin `s3://bucket/key`, reason) and acknowledge the message.
    SetAside,
    /// Report it and leave the message in the queue; after `max_receive_count` receptions it is set aside.
    Retry,
}

/// Whether objects are gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Detected by the gzip magic bytes.
    Auto,
    /// Always gzip (`compressed_events: true`); a non-gzip object is a bad object.
    Gzip,
}

/// One SQS-driven service: the queue, how messages become events, and the delivery settings. Defaults and ranges
/// are declared in [`crate::keys`].
#[derive(Debug, Clone)]
pub struct SqsServiceConfig {
    pub client: ClientConfig,
    pub queue: QueueRef,
    pub mode: Mode,
    /// `tag`: tag template; placeholders `{event_type}`, `{account_id}`, `{region_id}`, `{format_version}`,
    /// `{environment}`, `{service_name}`. Default per service (see docs/aws.md).
    pub tag: TagTemplate,
    /// Tag template of CloudFront logs in `non-cloudwatch-logs` (the `tag` key overrides both).
    pub tag_alt: Option<TagTemplate>,
    /// `auto_event_type`: derive `{event_type}` from the event (CloudTrail `eventSource`, EventBridge `source`).
    /// Default false (the service's default event type).
    pub auto_event_type: bool,
    /// Default `{event_type}` of the service (`events`, `unknown`, `findings`).
    pub event_type_default: String,
    /// `environment`: value of `{environment}`. Default none (then the placeholder is an error).
    pub environment: Option<String>,
    /// `key_regex` (alias `file_filter`): only object keys matching it are read; others count as discarded files.
    pub key_regex: Option<Regex>,
    /// `event_type_file_regex_patterns`: `{event_type: regex}`: the first regex matching the key gives the event type.
    pub event_type_file_patterns: Vec<(String, Regex)>,
    /// `workers`: messages processed in parallel, each acknowledged on its own.
    pub workers: usize,
    /// `sqs_max_messages`: messages per ReceiveMessage (the seeds differ: `AWS_SQS_RANGES`, `SQS_COLLECTOR_SQS_RANGES`).
    pub max_messages: i32,
    /// `sqs_wait_timeout`: long-poll seconds (the seeds differ, as above).
    pub wait_time: i32,
    /// `sqs_visibility_timeout`: seconds a received message stays invisible; extended while it is processed.
    pub visibility_timeout: i32,
    /// `max_receive_count`: a message received more times than this is reported and set aside; 0 = off.
    pub max_receive_count: u32,
    /// `ack_messages`: delete messages once their events are in Redis. Default true (seed 001: mandatory).
    pub ack_messages: bool,
    /// `compressed_events`: objects are gzip (true) or detected by magic bytes (false). Default false.
    pub compression: Compression,
    /// `bad_object_policy`: `set_aside` (default) or `retry`.
    pub bad_object_policy: BadObjectPolicy,
    /// `records_check`: how much of each element of a `{"Records": [...]}` document is checked: `structure`
    /// (default: strings, escapes and brackets, what cutting needs; the records are forwarded as written) or
    /// `grammar` (also the full JSON grammar: a record that is not valid JSON is set aside on its own; about 2x the
    /// scanner's CPU). See docs/aws.md "Objects".
    pub records_check: RecordCheck,
    /// `resume_inside_objects` (default true) and `object_progress_ttl_in_seconds` (default 345600 = 4 days, SQS's
    /// default retention; 60..=1209600): each flush also saves how many units of the object being read are queued,
    /// so a redelivered message resumes where the crash left it; the entry expires after this time. None when off.
    pub object_progress: Option<Duration>,
    /// `event_id` (default false) and `event_id_field` (default `@logferry_id`; printable ASCII without `"` and
    /// `\`): JSON-object events get a stable id member derived from their source (see docs/aws.md "Event ids").
    /// None when off.
    pub event_id_field: Option<String>,
    /// `do_not_send`: read and acknowledge but emit nothing (dry run). Default false.
    pub do_not_send: bool,
    /// `debug_md5`: also emit `{"md5":…,"message_id":…}` per message to `my.app.sqs.message_body`. Default false.
    pub debug_md5: bool,
    /// `request_period_in_seconds`: time between pull cycles.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new receive starts after a cycle ran this long, so its statistics are logged and a
    /// new `@devo_pulling_id` starts even when messages keep coming.
    pub max_cycle: Duration,
    /// The puller class name in logs (`AwsSqsS3CloudTrailPuller`...).
    pub puller_name: &'static str,
    /// Add `@devo_pulling_id` to the events that are JSON objects (CloudTrail records, EventBridge events,
    /// Security Hub findings), as seed 002's services do. Not configurable: true for the `aws` input, false for
    /// `sqs_collector` (seed 001 forwards events unchanged).
    pub pulling_id_field: bool,
}

/// Reads the settings shared by every SQS service; `ranges`: the seed's ranges of two of them.
pub fn read_common(s: &Section<'_>, ranges: &SqsRangeKeys) -> Common {
    let key_regex = regex_opt(s, &KEY_REGEX);
    let mut patterns = Vec::new();
    const PATTERNS: &str = EVENT_TYPE_FILE_REGEX_PATTERNS.name;
    match s.get_raw(&EVENT_TYPE_FILE_REGEX_PATTERNS) {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                let path = format!("{PATTERNS}.{k}");
                match v.as_str().map(Regex::new) {
                    Some(Ok(r)) => patterns.push((k.clone(), r)),
                    Some(Err(e)) => s.error(
                        &path,
                        ConfigErrorKind::InvalidValue,
                        format!("is not a valid regular expression: {e}"),
                    ),
                    None => s.error(
                        &path,
                        ConfigErrorKind::WrongType,
                        "property must be a string (a regular expression)",
                    ),
                }
            }
        }
        Some(_) => s.error(
            PATTERNS,
            ConfigErrorKind::NotADictionary,
            "property must be a dictionary {event_type: regex}",
        ),
    }
    let records_check = match s.get_choice(&RECORDS_CHECK).as_str() {
        "grammar" => RecordCheck::Grammar,
        _ => RecordCheck::Structure,
    };
    let policy = match s.get_choice(&BAD_OBJECT_POLICY).as_str() {
        "retry" => BadObjectPolicy::Retry,
        _ => BadObjectPolicy::SetAside,
    };
    Common {
        key_regex,
        event_type_file_patterns: patterns,
        workers: s.get_int(&WORKERS),
        max_messages: s.get_int(&ranges.max_messages),
        wait_time: s.get_int(&ranges.wait_timeout),
        visibility_timeout: s.get_int(&SQS_VISIBILITY_TIMEOUT),
        max_receive_count: s.get_int(&MAX_RECEIVE_COUNT),
        compression: if s.get_bool(&COMPRESSED_EVENTS) {
            Compression::Gzip
        } else {
            Compression::Auto
        },
        bad_object_policy: policy,
        records_check,
        object_progress: read_object_progress(s),
        event_id_field: logferry_input::event_id::read_event_id(s),
        request_period: logferry_input::config::request_period(s, &REQUEST_PERIOD_IN_SECONDS),
        max_cycle: logferry_input::runtime::read_max_cycle(s),
    }
}

/// `resume_inside_objects` and `object_progress_ttl_in_seconds` (both read, so neither is ever an unknown key).
fn read_object_progress(s: &Section<'_>) -> Option<Duration> {
    let ttl = s.get_int(&OBJECT_PROGRESS_TTL_IN_SECONDS);
    s.get_bool(&RESUME_INSIDE_OBJECTS)
        .then(|| Duration::from_secs(ttl))
}

/// The settings [`read_common`] returns.
pub struct Common {
    pub key_regex: Option<Regex>,
    pub event_type_file_patterns: Vec<(String, Regex)>,
    pub workers: usize,
    pub max_messages: i32,
    pub wait_time: i32,
    pub visibility_timeout: i32,
    pub max_receive_count: u32,
    pub compression: Compression,
    pub bad_object_policy: BadObjectPolicy,
    pub records_check: RecordCheck,
    pub object_progress: Option<Duration>,
    pub event_id_field: Option<String>,
    pub request_period: Duration,
    pub max_cycle: Duration,
}

/// A declared regular expression (its aliases included), checked.
pub fn regex_opt(s: &Section<'_>, key: &Key) -> Option<Regex> {
    let v = s.get_text(key)?;
    match Regex::new(&v) {
        Ok(r) => Some(r),
        Err(e) => {
            s.error(
                s.present_name(key),
                ConfigErrorKind::InvalidValue,
                format!("property is not a valid regular expression: {e}"),
            );
            None
        }
    }
}

/// Reads `endpoint` (scheme://host[:port]).
pub fn read_endpoint(s: &Section<'_>) -> Option<String> {
    let e = s.get_text(&ENDPOINT)?;
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        s.error(
            ENDPOINT.name,
            ConfigErrorKind::InvalidValue,
            format!("\"{e}\" must be scheme://host[:port]"),
        );
        return None;
    }
    Some(e.trim_end_matches('/').to_owned())
}

/// Reads a region key (`region`; mandatory where it is read, also when its declaration says when it is not needed)
/// and checks its shape.
pub fn read_region(s: &Section<'_>, region: &Key) -> Option<String> {
    let key = region.name;
    let r: String = s.get_required(region)?;
    if !is_region(&r) {
        s.error(
            key,
            ConfigErrorKind::InvalidValue,
            format!("\"{r}\" is not an AWS region (e.g. us-east-1)"),
        );
        return None;
    }
    Some(r)
}

/// True for an AWS region name (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
pub fn is_region(r: &str) -> bool {
    r.len() <= 32
        && r.split('-').count() >= 3
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
