//! The declarations of the keys of the `aws` input (seed 002) and the `sqs_collector` input (seed 001), and of their
//! S3/SQS services ([`logferry::config::keys`]); the CloudTrail API and CloudWatch Logs services declare theirs in
//! their folders. The two inputs name the credentials differently and differ in two SQS ranges: each has its own
//! declarations, the rest is shared.

use crate::cloudtrail_api::config::CLOUDTRAIL_API_KEYS;
use crate::cloudwatch_logs::CLOUDWATCH_LOGS_KEYS;
use crate::guardduty::GUARDDUTY_KEYS;
use crate::metrics::METRICS_KEYS;
use logferry::config::keys::Default;
use logferry::config::{Key, KeySet};
use logferry_input::runtime::MAX_CYCLE_SECONDS;

/// The credential keys of one input ([`crate::config::read_credentials`]).
pub struct CredentialKeys {
    pub access_key: Key,
    pub access_secret: Key,
    pub base_role: Key,
    pub target_role: Key,
    pub external_id: Key,
}

const ACCESS_KEY: &str =
    "access key id of static keys (goes with the secret); none = the default chain \
                          (environment, profile, web identity, container, instance role)";
const ACCESS_SECRET: &str = "secret access key (goes with the access key id)";
const BASE_ROLE: &str = "role ARN assumed first (self-account with keys; cross-account base role with the default chain)";
const TARGET_ROLE: &str =
    "customer role ARN assumed with the base role's session (cross-account: needs the base role, \
                           no keys)";
const EXTERNAL_ID: &str = "external id of the assume role";

/// The `aws` input's names (in its `credentials` dictionary).
pub const AWS_CREDENTIAL_KEYS: CredentialKeys = CredentialKeys {
    access_key: Key::text("access_key", ACCESS_KEY),
    access_secret: Key::text("access_secret", ACCESS_SECRET).secret(),
    base_role: Key::text("base_assume_role", BASE_ROLE),
    target_role: Key::text("target_assume_role", TARGET_ROLE),
    external_id: Key::text("assume_role_external_id", EXTERNAL_ID).secret(),
};

/// The `sqs_collector` input's names (at the input's level, as seed 001).
pub const SQS_COLLECTOR_CREDENTIAL_KEYS: CredentialKeys = CredentialKeys {
    access_key: Key::text("aws_access_key_id", ACCESS_KEY),
    access_secret: Key::text("aws_secret_access_key", ACCESS_SECRET).secret(),
    base_role: Key::text("aws_base_account_role", BASE_ROLE),
    target_role: Key::text("aws_cross_account_role", TARGET_ROLE),
    external_id: Key::text("aws_external_id", EXTERNAL_ID).secret(),
};

pub const SESSION_TOKEN: Key =
    Key::text("session_token", "token of temporary static keys").secret();
pub const PROFILE: Key = Key::text(
    "profile",
    "named profile of the default chain (when no access key is given)",
);
pub const SESSION_DURATION_IN_SECONDS: Key = Key::int(
    "session_duration_in_seconds",
    3600,
    900,
    43_200,
    "lifetime of assumed-role sessions; renewed before expiry by the SDK's identity cache",
);

const REGION_FORMAT: &str = "an AWS region, e.g. us-east-1";
/// `region` of the `sqs_collector` input.
pub const REGION: Key = Key::format(
    "region",
    REGION_FORMAT,
    "region of the queues, buckets and APIs",
)
.required();
/// `region` of the `aws` input: the default of its services' `regions`.
pub const AWS_REGION: Key = Key::format(
    "region",
    REGION_FORMAT,
    "region of the queues, buckets and APIs of the services without `regions`; mandatory unless every service \
     gives its `regions`",
);
/// `regions` of every service of the `aws` input.
pub const REGIONS: Key = Key::list(
    "regions",
    "one puller per region (a list of AWS regions, each once; S3/SQS services: the queue of that name in each region, \
     not with `sqs_queue_url` and more than one region); see Regions",
)
.computed_default("the input's `region`");
pub const ENDPOINT: Key = Key::format(
    "endpoint",
    "scheme://host[:port]",
    "endpoint override used for SQS, S3 (path style) and STS (VPC interface endpoints, a local test server); none = \
     AWS's public endpoints",
);
pub const ENVIRONMENT: Key = Key::text(
    "environment",
    "value of the `{environment}` tag placeholder",
);
pub const CREDENTIALS: Key = Key::dict(
    "credentials",
    Some(&AWS_CREDENTIALS_KEYS),
    "how the pullers authenticate (none: the default chain)",
);
pub const REQUESTS_PER_SECOND: Key = Key::float_in(
    "requests_per_second",
    0.1,
    0.1,
    25.0,
    "CloudWatch Logs calls per second of this input's services; mandatory when a `types: [logs]` service is \
     configured (seed: `AwsInputConfigurationError(0)`)",
)
.with_default(Default::None);
pub const SERVICES: Key = Key::dict(
    "services",
    None,
    "`<service>: {...}`: `audit-events-all`, `non-cloudwatch-logs`, `cisco-umbrella`, `service-events-all`, \
     `sqs-cloudwatch-consumer` (S3/SQS, keys of `inputs.aws.services`), `audit-events-all` with `types: \
     [audit_apis]` (`inputs.aws.cloudtrail_api`), any name with `types: [logs]` (`inputs.aws.cloudwatch_logs`), \
     `aws-guardduty` (`inputs.aws.guardduty`), `metrics-all`, `ec2`, `ebs`, `s3`, `lambda`, `rds`, `elb`, `dynamodb` \
     and any name with `types: [metrics]` (`inputs.aws.metrics`)",
)
.required();

/// The keys of the `aws` input (`inputs.<name>`, type `aws`).
pub static AWS_INPUT_KEYS: KeySet = KeySet {
    id: "inputs.aws",
    place: "`inputs.<name>` of type `aws`",
    groups: &[&[
        AWS_REGION,
        ENDPOINT,
        ENVIRONMENT,
        CREDENTIALS,
        REQUESTS_PER_SECOND,
        SERVICES,
    ]],
};

/// The `credentials` dictionary of the `aws` input.
pub static AWS_CREDENTIALS_KEYS: KeySet = KeySet {
    id: "inputs.aws.credentials",
    place: "`inputs.<name>.credentials` of type `aws`",
    groups: &[&[
        AWS_CREDENTIAL_KEYS.access_key,
        AWS_CREDENTIAL_KEYS.access_secret,
        AWS_CREDENTIAL_KEYS.base_role,
        AWS_CREDENTIAL_KEYS.target_role,
        AWS_CREDENTIAL_KEYS.external_id,
        SESSION_TOKEN,
        PROFILE,
        SESSION_DURATION_IN_SECONDS,
    ]],
};

/// The SQS keys whose ranges differ between the two seeds.
pub struct SqsRangeKeys {
    pub max_messages: Key,
    pub wait_timeout: Key,
}

pub const AWS_SQS_RANGES: SqsRangeKeys = SqsRangeKeys {
    max_messages: Key::int("sqs_max_messages", 10, 1, 10, "messages per ReceiveMessage"),
    wait_timeout: Key::int("sqs_wait_timeout", 20, 0, 20, "long poll seconds"),
};

pub const SQS_COLLECTOR_SQS_RANGES: SqsRangeKeys = SqsRangeKeys {
    max_messages: Key::int("sqs_max_messages", 1, 1, 6, "messages per ReceiveMessage"),
    wait_timeout: Key::int("sqs_wait_timeout", 20, 20, 20, "long poll seconds"),
};

pub const KEY_REGEX: Key = Key::format(
    "key_regex",
    "regex",
    "only object keys matching it are read; others count as discarded files",
)
.aliases(&["file_filter"]);
pub const EVENT_TYPE_FILE_REGEX_PATTERNS: Key = Key::dict(
    "event_type_file_regex_patterns",
    None,
    "`{event_type: regex}`: the first regex matching the object key gives the event type",
);
pub const WORKERS: Key = Key::int(
    "workers",
    4,
    1,
    64,
    "messages processed in parallel, each acknowledged on its own",
);
pub const SQS_VISIBILITY_TIMEOUT: Key = Key::int(
    "sqs_visibility_timeout",
    120,
    120,
    43_200,
    "seconds a received message stays invisible; extended while it is processed",
);
pub const MAX_RECEIVE_COUNT: Key = Key::int(
    "max_receive_count",
    10,
    0,
    1000,
    "a message received more times than this is reported and set aside; 0 = off",
);
pub const COMPRESSED_EVENTS: Key = Key::bool(
    "compressed_events",
    false,
    "objects are always gzip (a non-gzip object is a bad object); false: detected by the gzip magic bytes",
);
pub const BAD_OBJECT_POLICY: Key = Key::one_of(
    "bad_object_policy",
    "set_aside",
    &["set_aside", "retry"],
    "an object that cannot be read as its format: `set_aside` (reported, kept in the dead-letter stream, message \
     acknowledged) or `retry` (message left in the queue until `max_receive_count`)",
);
pub const RECORDS_CHECK: Key = Key::one_of(
    "records_check",
    "structure",
    &["structure", "grammar"],
    "how much of each element of a `{\"Records\": [...]}` document is checked: `structure` (strings, escapes and \
     brackets) or `grammar` (also the full JSON grammar, about 2x the scanner's CPU); see Objects",
);
pub const REQUEST_PERIOD_IN_SECONDS: Key = Key::int(
    "request_period_in_seconds",
    5,
    0,
    3600,
    "pause between pull cycles (a cycle drains the queue); none after a cycle cut by `max_cycle_seconds`",
);
pub const DO_NOT_SEND: Key = Key::bool(
    "do_not_send",
    false,
    "read and acknowledge, emit nothing (dry run)",
);
pub const DEBUG_MD5: Key = Key::bool(
    "debug_md5",
    false,
    "also emit `{\"md5\",\"message_id\",\"queue\"}` per message to `my.app.sqs.message_body`",
);
pub const AUTO_EVENT_TYPE: Key = Key::bool(
    "auto_event_type",
    false,
    "`{event_type}` from the event (CloudTrail `eventSource`, EventBridge `source`) instead of the service's default",
);

pub const RESUME_INSIDE_OBJECTS: Key = Key::bool(
    "resume_inside_objects",
    true,
    "save each object's progress with every flush; a redelivered message resumes inside the object (see Resuming \
     inside an object)",
);
pub const OBJECT_PROGRESS_TTL_IN_SECONDS: Key = Key::int(
    "object_progress_ttl_in_seconds",
    345_600,
    60,
    1_209_600,
    "expiry of a progress entry whose message never came back (default 4 days)",
);
pub use logferry_input::event_id::{DEFAULT_EVENT_ID_FIELD, EVENT_ID, EVENT_ID_FIELD};

/// The keys both seeds' S3/SQS pullers read ([`crate::config::read_common`]), ranges aside.
pub const COMMON_SQS_KEYS: [Key; 13] = [
    KEY_REGEX,
    EVENT_TYPE_FILE_REGEX_PATTERNS,
    WORKERS,
    SQS_VISIBILITY_TIMEOUT,
    MAX_RECEIVE_COUNT,
    COMPRESSED_EVENTS,
    BAD_OBJECT_POLICY,
    RECORDS_CHECK,
    RESUME_INSIDE_OBJECTS,
    OBJECT_PROGRESS_TTL_IN_SECONDS,
    EVENT_ID,
    EVENT_ID_FIELD,
    REQUEST_PERIOD_IN_SECONDS,
];

pub const ENABLED: Key = Key::bool("enabled", true, "a disabled service is still validated");
pub const TYPES: Key = Key::list(
    "types",
    "`audit-events-all`: `audits_s3` (default) and/or `audit_apis` (the CloudTrail API puller); \
     `non-cloudwatch-logs`: `flowlogs`, `cloudfrontlogs` (default both); `logs` on any service selects CloudWatch Logs, \
     `metrics` CloudWatch Metrics",
)
.computed_default("all of the service");
pub const SQS_QUEUE_NAME: Key = Key::text(
    "sqs_queue_name",
    "the queue's name, resolved at setup (`{input_id}` is replaced); 1..80 of A-Za-z0-9_- , optional .fifo",
)
.computed_default("<service>-<input id>");
pub const SQS_QUEUE_URL: Key = Key::format(
    "sqs_queue_url",
    "https://sqs.<region>.amazonaws.com/<account>/<queue>",
    "the queue's URL (instead of `sqs_queue_name`)",
);
pub const TAG_PLACEHOLDERS: &str =
    "placeholders event_type account_id region_id format_version environment service_name";
pub const TAG: Key = Key::format("tag", TAG_PLACEHOLDERS, "tag template")
    .computed_default("per service (see the table of services)");
/// `request_period_in_seconds` of the API services that read on a clock of their own (CloudTrail API, CloudWatch
/// Logs, GuardDuty).
pub const API_REQUEST_PERIOD_IN_SECONDS: Key = Key::int(
    "request_period_in_seconds",
    60,
    0,
    3600,
    "time between cycle starts",
);
/// The `tag` of an API service whose tags default to `default`; `placeholders` as the tables show them.
pub const fn api_service_tag(
    default: &'static str,
    placeholders: &'static str,
    meaning: &'static str,
) -> Key {
    Key::format("tag", placeholders, meaning).with_default(Default::Text(default))
}
pub const ACK_MESSAGES: Key = Key::bool(
    "ack_messages",
    true,
    "delete messages once their events are in Redis",
);

/// The keys of one S3/SQS service of the `aws` input.
pub static AWS_SERVICE_KEYS: KeySet = KeySet {
    id: "inputs.aws.services",
    place: "`inputs.<name>.services.<service>` of type `aws` (S3/SQS services)",
    groups: &[
        &[
            ENABLED,
            TYPES,
            SQS_QUEUE_NAME,
            SQS_QUEUE_URL,
            TAG,
            AUTO_EVENT_TYPE,
            ACK_MESSAGES,
            REGIONS,
        ],
        &COMMON_SQS_KEYS,
        &[AWS_SQS_RANGES.max_messages, AWS_SQS_RANGES.wait_timeout],
        &[DO_NOT_SEND, DEBUG_MD5, MAX_CYCLE_SECONDS],
    ],
};

pub const BASE_URL: Key = Key::format(
    "base_url",
    "https://sqs.<region>.amazonaws.com/<account>/<queue>",
    "the queue's URL",
)
.required();
pub const SQS_COLLECTOR_ACK_MESSAGES: Key = Key::bool(
    "ack_messages",
    true,
    "delete messages once their events are in Redis",
)
.with_default(Default::None)
.required();
pub const DIRECT_MODE: Key = Key::bool(
    "direct_mode",
    false,
    "the message body is the event (one per line) instead of an S3 notification",
);
pub const SQS_COLLECTOR_SERVICES: Key = Key::dict(
    "services",
    None,
    "`<service>: {...}` with the keys of `inputs.sqs_collector.services`",
)
.required();

/// The keys of the `sqs_collector` input (seed 001: credentials and queue settings at the input's level).
pub static SQS_COLLECTOR_INPUT_KEYS: KeySet = KeySet {
    id: "inputs.sqs_collector",
    place: "`inputs.<name>` of type `sqs_collector`",
    groups: &[
        &[
            REGION,
            ENDPOINT,
            BASE_URL,
            SQS_COLLECTOR_ACK_MESSAGES,
            DIRECT_MODE,
        ],
        &[
            SQS_COLLECTOR_CREDENTIAL_KEYS.access_key,
            SQS_COLLECTOR_CREDENTIAL_KEYS.access_secret,
            SQS_COLLECTOR_CREDENTIAL_KEYS.base_role,
            SQS_COLLECTOR_CREDENTIAL_KEYS.target_role,
            SQS_COLLECTOR_CREDENTIAL_KEYS.external_id,
            SESSION_TOKEN,
            PROFILE,
            SESSION_DURATION_IN_SECONDS,
        ],
        &COMMON_SQS_KEYS,
        &[
            SQS_COLLECTOR_SQS_RANGES.max_messages,
            SQS_COLLECTOR_SQS_RANGES.wait_timeout,
        ],
        &[
            DO_NOT_SEND,
            DEBUG_MD5,
            MAX_CYCLE_SECONDS,
            SQS_COLLECTOR_SERVICES,
        ],
    ],
};

pub const SQS_COLLECTOR_TAG: Key = Key::format("tag", "placeholder service_name", "tag template")
    .with_default(Default::Text("my.app.sqs.{service_name}"));
pub const FORMAT: Key = Key::one_of(
    "format",
    "auto",
    &["auto", "cloudtrail", "lines"],
    "`auto`: `{\"Records\": [...]}` documents split, anything else one event per line; `cloudtrail`; `lines`",
);
pub const SERVICE_KEY_REGEX: Key = Key::format(
    "key_regex",
    "regex",
    "only object keys matching it are read (overrides the input's)",
);

/// The keys of one service of the `sqs_collector` input.
pub static SQS_COLLECTOR_SERVICE_KEYS: KeySet = KeySet {
    id: "inputs.sqs_collector.services",
    place: "`inputs.<name>.services.<service>` of type `sqs_collector`",
    groups: &[&[SQS_COLLECTOR_TAG, FORMAT, SERVICE_KEY_REGEX, ENABLED]],
};

/// Every key set of the `aws` input.
pub const AWS_SETS: [&KeySet; 7] = [
    &AWS_INPUT_KEYS,
    &AWS_CREDENTIALS_KEYS,
    &AWS_SERVICE_KEYS,
    &CLOUDTRAIL_API_KEYS,
    &CLOUDWATCH_LOGS_KEYS,
    &GUARDDUTY_KEYS,
    &METRICS_KEYS,
];

/// Every key set of the `sqs_collector` input.
pub const SQS_COLLECTOR_SETS: [&KeySet; 2] =
    [&SQS_COLLECTOR_INPUT_KEYS, &SQS_COLLECTOR_SERVICE_KEYS];
