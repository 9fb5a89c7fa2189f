//! `AwsCloudtrailApiPuller`: reads CloudTrail's event history with LookupEvents, slot by slot, oldest first.
//!
//! Each cycle reads the slots from the state's `next_start` up to `now - gap_until_now`; after a slot's events are
//! in Redis the state moves to its end (with the EventIds of that end second, see [`super::slots`]), so a restart
//! resumes at the next slot. Within a slot every page is read (NextToken) at the pace of `requests_per_second`; a
//! throttled page is asked again, never skipped.

use super::config::{CloudTrailApiConfig, HISTORY};
use super::slots::{plan, Progress, Slot};
use crate::api::{ApiSession, Caller};
use crate::sqs::puller::event_type_of_source;
use crate::tag::{TagCache, TagVars};
use aws_sdk_cloudtrail::primitives::DateTime as AwsTime;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, SecondsFormat, Utc};
use logferry_input::{EventIdField, PullContext, Puller, PullerError, PullingIdField};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The puller class name in logs (seed 002).
pub const PULLER_NAME: &str = "AwsCloudtrailApiPuller";

/// The PullError id of this puller.
const PULL_ERROR_ID: u32 = 310;

/// The region whose event history holds the events of the global services (IAM, STS, CloudFront).
pub const GLOBAL_EVENTS_REGION: &str = "us-east-1";

/// LookupEvents' largest page.
const PAGE_SIZE: i32 = 50;

/// Counters of one cycle, as the seed's line shows them.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    total: u64,
    dropped: u64,
    other_region: u64,
    duplicated: u64,
    generated: u64,
}

/// Where the history is read next: the start of the next slot and the EventIds already read of that second.
#[derive(Debug, Clone, Default, PartialEq)]
struct Position {
    next_start: i64,
    edge_ids: HashSet<String>,
}

impl Position {
    fn from_state(v: &Value) -> Option<Position> {
        Some(Position {
            next_start: v.get("next_start")?.as_i64()?,
            edge_ids: v
                .get("edge_ids")?
                .as_array()?
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
        })
    }

    fn to_state(&self) -> Value {
        let mut ids: Vec<&String> = self.edge_ids.iter().collect();
        ids.sort();
        json!({
            "next_start": self.next_start,
            "next_start_utc": utc(self.next_start),
            "edge_ids": ids,
        })
    }
}

/// The fields of a CloudTrail record the tag needs.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, rename = "recipientAccountId")]
    account: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "awsRegion")]
    region: Option<Cow<'a, str>>,
}

pub struct CloudTrailApiPuller {
    cfg: Arc<CloudTrailApiConfig>,
    rt: Option<Arc<Runtime>>,
    client: Option<aws_sdk_cloudtrail::Client>,
    account_id: String,
    caller: Caller,
    position: Option<Position>,
    progress: Option<Progress>,
    tags: TagCache,
    /// The stable id member (`event_id: true`): from the event's `eventId`.
    event_id: Option<EventIdField>,
}

impl CloudTrailApiPuller {
    pub fn new(cfg: Arc<CloudTrailApiConfig>) -> Self {
        let caller = Caller::new(cfg.requests_per_second, &cfg.client.region);
        let event_id = cfg.event_id_field.as_deref().map(EventIdField::new);
        CloudTrailApiPuller {
            cfg,
            rt: None,
            client: None,
            account_id: String::new(),
            caller,
            position: None,
            progress: None,
            tags: TagCache::default(),
            event_id,
        }
    }

    /// `['all_sources']` or `['s3.amazonaws.com', ...]`, as the seed prints them.
    fn sources_text(&self) -> String {
        let names: Vec<String> = if self.cfg.sources.is_empty() {
            vec!["'all_sources'".into()]
        } else {
            self.cfg.sources.iter().map(|s| format!("'{s}'")).collect()
        };
        format!("[{}]", names.join(", "))
    }

    /// Where a fresh puller starts: `start_time`, else one slot before the end; never before the history's depth.
    fn first_start(&self, until: i64) -> i64 {
        let oldest = until - HISTORY.as_secs() as i64;
        let wanted = match self.cfg.start_time {
            Some(t) => t.timestamp(),
            None => until - self.cfg.time_slot.as_secs() as i64,
        };
        if wanted < oldest {
            log::warn!(
                "start_time {} is older than CloudTrail's event history (90 days): starting at {}",
                utc(wanted),
                utc(oldest)
            );
            return oldest;
        }
        wanted
    }

    /// Reads one slot (every source, every page), emits its events and commits the position after them.
    fn read_slot(
        &mut self,
        ctx: &mut PullContext,
        slot: Slot,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let (Some(rt), Some(client)) = (self.rt.clone(), self.client.clone()) else {
            return Err(PullerError::pull(PULL_ERROR_ID, "pull before setup"));
        };
        // The position stays until the slot is committed: a failed slot is read again from its start.
        let mut seen = self
            .position
            .as_ref()
            .map(|p| p.edge_ids.clone())
            .unwrap_or_default();
        let mut edge_ids = HashSet::new();
        let sources: Vec<Option<String>> = if self.cfg.sources.is_empty() {
            vec![None]
        } else {
            self.cfg.sources.iter().cloned().map(Some).collect()
        };
        let pulling_id = PullingIdField::new(ctx.pulling_id());
        for source in sources {
            let mut token: Option<String> = None;
            loop {
                let request = || {
                    let mut r = client
                        .lookup_events()
                        .start_time(AwsTime::from_secs(slot.start))
                        .end_time(AwsTime::from_secs(slot.end))
                        .max_results(PAGE_SIZE)
                        .set_next_token(token.clone());
                    if let Some(s) = &source {
                        r = r.lookup_attributes(
                            LookupAttribute::builder()
                                .attribute_key(LookupAttributeKey::EventSource)
                                .attribute_value(s)
                                .build()
                                .expect("key and value set"),
                        );
                    }
                    r.send()
                };
                let page = self
                    .caller
                    .call(&rt, ctx, "LookupEvents", request)
                    .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
                ctx.stats.requests += 1;
                for event in page.events() {
                    counts.total += 1;
                    ctx.stats.received += 1;
                    let id = event.event_id().unwrap_or_default();
                    if !seen.insert(id.to_owned()) {
                        counts.duplicated += 1;
                        ctx.stats.duplicated += 1;
                        continue;
                    }
                    let time = event.event_time().map(|t| t.secs()).unwrap_or(slot.start);
                    if time >= slot.end {
                        edge_ids.insert(id.to_owned());
                    }
                    if event
                        .event_name()
                        .is_some_and(|n| self.cfg.drop_event_names.contains(n))
                    {
                        counts.dropped += 1;
                        continue;
                    }
                    self.emit(ctx, event, time, &pulling_id, counts)?;
                }
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        let position = Position {
            next_start: slot.end,
            edge_ids,
        };
        ctx.commit_state(position.to_state())?;
        self.position = Some(position);
        Ok(())
    }

    /// Emits the event's `CloudTrailEvent` JSON with `@devo_pulling_id`; an event without a readable record is
    /// set aside.
    fn emit(
        &mut self,
        ctx: &mut PullContext,
        event: &aws_sdk_cloudtrail::types::Event,
        time: i64,
        pulling_id: &PullingIdField,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let origin = format!(
            "cloudtrail-api://{}/{}",
            self.cfg.client.region,
            event.event_id().unwrap_or("?")
        );
        let record = event.cloud_trail_event().unwrap_or_default();
        let head = match serde_json::from_str::<Head<'_>>(record) {
            Ok(h) => h,
            Err(e) => {
                let reason = format!("CloudTrailEvent is not a JSON object: {e}");
                return ctx.set_aside(&origin, &reason, record.as_bytes());
            }
        };
        let region = head.region.as_deref().unwrap_or(&self.cfg.client.region);
        if region != self.cfg.client.region {
            counts.other_region += 1;
        }
        let event_type = match (self.cfg.auto_event_type, event.event_source()) {
            (true, Some(source)) => event_type_of_source(source),
            _ => Cow::Borrowed("events"),
        };
        let vars = TagVars {
            event_type: &event_type,
            account_id: head.account.as_deref().unwrap_or(&self.account_id),
            region_id: region,
        };
        let tag = self.tags.get(&self.cfg.tag, vars);
        let id = (self.event_id.as_mut())
            .zip(event.event_id())
            .map(|(field, event_id)| field.member_of(&["cloudtrail", event_id]));
        ctx.emit_object(tag, time * 1000, record, Some(pulling_id), id)?;
        counts.generated += 1;
        Ok(())
    }

    /// The tag template with the session's account and the region filled in (the seed's `tag template used`).
    fn tag_used(&self) -> String {
        self.cfg.tag.render(TagVars {
            event_type: "{event_type}",
            account_id: &self.account_id,
            region_id: &self.cfg.client.region,
        })
    }
}

impl Puller for CloudTrailApiPuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let api = ApiSession::open(self.rt.clone(), &self.cfg.client, ctx)?;
        self.client = Some(crate::api::sdk_client!(aws_sdk_cloudtrail, api));
        self.account_id = api.session.account_id.clone();
        self.rt = Some(api.rt);
        Ok(())
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        if self.cfg.client.region != GLOBAL_EVENTS_REGION {
            log::info!(
                "Global service events (IAM, STS, CloudFront) are recorded in {GLOBAL_EVENTS_REGION} only: add it to this service's \"regions\" to read them"
            );
        }
        self.position = Position::from_state(ctx.state());
        if let Some(p) = &self.position {
            log::info!(
                "Resuming the event history at {} (the next time slot)",
                utc(p.next_start)
            );
        }
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let started = Instant::now();
        let now = Utc::now();
        log::log!(
            ctx.routine_level(),
            "Starting a new pulling from \"{}\" source at \"{}\"",
            self.sources_text(),
            now.to_rfc3339_opts(SecondsFormat::Micros, false)
        );
        let until = now.timestamp() - self.cfg.gap_until_now.as_secs() as i64;
        if self.position.is_none() {
            self.position = Some(Position {
                next_start: self.first_start(until),
                edge_ids: HashSet::new(),
            });
        }
        let next = self.position.as_ref().map_or(until, |p| p.next_start);
        let slot_secs = self.cfg.time_slot.as_secs() as i64;
        let slots = plan(next, until, slot_secs);
        // A backfill (more than one slot due) is reported at INFO; the steady state's single slot at the routine
        // level.
        let level = if slots.len() > 1 || self.progress.is_some() {
            log::Level::Info
        } else {
            ctx.routine_level()
        };
        log::log!(
            level,
            "Using {} minutes as \"gap until now\", start_date: \"{}\", end_date: \"{}\", time_slot_in_hours: \"{}\"",
            self.cfg.gap_until_now.as_secs() / 60,
            utc(next),
            utc(until),
            slot_secs / 3600
        );
        log::log!(
            level,
            "Total number of time slots to be processed: {}",
            slots.len()
        );
        if slots.len() > 1 && self.progress.is_none() {
            self.progress = Some(Progress::new(slots.len() as u64));
        }
        if let Some(p) = &mut self.progress {
            p.due(slots.len() as u64);
        }
        self.caller.stats = Default::default();
        let mut counts = Counts::default();
        for (i, slot) in slots.iter().enumerate() {
            // At least one slot per cycle; then the cycle's bound or a stop ends it (the next cycle goes on).
            if i > 0 && (ctx.cycle_over() || ctx.stopping()) {
                break;
            }
            self.read_slot(ctx, *slot, &mut counts)?;
            if let Some(p) = &mut self.progress {
                if p.slot_done() {
                    log::info!("{}", p.line());
                }
                ctx.report_backfill(p.percent() / 100.0, p.time_left());
                if p.finished() {
                    self.progress = None;
                }
            }
        }
        let calls = self.caller.stats;
        let avg_ms = if calls.responses == 0 {
            0.0
        } else {
            calls.busy.as_secs_f64() * 1000.0 / calls.responses as f64
        };
        let level = if counts.total > 0 {
            log::Level::Info
        } else {
            ctx.routine_level()
        };
        log::log!(
            level,
            "Received {} response(s), messages (total/dropped/other_region/duplicated/generated): {}/{}/{}/{}/{}, tag template used: \"{}\", avg_time_per_source_message: {:.3} ms",
            calls.responses,
            counts.total,
            counts.dropped,
            counts.other_region,
            counts.duplicated,
            counts.generated,
            self.tag_used(),
            avg_ms
        );
        if calls.throttled > 0 {
            log::warn!(
                "LookupEvents was throttled {} time(s) in this cycle; every throttled page was read again",
                calls.throttled
            );
        }
        let elapsed = started.elapsed();
        if elapsed > self.cfg.request_period {
            log::info!(
                "Elapsed time: {:.3} seconds. Last retrieval took too much time, no wait will be applied in this loop",
                elapsed.as_secs_f64()
            );
        }
        Ok(())
    }
}

/// `2022-09-12T12:34:56.000000+00:00`, as the seed prints dates.
fn utc(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_round_trips_through_the_state() {
        let p = Position {
            next_start: 1_700_000_000,
            edge_ids: ["b".to_owned(), "a".to_owned()].into_iter().collect(),
        };
        let v = p.to_state();
        assert_eq!(v["edge_ids"], json!(["a", "b"]));
        assert_eq!(v["next_start_utc"], "2023-11-14T22:13:20.000000+00:00");
        assert_eq!(Position::from_state(&v), Some(p));
        assert_eq!(Position::from_state(&Value::Null), None);
    }
}
