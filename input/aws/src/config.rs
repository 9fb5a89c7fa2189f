//! Configuration of the AWS pullers: the `aws` input (seed 002: credentials, region, services) and the generic
//! `sqs_collector` input (seed 001). Every key is read through [`Section`], so every problem is reported with its
//! field path and unknown keys are never silently ignored.

use crate::sqs::records::RecordCheck;
use crate::tag::TagTemplate;
use logferry::config::{ConfigErrorKind, Secret, Section};
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
    /// `session_duration_in_seconds`: lifetime of assumed-role sessions. Default 3600; 900..=43200. Sessions are
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

/// Key names of the credentials in the two inputs.
pub struct CredentialKeys {
    pub access_key: &'static str,
    pub access_secret: &'static str,
    pub base_role: &'static str,
    pub target_role: &'static str,
    pub external_id: &'static str,
}

pub const AWS_KEYS: CredentialKeys = CredentialKeys {
    access_key: "access_key",
    access_secret: "access_secret",
    base_role: "base_assume_role",
    target_role: "target_assume_role",
    external_id: "assume_role_external_id",
};

pub const SQS_COLLECTOR_KEYS: CredentialKeys = CredentialKeys {
    access_key: "aws_access_key_id",
    access_secret: "aws_secret_access_key",
    base_role: "aws_base_account_role",
    target_role: "aws_cross_account_role",
    external_id: "aws_external_id",
};

/// Reads the credentials with the seed's key names and checks the combinations of the seed's table.
pub fn read_credentials(s: &Section<'_>, k: &CredentialKeys) -> CredentialsConfig {
    let c = CredentialsConfig {
        access_key: s.optional::<String>(k.access_key).filter(|v| !v.is_empty()),
        access_secret: s
            .optional::<Secret>(k.access_secret)
            .filter(|v| !v.0.is_empty()),
        session_token: s
            .optional::<Secret>("session_token")
            .filter(|v| !v.0.is_empty()),
        base_assume_role: s.optional::<String>(k.base_role).filter(|v| !v.is_empty()),
        target_assume_role: s
            .optional::<String>(k.target_role)
            .filter(|v| !v.is_empty()),
        external_id: s
            .optional::<Secret>(k.external_id)
            .filter(|v| !v.0.is_empty()),
        profile: s.optional::<String>("profile").filter(|v| !v.is_empty()),
        session_duration: Duration::from_secs(s.in_range(
            "session_duration_in_seconds",
            3600u64,
            900..=43200,
        )),
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
    for key in [k.base_role, k.target_role] {
        if let Some(arn) = s
            .raw(key)
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

/// One SQS-driven service: the queue, how messages become events, and the delivery settings.
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
    /// `workers`: messages processed in parallel, each acknowledged on its own. Default 4; 1..=64.
    pub workers: usize,
    /// `sqs_max_messages`: messages per ReceiveMessage. Default 1 (seed 001: 1..=6) / 10 (aws: 1..=10).
    pub max_messages: i32,
    /// `sqs_wait_timeout`: long-poll seconds. Seed 001: 20..=20; aws: default 20, 0..=20.
    pub wait_time: i32,
    /// `sqs_visibility_timeout`: seconds a received message stays invisible; extended while it is processed.
    /// Default 120; 120..=43200.
    pub visibility_timeout: i32,
    /// `max_receive_count`: a message received more times than this is reported and set aside. Default 10; 0 = off.
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
    /// `request_period_in_seconds`: time between pull cycles. Default 5; 0..=3600.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new receive starts after a cycle ran this long, so its statistics are logged and a
    /// new `@devo_pulling_id` starts even when messages keep coming. Default 60; 1..=3600.
    pub max_cycle: Duration,
    /// The puller class name in logs (`AwsSqsS3CloudTrailPuller`...).
    pub puller_name: &'static str,
    /// Add `@devo_pulling_id` to the events that are JSON objects (CloudTrail records, EventBridge events,
    /// Security Hub findings), as seed 002's services do. Not configurable: true for the `aws` input, false for
    /// `sqs_collector` (seed 001 forwards events unchanged).
    pub pulling_id_field: bool,
}

/// Reads the settings shared by every SQS service. `seed001` selects seed 001's ranges.
pub fn read_common(s: &Section<'_>, seed001: bool) -> Common {
    let (max_default, max_range) = if seed001 { (1, 1..=6) } else { (10, 1..=10) };
    let wait_range = if seed001 { 20..=20 } else { 0..=20 };
    let key_regex = regex_opt(s, "key_regex").or_else(|| regex_opt(s, "file_filter"));
    let mut patterns = Vec::new();
    const PATTERNS: &str = "event_type_file_regex_patterns";
    match s.raw(PATTERNS) {
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
    let records_check = match s
        .one_of("records_check", "structure", &["structure", "grammar"])
        .as_str()
    {
        "grammar" => RecordCheck::Grammar,
        _ => RecordCheck::Structure,
    };
    let policy = match s
        .one_of("bad_object_policy", "set_aside", &["set_aside", "retry"])
        .as_str()
    {
        "retry" => BadObjectPolicy::Retry,
        _ => BadObjectPolicy::SetAside,
    };
    Common {
        key_regex,
        event_type_file_patterns: patterns,
        workers: s.in_range("workers", 4usize, 1..=64),
        max_messages: s.in_range("sqs_max_messages", max_default, max_range),
        wait_time: s.in_range("sqs_wait_timeout", 20, wait_range),
        visibility_timeout: s.in_range("sqs_visibility_timeout", 120, 120..=43200),
        max_receive_count: s.in_range("max_receive_count", 10u32, 0..=1000),
        compression: if s.or("compressed_events", false) {
            Compression::Gzip
        } else {
            Compression::Auto
        },
        bad_object_policy: policy,
        records_check,
        object_progress: read_object_progress(s),
        event_id_field: read_event_id(s),
        request_period: logferry_input::config::request_period(s, 5, 3600),
        max_cycle: logferry_input::runtime::read_max_cycle(s),
    }
}

/// `resume_inside_objects` and `object_progress_ttl_in_seconds` (both read, so neither is ever an unknown key).
fn read_object_progress(s: &Section<'_>) -> Option<Duration> {
    let ttl = s.in_range("object_progress_ttl_in_seconds", 345_600u64, 60..=1_209_600);
    s.or("resume_inside_objects", true)
        .then(|| Duration::from_secs(ttl))
}

/// `event_id` and `event_id_field` (both read, so neither is ever an unknown key).
fn read_event_id(s: &Section<'_>) -> Option<String> {
    let on = s.or("event_id", false);
    let name = s.json_member_name("event_id_field");
    on.then(|| name.unwrap_or_else(|| "@logferry_id".to_owned()))
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

fn regex_opt(s: &Section<'_>, key: &str) -> Option<Regex> {
    let v: String = s.optional(key)?;
    match Regex::new(&v) {
        Ok(r) => Some(r),
        Err(e) => {
            s.error(
                key,
                ConfigErrorKind::InvalidValue,
                format!("property is not a valid regular expression: {e}"),
            );
            None
        }
    }
}

/// Reads `endpoint` (scheme://host[:port]).
pub fn read_endpoint(s: &Section<'_>) -> Option<String> {
    let e: String = s.optional("endpoint")?;
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        s.error(
            "endpoint",
            ConfigErrorKind::InvalidValue,
            format!("\"{e}\" must be scheme://host[:port]"),
        );
        return None;
    }
    Some(e.trim_end_matches('/').to_owned())
}

/// Reads `region` (mandatory) and checks its shape.
pub fn read_region(s: &Section<'_>, key: &str) -> Option<String> {
    let r: String = s.required(key)?;
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
