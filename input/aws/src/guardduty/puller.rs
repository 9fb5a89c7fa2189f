//! `AwsGuardDutyApiPuller`: every cycle lists the region's detectors (ListDetectors, paged), then for each
//! detector the ids of the findings updated since its position (ListFindings with `updatedAt >= since`, sorted by
//! `updatedAt`, 50 per page) and their contents (GetFindings, the page's 50 ids at once). A finding is sent as
//! GetFindings returns it (JSON, `@devo_pulling_id` added; the body is parsed once, here, not by the SDK: see
//! [`TakeBody`]); a finding updated later is sent again (its new
//! version). The position of each detector is committed after each batch is in Redis ([`super::position`]).

use super::position::DetectorPosition;
use super::GuardDutyConfig;
use crate::api::{ApiSession, Caller};
use crate::tag::TagVars;
use aws_sdk_guardduty::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_guardduty::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_guardduty::operation::list_detectors::ListDetectorsOutput;
use aws_sdk_guardduty::types::{Condition, FindingCriteria, OrderBy, SortCriteria};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body::Frame;
use logferry_input::{EventIdField, PullContext, Puller, PullerError, PullingIdField};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::runtime::Runtime;

/// The puller class name in logs (seed 002).
pub const PULLER_NAME: &str = "AwsGuardDutyApiPuller";

/// The PullError id of this puller.
const PULL_ERROR_ID: u32 = 312;

/// ListFindings' largest page and GetFindings' largest batch.
const BATCH: i32 = 50;

/// The `{event_type}` of the tag.
const EVENT_TYPE: &str = "findings";

/// Counters of one cycle (the seed's `Total event received: N, and sent: M`).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    received: u64,
    duplicated: u64,
    sent: u64,
}

/// GetFindings' body as GuardDuty sent it: each finding's JSON is kept as it came.
#[derive(Deserialize)]
struct FindingsBody<'a> {
    #[serde(borrow)]
    findings: Vec<&'a RawValue>,
}

/// The fields of a finding the puller needs.
#[derive(Deserialize)]
struct FindingHead {
    id: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
}

/// What the SDK is given to deserialize in place of a successful GetFindings body.
const NO_FINDINGS: &[u8] = b"{\"findings\":[]}";

/// Takes the body of a successful GetFindings response for the puller and hands the SDK an empty list of findings
/// to deserialize: the findings are parsed once, by the puller, from the JSON GuardDuty sent (the SDK's typed
/// findings cannot be written back as that JSON, and building them cost as much as reading the body again).
/// Error responses are left to the SDK, which reads their code and message.
#[derive(Debug, Default, Clone)]
struct TakeBody(Arc<Mutex<Option<Vec<u8>>>>);

impl TakeBody {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, body: Vec<u8>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
    }
}

impl Intercept for TakeBody {
    fn name(&self) -> &'static str {
        "TakeBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let response = context.response_mut();
        if !response.status().is_success() {
            return Ok(());
        }
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        // The body is usually still streaming here: it is read by the SDK (through `TakenBody`) before it
        // deserializes, so a retried attempt gets a fresh one.
        *response.body_mut() = match body.bytes() {
            Some(bytes) => {
                self.put(bytes.to_vec());
                SdkBody::from(NO_FINDINGS)
            }
            None => SdkBody::from_body_1_x(TakenBody {
                inner: body,
                read: Vec::new(),
                taker: self.clone(),
                done: false,
            }),
        };
        Ok(())
    }
}

/// A response body that passes the bytes of `inner` to its [`TakeBody`] and yields [`NO_FINDINGS`] instead.
struct TakenBody {
    inner: SdkBody,
    read: Vec<u8>,
    taker: TakeBody,
    done: bool,
}

impl http_body::Body for TakenBody {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.read.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.done = true;
                    this.taker.put(std::mem::take(&mut this.read));
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(NO_FINDINGS)))));
                }
            }
        }
    }
}

pub struct GuardDutyPuller {
    cfg: Arc<GuardDutyConfig>,
    rt: Option<Arc<Runtime>>,
    client: Option<aws_sdk_guardduty::Client>,
    caller: Caller,
    /// The tag with the session's account and the region filled in.
    tag: String,
    detectors: BTreeMap<String, DetectorPosition>,
    /// The stable id member (`event_id: true`): from the finding's id and `updatedAt`.
    event_id: Option<EventIdField>,
}

impl GuardDutyPuller {
    pub fn new(cfg: Arc<GuardDutyConfig>) -> Self {
        let caller = Caller::new(cfg.requests_per_second, &cfg.client.region);
        let event_id = cfg.event_id_field.as_deref().map(EventIdField::new);
        GuardDutyPuller {
            cfg,
            rt: None,
            client: None,
            caller,
            tag: String::new(),
            detectors: BTreeMap::new(),
            event_id,
        }
    }

    fn api(&self) -> Result<(Arc<Runtime>, aws_sdk_guardduty::Client), PullerError> {
        match (&self.rt, &self.client) {
            (Some(rt), Some(c)) => Ok((rt.clone(), c.clone())),
            _ => Err(PullerError::pull(PULL_ERROR_ID, "pull before setup")),
        }
    }

    /// The detector ids of the region (every page).
    fn list_detectors(&mut self, ctx: &PullContext) -> Result<Vec<String>, PullerError> {
        let (rt, client) = self.api()?;
        let request = |token| {
            client
                .list_detectors()
                .max_results(BATCH)
                .set_next_token(token)
                .send()
        };
        let take = |page: ListDetectorsOutput| {
            let next = page.next_token().map(str::to_owned);
            (page.detector_ids.unwrap_or_default(), next)
        };
        self.caller
            .list_all(&rt, ctx, "ListDetectors", request, take)
            .map_err(|e| e.into_pull_error(PULL_ERROR_ID))
    }

    /// Reads one detector's updated findings, page by page, committing its position after each batch; a cycle
    /// over its bound leaves the rest to the next cycle.
    fn read_detector(
        &mut self,
        ctx: &mut PullContext,
        detector: &str,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let (rt, client) = self.api()?;
        let first_since = self.cfg.start_time.map_or(0, |t| t.timestamp_millis());
        let since = self
            .detectors
            .entry(detector.to_owned())
            .or_insert_with(|| DetectorPosition::starting_at(first_since))
            .since;
        log::log!(
            ctx.routine_level(),
            "Detector \"{detector}\": reading the findings updated since \"{}\"",
            millis_utc(since)
        );
        let listed_at = Utc::now().timestamp_millis();
        let criteria = FindingCriteria::builder()
            .criterion(
                "updatedAt",
                Condition::builder().greater_than_or_equal(since).build(),
            )
            .build();
        let order = SortCriteria::builder()
            .attribute_name("updatedAt")
            .order_by(OrderBy::Asc)
            .build();
        let mut token: Option<String> = None;
        loop {
            let request = || {
                client
                    .list_findings()
                    .detector_id(detector)
                    .finding_criteria(criteria.clone())
                    .sort_criteria(order.clone())
                    .max_results(BATCH)
                    .set_next_token(token.clone())
                    .send()
            };
            let page = self
                .caller
                .call(&rt, ctx, "ListFindings", request)
                .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
            ctx.stats.requests += 1;
            if !page.finding_ids().is_empty() {
                self.read_batch(ctx, detector, page.finding_ids(), listed_at, counts)?;
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() || ctx.cycle_over() || ctx.stopping() {
                return Ok(());
            }
        }
    }

    /// GetFindings of one page of ids: each version not sent before is emitted; then the position is committed.
    fn read_batch(
        &mut self,
        ctx: &mut PullContext,
        detector: &str,
        ids: &[String],
        listed_at: i64,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let (rt, client) = self.api()?;
        let body = TakeBody::default();
        let request = || {
            client
                .get_findings()
                .detector_id(detector)
                .set_finding_ids(Some(ids.to_vec()))
                .customize()
                .interceptor(body.clone())
                .send()
        };
        self.caller
            .call(&rt, ctx, "GetFindings", request)
            .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
        ctx.stats.requests += 1;
        let bytes = body.take().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let findings = serde_json::from_str::<FindingsBody<'_>>(&text).map_err(|e| {
            PullerError::pull(
                PULL_ERROR_ID,
                format!(
                    "GetFindings of detector \"{detector}\" answered a body without findings: {e}"
                ),
            )
        })?;
        let pulling_id = PullingIdField::new(ctx.pulling_id());
        let mut batch_times = Vec::with_capacity(findings.findings.len());
        let mut position = self.detectors.get(detector).cloned().unwrap_or_default();
        for raw in findings.findings {
            counts.received += 1;
            ctx.stats.received += 1;
            let Some((id, updated_at)) = head_of(raw) else {
                let origin = format!("guardduty://{}/{detector}", self.cfg.client.region);
                ctx.set_aside(
                    &origin,
                    "a finding without a readable id and updatedAt",
                    raw.get().as_bytes(),
                )?;
                continue;
            };
            batch_times.push(updated_at);
            if position.already_sent(&id, updated_at) {
                counts.duplicated += 1;
                ctx.stats.duplicated += 1;
                continue;
            }
            let version = updated_at.to_string();
            let member = (self.event_id.as_mut()).map(|f| f.member_of(&[&id, &version]));
            ctx.emit_object(&self.tag, updated_at, raw.get(), Some(&pulling_id), member)?;
            position.record(&id, updated_at);
            counts.sent += 1;
        }
        position.advance(&batch_times, listed_at);
        self.detectors.insert(detector.to_owned(), position);
        // The batch's findings are in Redis before the position moves past them.
        ctx.commit_state(json!({ "detectors": self.detectors }))
    }
}

/// The id and `updatedAt` (epoch milliseconds) of a finding.
fn head_of(raw: &RawValue) -> Option<(String, i64)> {
    let head: FindingHead = serde_json::from_str(raw.get()).ok()?;
    let t = DateTime::parse_from_rfc3339(&head.updated_at).ok()?;
    Some((head.id, t.timestamp_millis()))
}

impl Puller for GuardDutyPuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let api = ApiSession::open(self.rt.clone(), &self.cfg.client, ctx)?;
        self.client = Some(crate::api::sdk_client!(aws_sdk_guardduty, api));
        self.tag = self.cfg.tag.render(TagVars {
            event_type: EVENT_TYPE,
            account_id: &api.session.account_id,
            region_id: &self.cfg.client.region,
        });
        self.rt = Some(api.rt);
        Ok(())
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        if let Some(detectors) = ctx.state().get("detectors") {
            self.detectors = serde_json::from_value(detectors.clone()).map_err(|e| {
                PullerError::pull(
                    PULL_ERROR_ID,
                    format!("the stored positions are not readable: {e}"),
                )
            })?;
            log::info!(
                "Persistence: positions of {} detector(s) retrieved",
                self.detectors.len()
            );
        }
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        self.caller.stats = Default::default();
        let detectors = self.list_detectors(ctx)?;
        if detectors.is_empty() {
            log::warn!(
                "No GuardDuty detector in region {}: there are no findings to read",
                self.cfg.client.region
            );
        }
        let mut counts = Counts::default();
        for (i, detector) in detectors.iter().enumerate() {
            if i > 0 && (ctx.cycle_over() || ctx.stopping()) {
                break;
            }
            self.read_detector(ctx, detector, &mut counts)?;
        }
        let level = if counts.received > 0 {
            log::Level::Info
        } else {
            ctx.routine_level()
        };
        log::log!(
            level,
            "Total event received: {}, and sent: {}",
            counts.received,
            counts.sent
        );
        if counts.duplicated > 0 {
            log::log!(
                level,
                "{} finding version(s) read again and not sent twice",
                counts.duplicated
            );
        }
        Ok(())
    }
}

fn millis_utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}
