//! The declarations of the keys of the `alibaba` input and its services ([`logferry::config::keys`]).

use logferry::config::keys::Default;
use logferry::config::{Key, KeySet};
use logferry_input::runtime::MAX_CYCLE_SECONDS;

pub const CREDENTIALS: Key = Key::dict(
    "credentials",
    Some(&CREDENTIALS_KEYS),
    "the RAM user's or STS credentials",
)
.required();
pub const SERVICES: Key = Key::dict(
    "services",
    None,
    "`<service>: {...}`: `actiontrail`, the Log Service services (`actiontrail_log_service`, `access_log_service`, \
     `db_log_service`, `internal_audit_service`) and `smq`, named by their key or by `type`",
)
.required();

/// The keys of the `alibaba` input (`inputs.<name>`).
pub static ALIBABA_INPUT_KEYS: KeySet = KeySet {
    id: "inputs.alibaba",
    place: "`inputs.<name>` of type `alibaba`",
    groups: &[&[CREDENTIALS, SERVICES]],
};

pub const ACCESS_KEY_ID: Key = Key::text("access_key_id", "AccessKey id").required();
pub const ACCESS_KEY_SECRET: Key = Key::text("access_key_secret", "AccessKey secret")
    .required()
    .secret();
pub const SECURITY_TOKEN: Key =
    Key::text("security_token", "STS token of temporary credentials").secret();

/// `inputs.<name>.credentials` of the `alibaba` input.
pub static CREDENTIALS_KEYS: KeySet = KeySet {
    id: "inputs.alibaba.credentials",
    place: "`inputs.<name>.credentials` of type `alibaba`",
    groups: &[&[ACCESS_KEY_ID, ACCESS_KEY_SECRET, SECURITY_TOKEN]],
};

pub const TYPE: Key = Key::text(
    "type",
    "the service's kind, for several instances of one service",
)
.computed_default("the service's key");
pub const ENABLED: Key = Key::bool("enabled", true, "a disabled service is still validated");
pub const TAG: Key = Key::text("tag", "tag of the events")
    .computed_default("per service (see the table of services)");
pub const REGION: Key = Key::text(
    "region",
    "mandatory unless `endpoint` is given; e.g. `cn-hangzhou`",
);
pub const TIMEOUT_IN_SECONDS: Key = Key::int(
    "timeout_in_seconds",
    30,
    1,
    300,
    "timeout of one HTTP request",
);
pub const DATETIME_FORMAT: Key = Key::text_or(
    "datetime_format",
    crate::config::DATETIME_FORMAT,
    "format of `initial_start_time_in_utc` (empty = InitVariablesError 1)",
);

/// `type`, `enabled` and `tag`: every service's.
const EVERY_SERVICE: [Key; 3] = [TYPE, ENABLED, TAG];

pub const ACTIONTRAIL_ENDPOINT: Key = Key::format(
    "endpoint",
    "scheme://host[:port]",
    "VPC: `https://actiontrail-vpc.<region>.aliyuncs.com`",
)
.with_default(Default::Computed(
    "`https://actiontrail.<region>.aliyuncs.com`",
));
pub const ACTIONTRAIL_START: Key = Key::format(
    "initial_start_time_in_utc",
    "`YYYY-MM-DDTHH:MM:SSZ`, not in the future",
    "where the first window starts; changing it resets the persistence",
)
.with_default(Default::Computed("1 day before the first start"));
pub const ACTIONTRAIL_REQUEST_PERIOD: Key = Key::int(
    "request_period_in_seconds",
    60,
    1,
    86_400,
    "time between cycle starts",
);
pub const LAG_IN_SECONDS: Key = Key::int(
    "lag_in_seconds",
    600,
    600,
    86_400,
    "windows end at now − lag, at the end of the previous second",
);
pub const WINDOW_SIZE_IN_SECONDS: Key = Key::int(
    "window_size_in_seconds",
    3600,
    60,
    86_400,
    "longest window; state committed after each",
);
pub const MAX_RESULTS: Key = Key::int("max_results", 50, 1, 50, "`MaxResults` of LookupEvents");
pub const ACTIONTRAIL_REQUESTS_PER_SECOND: Key = Key::float_in(
    "requests_per_second",
    2.0,
    0.1,
    10.0,
    "requests are spaced to this budget",
);
pub const MAX_RETRIES: Key = Key::int(
    "max_retries",
    6,
    0,
    20,
    "retries of Throttling/ServiceUnavailable/5xx/transport (backoff 1 s .. 30 s, or `x-acs-retry-after` ms)",
);
pub const SIGNATURE_VERSION: Key = Key::one_of(
    "signature_version",
    "v3",
    &["v3", "v2"],
    "`v3` (ACS3-HMAC-SHA256) or `v2` (RPC HMAC-SHA1)",
);
pub const LOOKUP_ATTRIBUTES: Key = Key::format(
    "lookup_attributes",
    "up to 2 `{key, value}`",
    "LookupEvents filters; keys ServiceName, EventName, User, EventId, ResourceType, ResourceName, EventRW, \
     EventAccessKeyId, SensitiveAction, SourceIpAddress, EventType, RoleName",
);

/// The keys of an `actiontrail` service.
pub static ACTIONTRAIL_KEYS: KeySet = KeySet {
    id: "inputs.alibaba.actiontrail",
    place: "`inputs.<name>.services.<service>` of type `alibaba`, service `actiontrail`",
    groups: &[
        &EVERY_SERVICE,
        &[
            REGION,
            ACTIONTRAIL_ENDPOINT,
            ACTIONTRAIL_START,
            DATETIME_FORMAT,
            ACTIONTRAIL_REQUEST_PERIOD,
            LAG_IN_SECONDS,
            WINDOW_SIZE_IN_SECONDS,
            MAX_CYCLE_SECONDS,
            MAX_RESULTS,
            ACTIONTRAIL_REQUESTS_PER_SECOND,
            MAX_RETRIES,
            SIGNATURE_VERSION,
            LOOKUP_ATTRIBUTES,
            TIMEOUT_IN_SECONDS,
        ],
        &logferry_input::event_id::EVENT_ID_KEYS,
    ],
};

pub const PROJECT: Key = Key::text("project", "the Log Service project").required();
pub const LOGSTORE: Key = Key::text(
    "logstore",
    "the logstore; ActionTrail trails deliver to `actiontrail_<trail>`",
)
.required();
pub const LOG_SERVICE_ENDPOINT: Key = Key::format(
    "endpoint",
    "scheme://host[:port]",
    "full project host, e.g. `https://<project>.<region>-intranet.log.aliyuncs.com`",
)
.with_default(Default::Computed(
    "`https://<project>.<region>.log.aliyuncs.com`",
));
pub const USE_CONSUMER_GROUP: Key = Key::bool(
    "use_consumer_group",
    true,
    "false: this collector reads every shard, cursors in the local persistence (each shard's own entry, merged: a \
     restart resumes every shard where it stopped; a shard started at `end` keeps that position at once)",
);
pub const CONSUMER_GROUP: Key = Key::text_or(
    "consumer_group",
    "logferry",
    "created if missing (timeout = 2 × heartbeat), updated if it exists",
);
pub const CONSUMER_NAME: Key = Key::text(
    "consumer_name",
    "this collector's name in the group, never shared by two collectors (not empty). Default: the host name from \
     the system (`gethostname`, never the `HOSTNAME` variable, which systemd, cron and plain shells do not export) \
     and the pid of the collector's main process, logged at start (`... this collector is consumer <name>`). A \
     restarted InputProcess keeps it and takes its shards back at once; a restarted collector gets a new one and the \
     old name's shards come to it after the group timeout (in a container the main process has the same pid at every \
     start, so the name stays).",
)
.computed_default("`<host name>-<input id>-<pid>`");
pub const HEARTBEAT_INTERVAL_IN_SECONDS: Key = Key::int(
    "heartbeat_interval_in_seconds",
    20,
    1,
    300,
    "consumer group heartbeat period",
);
pub const LOG_SERVICE_START: Key = Key::format(
    "initial_start_time_in_utc",
    "`YYYY-MM-DDTHH:MM:SSZ`, not in the future",
    "where shards without checkpoint start (GetCursor `from=<unix s>`); resets the local persistence when changed",
);
pub const START_POSITION: Key = Key::one_of(
    "start_position",
    "begin",
    &["begin", "end"],
    "where shards without checkpoint start when no start time is given",
);
pub const FETCH_COUNT: Key = Key::int("fetch_count", 1000, 1, 1000, "log groups per PullLogs");
pub const LOG_SERVICE_REQUEST_PERIOD: Key = Key::int(
    "request_period_in_seconds",
    2,
    0,
    3600,
    "pause once every shard is caught up",
);
pub const PARSE_EVENT_FIELD: Key = Key::bool(
    "parse_event_field",
    false,
    "parse the `event` JSON string into an object (kept as a string, with a warning, when it is not JSON)",
)
.computed_default("true for `actiontrail_log_service`, else false");

/// The keys of a Log Service service.
pub static LOG_SERVICE_KEYS: KeySet = KeySet {
    id: "inputs.alibaba.log_service",
    place:
        "`inputs.<name>.services.<service>` of type `alibaba`, services `actiontrail_log_service`, \
            `access_log_service`, `db_log_service`, `internal_audit_service`",
    groups: &[
        &EVERY_SERVICE,
        &[
            REGION,
            PROJECT,
            LOGSTORE,
            LOG_SERVICE_ENDPOINT,
            USE_CONSUMER_GROUP,
            CONSUMER_GROUP,
            CONSUMER_NAME,
            HEARTBEAT_INTERVAL_IN_SECONDS,
            LOG_SERVICE_START,
            DATETIME_FORMAT,
            START_POSITION,
            FETCH_COUNT,
            LOG_SERVICE_REQUEST_PERIOD,
            MAX_CYCLE_SECONDS,
            PARSE_EVENT_FIELD,
            TIMEOUT_IN_SECONDS,
        ],
        &logferry_input::event_id::EVENT_ID_KEYS,
    ],
};

pub const ACCOUNT_ID: Key = Key::text(
    "account_id",
    "the Alibaba Cloud account id; mandatory unless `endpoint`",
);
pub const SMQ_ENDPOINT: Key = Key::format("endpoint", "scheme://host[:port]", "the MNS endpoint")
    .with_default(Default::Computed(
        "`https://<account_id>.mns.<region>.aliyuncs.com`",
    ));
pub const QUEUE: Key = Key::text("queue", "the queue; letters, digits, `-`").required();
pub const BATCH_SIZE: Key = Key::int("batch_size", 16, 1, 16, "`numOfMessages` per receive");
pub const WAIT_SECONDS: Key = Key::int(
    "wait_seconds",
    20,
    0,
    30,
    "long polling (`waitseconds`); a stop waits for the running poll",
);
pub const BASE64_DECODE_BODY: Key = Key::bool("base64_decode_body", true, "false: bodies as sent");
pub const VISIBILITY_TIMEOUT_IN_SECONDS: Key = Key::int_unset(
    "visibility_timeout_in_seconds",
    1,
    43_200,
    "ChangeMessageVisibility right after receiving; the NEW receipt handle is used to delete; none = the queue's",
);
pub const SMQ_REQUEST_PERIOD: Key = Key::int(
    "request_period_in_seconds",
    0,
    0,
    3600,
    "pause after an empty receive",
);
pub const SMQ_TIMEOUT_IN_SECONDS: Key = Key::int(
    "timeout_in_seconds",
    30,
    1,
    300,
    "timeout of one HTTP request, added to `wait_seconds`",
);

/// The keys of an `smq` service.
pub static SMQ_KEYS: KeySet = KeySet {
    id: "inputs.alibaba.smq",
    place: "`inputs.<name>.services.<service>` of type `alibaba`, service `smq`",
    groups: &[
        &EVERY_SERVICE,
        &[
            ACCOUNT_ID,
            REGION,
            SMQ_ENDPOINT,
            QUEUE,
            BATCH_SIZE,
            WAIT_SECONDS,
            BASE64_DECODE_BODY,
            VISIBILITY_TIMEOUT_IN_SECONDS,
            SMQ_REQUEST_PERIOD,
            MAX_CYCLE_SECONDS,
            SMQ_TIMEOUT_IN_SECONDS,
        ],
    ],
};

/// Every key set of the `alibaba` input.
pub const ALIBABA_SETS: [&KeySet; 5] = [
    &ALIBABA_INPUT_KEYS,
    &CREDENTIALS_KEYS,
    &ACTIONTRAIL_KEYS,
    &LOG_SERVICE_KEYS,
    &SMQ_KEYS,
];
