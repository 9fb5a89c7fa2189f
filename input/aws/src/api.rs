//! What the pullers that call AWS APIs directly (CloudTrail LookupEvents, and the next ones) share: the async
//! runtime and session of their setup, a request pacer that keeps them within an API's requests-per-second
//! budget, and one call loop that waits out throttling and passing failures on the same request, so that no
//! page is ever skipped.

use crate::config::ClientConfig;
use crate::errors::{err_text, healing, Healing};
use crate::session::{self, Session};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use logferry::config::{ConfigErrorKind, Key, Section};
use logferry_input::{PullContext, PullerError};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// AWS error codes that mean "too many requests": the same request is sent again after a wait.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Longest wait between two attempts of a throttled request.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(32);

/// Attempts of a request that failed in a way that may pass (network, 5xx) before the cycle gives up.
const TRANSIENT_ATTEMPTS: u32 = 5;

/// Why an API call failed for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The collector's own credentials were refused (wrong secret, unknown key, expired token).
    #[error("{operation} refused the credentials in region {region}: {reason}")]
    Refused {
        operation: &'static str,
        region: String,
        reason: String,
    },
    /// The request itself was refused (4xx): no retry can fix it.
    #[error("{operation} failed in region {region}: {reason}")]
    Failed {
        operation: &'static str,
        region: String,
        reason: String,
    },
    /// A failure that may pass (network, 5xx) kept coming.
    #[error("{operation} failed {attempts} times in region {region}: {reason}")]
    GaveUp {
        operation: &'static str,
        region: String,
        attempts: u32,
        reason: String,
    },
    /// A controlled stop came while waiting.
    #[error("{operation} interrupted by the stop")]
    Stopped { operation: &'static str },
}

impl ApiError {
    /// As a puller error of the seeds' PullError family, with the puller's id.
    pub fn into_pull_error(self, id: u32) -> PullerError {
        let fatal = matches!(self, ApiError::Refused { .. } | ApiError::Failed { .. });
        let e = PullerError::pull(id, self.to_string());
        if fatal {
            e.fatal()
        } else {
            e
        }
    }
}

/// The async runtime and session of an API puller, built by its setup (after fork, in the InputProcess).
pub struct ApiSession {
    pub rt: Arc<Runtime>,
    pub session: Session,
}

impl ApiSession {
    /// Starts the runtime (once) and the session (logs the seeds' setup lines; SetupError 100/101).
    pub fn open(
        rt: Option<Arc<Runtime>>,
        client: &ClientConfig,
        ctx: &PullContext,
    ) -> Result<ApiSession, PullerError> {
        let rt = match rt {
            Some(rt) => rt,
            None => Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("aws-api")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        PullerError::setup(100, format!("cannot start the async runtime: {e}"))
                    })?,
            ),
        };
        let id = ctx.identity();
        let session_name: String = format!("logferry-{}-{}", id.input_id, id.service)
            .chars()
            .take(64)
            .collect();
        let session = rt
            .block_on(session::start(client, &session_name))
            .map_err(|e| PullerError::setup(101, format!("service \"{}\": {e}", id.service)))?;
        Ok(ApiSession { rt, session })
    }
}

/// Spaces requests so that at most `per_second` start in any second (the API's budget per account and region).
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Instant::now(),
        }
    }

    /// Waits for the next request's turn; false when a stop came first.
    pub fn wait_turn(&mut self, ctx: &PullContext) -> bool {
        let now = Instant::now();
        if self.next > now && !ctx.sleep(self.next - now) {
            return false;
        }
        self.next = Instant::now().max(self.next) + self.interval;
        true
    }

    /// Pushes the next turn back by `d` (after a throttling answer the budget is spent).
    pub fn hold_off(&mut self, d: Duration) {
        self.next = self.next.max(Instant::now() + d);
    }
}

/// Counters of the calls of one cycle.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallStats {
    /// Answers received (the seeds' `Received N response(s)`).
    pub responses: u64,
    /// Throttling answers waited out.
    pub throttled: u64,
    /// Time spent in successful calls.
    pub busy: Duration,
}

/// Calls an API operation in its turn, sending the same request again after throttling (waits of 1, 2, 4 ... 32 s)
/// and after passing failures (up to [`TRANSIENT_ATTEMPTS`]): a page is never skipped.
pub struct Caller {
    pub pacer: Pacer,
    pub stats: CallStats,
    region: String,
}

impl Caller {
    pub fn new(per_second: f64, region: &str) -> Caller {
        Caller {
            pacer: Pacer::new(per_second),
            stats: CallStats::default(),
            region: region.to_owned(),
        }
    }

    pub fn call<T, E, Fut>(
        &mut self,
        rt: &Runtime,
        ctx: &PullContext,
        operation: &'static str,
        mut request: impl FnMut() -> Fut,
    ) -> Result<T, ApiError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut throttles = 0u32;
        let mut failures = 0u32;
        loop {
            if !self.pacer.wait_turn(ctx) {
                return Err(ApiError::Stopped { operation });
            }
            let started = Instant::now();
            let e = match rt.block_on(request()) {
                Ok(out) => {
                    self.stats.responses += 1;
                    self.stats.busy += started.elapsed();
                    return Ok(out);
                }
                Err(e) => e,
            };
            let reason = err_text(&e);
            if e.code().is_some_and(|c| THROTTLING_CODES.contains(&c)) {
                self.stats.throttled += 1;
                let wait = Duration::from_secs(1 << throttles.min(5)).min(MAX_THROTTLE_WAIT);
                throttles += 1;
                log::warn!(
                    "{operation} throttled ({reason}); the same request is sent again in {} s",
                    wait.as_secs()
                );
                self.pacer.hold_off(wait);
                continue;
            }
            match healing(&e) {
                Healing::Refused => {
                    return Err(ApiError::Refused {
                        operation,
                        region: self.region.clone(),
                        reason,
                    })
                }
                Healing::Permanent => {
                    return Err(ApiError::Failed {
                        operation,
                        region: self.region.clone(),
                        reason,
                    })
                }
                Healing::Transient => {
                    failures += 1;
                    if failures >= TRANSIENT_ATTEMPTS {
                        return Err(ApiError::GaveUp {
                            operation,
                            region: self.region.clone(),
                            attempts: failures,
                            reason,
                        });
                    }
                    let wait = Duration::from_secs(1 << failures);
                    log::warn!(
                        "{operation} failed ({reason}); attempt {} of {TRANSIENT_ATTEMPTS} in {} s",
                        failures + 1,
                        wait.as_secs()
                    );
                    self.pacer.hold_off(wait);
                }
            }
        }
    }
}

impl Caller {
    /// Every page of a listing (nextToken), each in its turn: `request(token)` asks for one page, `take(page)`
    /// returns its items and the next token (None or empty at the end).
    pub fn list_all<T, E, Fut, I>(
        &mut self,
        rt: &Runtime,
        ctx: &PullContext,
        operation: &'static str,
        mut request: impl FnMut(Option<String>) -> Fut,
        mut take: impl FnMut(T) -> (Vec<I>, Option<String>),
    ) -> Result<Vec<I>, ApiError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.call(rt, ctx, operation, || request(token.clone()))?;
            let (more, next) = take(page);
            items.extend(more);
            token = next.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(items);
            }
        }
    }
}

/// The pattern `start_time` must match (the seed's `start_time_regex`): an RFC 3339 UTC time, e.g.
/// `2022-09-12T12:34:56.123456+00:00` or `2024-01-02T03:04:05Z`.
pub const START_TIME_REGEX: &str =
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]00:00)$";

/// `start_time` of the API services: None inside when absent; the outer None when invalid (recorded, with the
/// seed's AwsServiceConfigurationError ids of the service's table).
pub fn read_start_time(
    s: &Section<'_>,
    declared: &Key,
    not_a_string_id: u32,
    wrong_format_id: u32,
) -> Option<Option<DateTime<Utc>>> {
    let key = declared.name;
    let path = s.key_path(key);
    let text = match s.get_value(declared) {
        None | Some(Value::Null) => return Some(None),
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            s.error(
                key,
                ConfigErrorKind::WrongType,
                format!("AwsServiceConfigurationError({not_a_string_id}): \"{path}\" property must be a string"),
            );
            return None;
        }
    };
    let pattern = regex::Regex::new(START_TIME_REGEX).expect("valid pattern");
    let parsed = pattern
        .is_match(&text)
        .then(|| DateTime::parse_from_rfc3339(&text).ok())
        .flatten();
    let Some(t) = parsed else {
        s.error(
            key,
            ConfigErrorKind::InvalidValue,
            format!(
                "AwsServiceConfigurationError({wrong_format_id}): The property \"{path}\" from configuration is having a wrong format, expected pattern: \"{START_TIME_REGEX}\""
            ),
        );
        return None;
    };
    let t = t.with_timezone(&Utc);
    if t > Utc::now() {
        s.error(
            key,
            ConfigErrorKind::InvalidValue,
            format!("\"{text}\" is in the future"),
        );
        return None;
    }
    Some(Some(t))
}

/// The SDK client of an API puller (`$sdk`: the SDK crate) on the session's configuration, with the SDK's own
/// retries off: throttling and passing failures are retried by [`Caller`], on the same request, within the budget.
macro_rules! sdk_client {
    ($sdk:ident, $api:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from(&$api.session.sdk)
                .retry_config($sdk::config::retry::RetryConfig::disabled())
                .build(),
        )
    };
}
pub(crate) use sdk_client;
