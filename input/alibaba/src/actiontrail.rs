//! The `actiontrail` service: ActionTrail `LookupEvents` (2020-07-06) in time windows.
//!
//! Windows run from the state (or `initial_start_time_in_utc`) to `now - lag`, ending at the end of the previous
//! second (the API filters by whole seconds). Each window is paged with `NextToken`; its events go to Redis, then
//! the state `{next_start, edge_ids}` is committed. Inside a window, every write of its events to Redis also saves,
//! in the same `MULTI`/`EXEC`, where the window stands (`...:state:<puller>:window`: its bounds, the NextToken of the
//! page being read, the edge ids so far, and the events of that page done), so a restart after a crash resumes the
//! window at that page and skips what was queued instead of reading the window again. The next window starts at the same second the last one ended
//! (so an event landing late in that second is not missed) and the events of that edge second already sent are
//! filtered out by `eventId` (counted as duplicates). Requests are spaced to `requests_per_second`; throttling,
//! 5xx and transport errors are retried with backoff (honouring `x-acs-retry-after`).

use crate::config::{ActionTrailConfig, Credentials, SignatureVersion};
use crate::http::{authority, ApiError, Http, ServiceError};
use crate::sign;
use chrono::{DateTime, TimeZone, Utc};
use logferry_input::event_id::source_hash;
use logferry_input::progress::UNIT_PROGRESS_TTL;
use logferry_input::runtime::cycle_level;
use logferry_input::{PullContext, Puller, PullerError, SavedProgress};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const API: &str = "ActionTrail";
const VERSION: &str = "2020-07-06";
/// ActionTrail keeps events this long.
const RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(90);
/// Margin kept inside the 90 days so a request is not refused while it travels.
const RETENTION_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// Default start when `initial_start_time_in_utc` is absent.
const DEFAULT_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// `YYYY-MM-DDThh:mm:ssZ`, the API's time format.
pub fn api_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn log_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

fn parse_api_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t)
}

/// One page of LookupEvents.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<Value>,
    pub next_token: Option<String>,
}

/// Spaces requests to a budget of N per second.
pub struct RateLimiter {
    interval: Duration,
    last: Option<Instant>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            last: None,
        }
    }

    /// The wait before the next request may start.
    pub fn delay(&self, now: Instant) -> Duration {
        self.last
            .map(|l| (l + self.interval).saturating_duration_since(now))
            .unwrap_or_default()
    }

    pub fn mark(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

/// A LookupEvents client with signing, request budget and retries.
pub struct ActionTrailClient {
    http: Http,
    cfg: ActionTrailConfig,
    creds: Credentials,
    limiter: RateLimiter,
    stop: Arc<AtomicBool>,
    /// Requests sent (including retries).
    pub requests: u64,
}

impl ActionTrailClient {
    pub fn new(
        cfg: ActionTrailConfig,
        creds: Credentials,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        if creds.access_key_id.is_empty() || creds.access_key_secret.expose().is_empty() {
            return Err("access_key_id and access_key_secret are required".into());
        }
        if cfg.endpoint.is_empty() || authority(&cfg.endpoint).is_empty() {
            return Err(format!("no usable endpoint (region \"{}\")", cfg.region));
        }
        Ok(ActionTrailClient {
            http: Http::new(cfg.timeout),
            limiter: RateLimiter::new(cfg.requests_per_second),
            cfg,
            creds,
            stop,
            requests: 0,
        })
    }

    fn params(
        &self,
        start: &str,
        end: &str,
        max_results: u32,
        next_token: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut p = vec![
            ("StartTime".to_owned(), start.to_owned()),
            ("EndTime".to_owned(), end.to_owned()),
            ("MaxResults".to_owned(), max_results.to_string()),
        ];
        for (i, a) in self.cfg.lookup_attributes.iter().enumerate() {
            p.push((format!("LookupAttribute.{}.Key", i + 1), a.key.clone()));
            p.push((format!("LookupAttribute.{}.Value", i + 1), a.value.clone()));
        }
        if let Some(t) = next_token.filter(|t| !t.is_empty()) {
            p.push(("NextToken".to_owned(), t.to_owned()));
        }
        p
    }

    /// One LookupEvents call, retried on throttling/5xx/transport errors.
    pub fn lookup(
        &mut self,
        start: &str,
        end: &str,
        max_results: u32,
        next_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let params = self.params(start, end, max_results, next_token);
        let mut attempt = 0u32;
        loop {
            let wait = self.limiter.delay(Instant::now());
            if !wait.is_zero() {
                logferry_input::runtime::sleep_unless_stopped(&self.stop, wait);
            }
            self.limiter.mark(Instant::now());
            self.requests += 1;
            match self.call_once(&params) {
                Ok(page) => return Ok(page),
                Err(e) if e.is_retryable() && attempt < self.cfg.max_retries => {
                    attempt += 1;
                    let backoff = e.retry_after().unwrap_or_else(|| {
                        Duration::from_millis(500 << attempt.min(6)).min(Duration::from_secs(30))
                    });
                    log::warn!(
                        "{e}; retrying in {:.1} s (retry {attempt}/{})",
                        backoff.as_secs_f64(),
                        self.cfg.max_retries
                    );
                    if !logferry_input::runtime::sleep_unless_stopped(&self.stop, backoff) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn call_once(&self, params: &[(String, String)]) -> Result<Page, ApiError> {
        let host = authority(&self.cfg.endpoint).to_owned();
        let now = Utc::now();
        let nonce = sign::nonce();
        let mut headers: Vec<(String, String)> = Vec::new();
        let (method, url, debug_sts) = match self.cfg.signature_version {
            SignatureVersion::V3 => {
                let query = sign::canonical_query(params);
                let date = api_time(now);
                let body_hash = sign::sha256_hex(b"");
                let mut signed = vec![
                    ("host", host.as_str()),
                    ("x-acs-action", "LookupEvents"),
                    ("x-acs-version", VERSION),
                    ("x-acs-date", date.as_str()),
                    ("x-acs-signature-nonce", nonce.as_str()),
                    ("x-acs-content-sha256", body_hash.as_str()),
                ];
                if let Some(t) = &self.creds.security_token {
                    signed.push(("x-acs-security-token", t.expose()));
                }
                let s = sign::acs3_sign(
                    self.creds.access_key_secret.expose(),
                    "POST",
                    "/",
                    &query,
                    &signed,
                    b"",
                );
                for (k, v) in signed.iter().filter(|(k, _)| *k != "host") {
                    headers.push((k.to_string(), v.to_string()));
                }
                headers.push((
                    "Authorization".into(),
                    s.authorization(&self.creds.access_key_id),
                ));
                (
                    "POST",
                    format!("{}/?{query}", self.cfg.endpoint),
                    s.canonical_request,
                )
            }
            SignatureVersion::V2 => {
                let mut p = params.to_vec();
                for (k, v) in [
                    ("Action", "LookupEvents"),
                    ("Version", VERSION),
                    ("Format", "JSON"),
                    ("AccessKeyId", self.creds.access_key_id.as_str()),
                    ("SignatureMethod", "HMAC-SHA1"),
                    ("SignatureVersion", "1.0"),
                    ("SignatureNonce", nonce.as_str()),
                    ("Timestamp", api_time(now).as_str()),
                ] {
                    p.push((k.to_owned(), v.to_owned()));
                }
                if !self.cfg.region.is_empty() {
                    p.push(("RegionId".into(), self.cfg.region.clone()));
                }
                if let Some(t) = &self.creds.security_token {
                    p.push(("SecurityToken".into(), t.expose().to_owned()));
                }
                let sig = sign::rpc_v2_signature(self.creds.access_key_secret.expose(), "GET", &p);
                let sts = sign::rpc_v2_string_to_sign("GET", &p);
                (
                    "GET",
                    format!(
                        "{}/?{}&Signature={}",
                        self.cfg.endpoint,
                        sign::canonical_query(&p),
                        sign::pe(&sig)
                    ),
                    sts,
                )
            }
        };
        let reply = self.http.call(
            API,
            method,
            &url,
            &headers,
            if method == "POST" { Some(b"") } else { None },
        )?;
        let context = crate::config::place(&self.cfg.region, &self.cfg.endpoint);
        let body: Value =
            serde_json::from_slice(&reply.body).map_err(|e| ApiError::BadResponse {
                api: API,
                context: context.clone(),
                detail: format!(
                    "HTTP {} with a body that is not JSON ({e}): {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                ),
            })?;
        if reply.status != 200 || body.get("Code").is_some_and(|c| !c.is_null()) {
            let code = body
                .get("Code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let message = body
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if code.starts_with("SignatureDoesNotMatch") || code == "IncompleteSignature" {
                log::error!("ActionTrail refused the signature; the server's message (with its StringToSign): {message}; ours was: {debug_sts:?}");
            }
            let retry_after = reply
                .header("x-acs-retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|ms| Duration::from_millis(ms).min(Duration::from_secs(60)));
            return Err(ApiError::Service(Box::new(ServiceError {
                api: API,
                status: reply.status,
                code,
                message,
                request_id: body
                    .get("RequestId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                context,
                retry_after,
            })));
        }
        let events = match body.get("Events") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(other) => {
                return Err(ApiError::BadResponse {
                    api: API,
                    context,
                    detail: format!(
                        "Events is not a list: {}",
                        crate::truncate(&other.to_string(), 200)
                    ),
                })
            }
        };
        let next_token = body
            .get("NextToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(Page { events, next_token })
    }
}

/// The `actiontrail` puller.
pub struct ActionTrailPuller {
    cfg: ActionTrailConfig,
    creds: Credentials,
    client: Option<ActionTrailClient>,
    next_start: Option<DateTime<Utc>>,
    edge_ids: HashSet<String>,
    /// Whether the last cycle received events: an idle collector logs its routine lines at DEBUG.
    busy: bool,
    /// The backfill under way (more than one window was due), until it reaches the end of a cycle's range.
    backfill: Option<Backfill>,
    /// Where the window interrupted by a crash stood (its saved progress), until it is read again.
    resume: Option<WindowResume>,
}

/// The position inside a window, as each write saves it: the page's NextToken (`None`: the first page) and the edge
/// ids found before that page are the progress's `version`; its `position` counts the events of the page done.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct WindowResume {
    start: String,
    end: String,
    token: Option<String>,
    edge_ids: Vec<String>,
    #[serde(skip)]
    done_in_page: u64,
}

impl WindowResume {
    /// The saved progress of the window starting at `start`, if it is one that was interrupted: a window of one
    /// second ends where the next begins, so its progress would be taken for the next window's (never resumed).
    fn of(saved: SavedProgress, start: DateTime<Utc>) -> Option<WindowResume> {
        let mut resume: WindowResume = serde_json::from_str(&saved.version).ok()?;
        let end = parse_api_time(&resume.end)?;
        (resume.start == api_time(start) && end > start).then(|| {
            resume.done_in_page = saved.position;
            resume
        })
    }

    fn version(&self) -> String {
        serde_json::to_string(self).expect("window progress serialises")
    }
}

/// A backfill of windows: where it began (event time) and when (wall clock), for its share done and time left.
struct Backfill {
    from: DateTime<Utc>,
    began: Instant,
}

impl Backfill {
    /// Share done when the windows reached `reached` of `[from, end]`, and the time left at the pace so far.
    fn progress(&self, reached: DateTime<Utc>, end: DateTime<Utc>) -> (f64, Duration) {
        let total = (end - self.from).num_seconds().max(1) as f64;
        let done = ((reached - self.from).num_seconds().max(0) as f64 / total).min(1.0);
        let elapsed = self.began.elapsed().as_secs_f64();
        let left = if done > 0.0 {
            elapsed / done * (1.0 - done)
        } else {
            0.0
        };
        (done, Duration::from_secs_f64(left))
    }
}

impl ActionTrailPuller {
    pub fn new(cfg: ActionTrailConfig, creds: Credentials) -> Self {
        ActionTrailPuller {
            cfg,
            creds,
            client: None,
            next_start: None,
            edge_ids: HashSet::new(),
            busy: true,
            backfill: None,
            resume: None,
        }
    }

    fn client(&mut self) -> &mut ActionTrailClient {
        self.client.as_mut().expect("setup ran")
    }

    /// Pulls one window [start, end] (whole seconds, inclusive) page by page, from where `resume` says it stood;
    /// returns the new edge ids, or None when the stop interrupted it. Every write saves the page's position.
    fn pull_window(
        &mut self,
        ctx: &mut PullContext,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resume: Option<WindowResume>,
    ) -> Result<Option<HashSet<String>>, PullerError> {
        let (s, e) = (api_time(start), api_time(end));
        let max = self.cfg.max_results;
        let key = ctx.progress_key("window");
        let (mut token, mut skip, mut new_edge) = match resume {
            Some(r) => (r.token, r.done_in_page, r.edge_ids.into_iter().collect()),
            None if floor_second(start) == floor_second(end) => (None, 0, self.edge_ids.clone()),
            None => (None, 0, HashSet::new()),
        };
        let mut seen: HashSet<String> = HashSet::new();
        let end_sec = end.timestamp();
        loop {
            let before = self.client().requests;
            let page = match self.client().lookup(&s, &e, max, token.as_deref()) {
                Ok(p) => p,
                Err(err) if err.code() == "InvalidNextToken" && token.is_some() => {
                    log::warn!("ActionTrail refused the NextToken of window {s}..{e} ({err}); restarting the window (events already sent are filtered by eventId)");
                    token = None;
                    skip = 0;
                    continue;
                }
                Err(err) => return Err(pull_error(&err)),
            };
            ctx.stats.requests += self.client().requests - before;
            ctx.stats.received += page.events.len() as u64;
            let at = WindowResume {
                start: s.clone(),
                end: e.clone(),
                token: token.clone(),
                edge_ids: new_edge.iter().cloned().collect(),
                done_in_page: 0,
            };
            ctx.track_item(key.clone(), at.version(), skip, UNIT_PROGRESS_TTL);
            for (done, ev) in (1..).zip(page.events) {
                // Events queued before a restart: still read for the window's ids, not emitted again.
                let queued = done <= skip;
                ctx.advance_item(done);
                let Value::Object(map) = ev else {
                    if queued {
                        continue;
                    }
                    let origin = format!("actiontrail {} window {s}..{e}", self.cfg.region);
                    ctx.set_aside(
                        &origin,
                        "event is not a JSON object",
                        ev.to_string().as_bytes(),
                    )?;
                    continue;
                };
                let id = map
                    .get("eventId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let time = map
                    .get("eventTime")
                    .and_then(Value::as_str)
                    .and_then(parse_api_time);
                if let Some(id) = &id {
                    if self.edge_ids.contains(id) || !seen.insert(id.clone()) {
                        ctx.stats.duplicated += 1;
                        continue;
                    }
                    if time.is_some_and(|t| t.timestamp() >= end_sec) {
                        new_edge.insert(id.clone());
                    }
                }
                if queued {
                    continue;
                }
                let time_ms = time
                    .map(|t| t.timestamp_millis())
                    .unwrap_or_else(logferry::time::now_ms);
                let map = self.with_event_id(map, id.as_deref());
                ctx.emit_json(&self.cfg.tag, time_ms, map)?;
            }
            ctx.end_item();
            skip = 0;
            if ctx.stats.received > 0 {
                ctx.log_partial_stats();
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(Some(new_edge)),
            }
            if ctx.stopping() {
                return Ok(None);
            }
        }
    }
}

impl ActionTrailPuller {
    /// The event with its stable id member when `event_id` is on: from its `eventId` (an event without one: from its
    /// whole text, the same whenever the same event is read again).
    fn with_event_id(
        &self,
        mut map: Map<String, Value>,
        event_id: Option<&str>,
    ) -> Map<String, Value> {
        let Some(name) = &self.cfg.event_id_field else {
            return map;
        };
        let id = match event_id {
            Some(event_id) => source_hash(&["actiontrail", event_id]),
            None => source_hash(&["actiontrail", &Value::Object(map.clone()).to_string()]),
        };
        map.insert(name.clone(), Value::from(id));
        map
    }

    /// The window starting at `start` that a crash interrupted (its progress saved with its events), said in the log.
    fn interrupted_window(
        &self,
        ctx: &mut PullContext,
        start: DateTime<Utc>,
    ) -> Result<Option<WindowResume>, PullerError> {
        let key = ctx.progress_key("window");
        let resume = ctx
            .load_progress(&key)?
            .and_then(|saved| WindowResume::of(saved, start));
        if let Some(r) = &resume {
            log::info!(
                "Resuming window {}..{} at page {} event {}: {} events of that page already queued",
                r.start,
                r.end,
                r.token.as_deref().unwrap_or("(first)"),
                r.done_in_page,
                r.done_in_page
            );
        }
        Ok(resume)
    }
}

fn pull_error(e: &ApiError) -> PullerError {
    let mut err = PullerError::pull(300, format!("Error during pull: {e}"));
    if matches!(
        e.code(),
        "NoPermission"
            | "InvalidAccessKeyId.NotFound"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
    ) {
        err = err.fatal();
    }
    err
}

impl Puller for ActionTrailPuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let client = ActionTrailClient::new(self.cfg.clone(), self.creds.clone(), ctx.stop_flag())
            .map_err(crate::cannot_build_authentication)?;
        self.client = Some(client);
        let now = Utc::now();
        let end = floor_second(now - chrono::TimeDelta::from_std(self.cfg.lag).unwrap_or_default());
        let start = end - chrono::TimeDelta::hours(1);
        self.client()
            .lookup(&api_time(start), &api_time(end), 1, None)
            .map_err(crate::authentication_test_failed)?;
        Ok(())
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let state = ctx.state();
        if let Some(t) = state
            .get("next_start")
            .and_then(Value::as_str)
            .and_then(parse_api_time)
        {
            self.next_start = Some(t);
            self.edge_ids = state
                .get("edge_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            log::info!(
                "Resuming from the persistence: next window starts at {} ({} edge event ids)",
                api_time(t),
                self.edge_ids.len()
            );
            self.resume = self.interrupted_window(ctx, t)?;
        } else {
            let start = match self.cfg.initial_start_time_in_utc {
                Some(t) if t > Utc::now() => {
                    return Err(PullerError::init(
                        3,
                        format!("Date {} is in the future", api_time(t)),
                    ))
                }
                Some(t) => t,
                None => floor_second(Utc::now() - DEFAULT_LOOKBACK),
            };
            self.next_start = Some(start);
            self.edge_ids.clear();
            log::info!("No persistence: starting at {}", api_time(start));
            self.resume = self.interrupted_window(ctx, start)?;
        }
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let now = Utc::now();
        let lag = chrono::TimeDelta::from_std(self.cfg.lag).unwrap_or_default();
        let limit = now - lag;
        let level = cycle_level(self.busy);
        log::log!(
            level,
            "Retrieving timestamp ({}) is greater than {} (datetime.now() - {} seconds). Setting end datetime to {}.",
            log_time(now),
            log_time(limit),
            self.cfg.lag.as_secs(),
            log_time(limit)
        );
        let end = floor_second(limit) - chrono::TimeDelta::seconds(1);
        log::log!(
            level,
            "Setting end_datetime to {} (end of previous second to account for Alibaba time filtration granularity)",
            log_time(end + chrono::TimeDelta::microseconds(999_999))
        );
        let mut start = self.next_start.unwrap_or(end);
        let oldest = floor_second(now - RETENTION + RETENTION_MARGIN);
        if start < oldest {
            log::warn!(
                "The start {} is older than the 90 days ActionTrail keeps: events before {} cannot be retrieved through the API \
                 (use actiontrail_log_service for a longer retention). Starting at {}",
                api_time(start),
                api_time(oldest),
                api_time(oldest)
            );
            start = oldest;
            self.edge_ids.clear();
        }
        let window =
            chrono::TimeDelta::from_std(self.cfg.window).unwrap_or(chrono::TimeDelta::hours(1));
        // More than one window due: a backfill, whose progress the figures show.
        if end - start > window && self.backfill.is_none() {
            self.backfill = Some(Backfill {
                from: start,
                began: Instant::now(),
            });
        }
        while start <= end && !ctx.stopping() {
            let resume = self.resume.take().filter(|r| r.start == api_time(start));
            let wend = match resume.as_ref().and_then(|r| parse_api_time(&r.end)) {
                // The interrupted window is read again with its own bounds (its NextToken belongs to them).
                Some(resumed_end) => resumed_end,
                None => (start + window - chrono::TimeDelta::seconds(1)).min(end),
            };
            let Some(edge) = self.pull_window(ctx, start, wend, resume)? else {
                return Ok(());
            };
            let window_busy = ctx.stats.received > 0;
            log::log!(cycle_level(window_busy), "Updating the persistence");
            let edge_list: Vec<&String> = edge.iter().collect();
            ctx.commit_state(json!({"next_start": api_time(wend), "edge_ids": edge_list}))?;
            if window_busy {
                ctx.log_partial_stats();
            }
            self.edge_ids = edge;
            self.next_start = Some(wend);
            if let Some(b) = &self.backfill {
                let (ratio, left) = b.progress(wend, end);
                ctx.report_backfill(ratio, left);
                if wend == end {
                    self.backfill = None;
                }
            }
            if wend == end {
                break;
            }
            // Next window: from the edge second of this one (its events already sent are filtered by eventId).
            start = wend;
            if ctx.cycle_over() {
                // A catch-up goes on in the next cycle, which the runtime starts at once.
                self.busy = true;
                return Ok(());
            }
        }
        self.busy = ctx.stats.received > 0;
        log::log!(cycle_level(self.busy), "The data is up to date!");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_progress_is_the_share_of_the_range_reached() {
        let from = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let b = Backfill {
            from,
            began: Instant::now() - Duration::from_secs(10),
        };
        let end = from + chrono::TimeDelta::hours(4);
        let (ratio, left) = b.progress(from + chrono::TimeDelta::hours(1), end);
        assert_eq!(ratio, 0.25);
        assert!((29.0..=31.0).contains(&left.as_secs_f64()), "{left:?}");
        assert_eq!(b.progress(end, end).0, 1.0);
        assert_eq!(b.progress(end, end).1, Duration::ZERO);
    }

    #[test]
    fn limiter_spaces_requests() {
        let mut l = RateLimiter::new(2.0);
        let t = Instant::now();
        assert_eq!(l.delay(t), Duration::ZERO);
        l.mark(t);
        assert_eq!(l.delay(t), Duration::from_millis(500));
        assert_eq!(l.delay(t + Duration::from_millis(600)), Duration::ZERO);
    }

    #[test]
    fn times_are_formatted_like_the_api_and_the_seed() {
        let t = Utc.timestamp_opt(1_739_791_456, 0).single().unwrap();
        assert_eq!(api_time(t), "2025-02-17T11:24:16Z");
        assert_eq!(
            log_time(t + chrono::TimeDelta::microseconds(999_999)),
            "2025-02-17 11:24:16.999999+00:00"
        );
        assert_eq!(parse_api_time("2025-02-17T11:24:16Z"), Some(t));
    }
}
