//! `AwsCloudwatchLogsPuller`: every cycle lists the log groups (DescribeLogGroups with the prefix: groups created
//! while running are found), then reads each group's new events with FilterLogEvents (nextToken pages). The
//! position of every log stream (its newest event time and the EventIds of that millisecond) is committed after
//! each page is in Redis; a pass starts [`LATE_WINDOW`] before the group's newest event, so that events that
//! reach CloudWatch late in another stream are still read, and the stream positions drop what was already sent.

use super::CloudWatchLogsConfig;
use crate::api::{ApiSession, Caller};
use chrono::{SecondsFormat, Utc};
use logferry_input::{PullContext, Puller, PullerError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

pub const PULLER_NAME: &str = "AwsCloudwatchLogsPuller";

/// The PullError id of this puller.
const PULL_ERROR_ID: u32 = 311;

/// How far before a group's newest event a pass starts again (events reach CloudWatch Logs out of order across
/// streams; later than this they are not read).
pub const LATE_WINDOW: Duration = Duration::from_secs(300);

/// Position of one log stream: its newest event time and the ids of the events of that millisecond.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StreamPosition {
    ts: i64,
    ids: BTreeSet<String>,
}

/// Position of one log group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GroupPosition {
    /// Events older than this are never read (the group's `start_time`).
    floor: i64,
    /// The newest event time read in the group.
    newest: i64,
    streams: BTreeMap<String, StreamPosition>,
}

impl GroupPosition {
    /// Where the next pass starts.
    fn since(&self) -> i64 {
        (self.newest - LATE_WINDOW.as_millis() as i64).max(self.floor)
    }

    /// True when the event was read before (then it is not sent again); else records it.
    fn seen(&mut self, stream: &str, ts: i64, id: &str) -> bool {
        let p = self.streams.entry(stream.to_owned()).or_default();
        if ts < p.ts || (ts == p.ts && p.ids.contains(id)) {
            return true;
        }
        if ts > p.ts {
            p.ts = ts;
            p.ids.clear();
        }
        p.ids.insert(id.to_owned());
        self.newest = self.newest.max(ts);
        false
    }

    /// Forgets streams whose newest event is before the next pass's start (any event they get later is new).
    fn prune(&mut self) {
        let since = self.since();
        self.streams.retain(|_, p| p.ts >= since);
    }
}

/// Counters of one cycle.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    total: u64,
    duplicated: u64,
    generated: u64,
}

pub struct CloudWatchLogsPuller {
    cfg: Arc<CloudWatchLogsConfig>,
    rt: Option<Arc<Runtime>>,
    client: Option<aws_sdk_cloudwatchlogs::Client>,
    caller: Caller,
    groups: BTreeMap<String, GroupPosition>,
}

impl CloudWatchLogsPuller {
    pub fn new(cfg: Arc<CloudWatchLogsConfig>) -> Self {
        let caller = Caller::new(cfg.requests_per_second, &cfg.client.region);
        CloudWatchLogsPuller {
            cfg,
            rt: None,
            client: None,
            caller,
            groups: BTreeMap::new(),
        }
    }

    fn api(&self) -> Result<(Arc<Runtime>, aws_sdk_cloudwatchlogs::Client), PullerError> {
        match (&self.rt, &self.client) {
            (Some(rt), Some(c)) => Ok((rt.clone(), c.clone())),
            _ => Err(PullerError::pull(PULL_ERROR_ID, "pull before setup")),
        }
    }

    /// The names of the groups `log_group` selects (a name, a prefix, or `/` for all).
    fn list_groups(&mut self, ctx: &PullContext) -> Result<Vec<String>, PullerError> {
        let (rt, client) = self.api()?;
        let prefix = (self.cfg.log_group != "/").then(|| self.cfg.log_group.clone());
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = || {
                client
                    .describe_log_groups()
                    .set_log_group_name_prefix(prefix.clone())
                    .set_next_token(token.clone())
                    .send()
            };
            let page = self
                .caller
                .call(&rt, ctx, "DescribeLogGroups", request)
                .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
            names.extend(
                page.log_groups()
                    .iter()
                    .filter_map(|g| g.log_group_name().map(str::to_owned)),
            );
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// The streams of a group (for a first retrieval stream by stream).
    fn list_streams(&mut self, ctx: &PullContext, group: &str) -> Result<Vec<String>, PullerError> {
        let (rt, client) = self.api()?;
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = || {
                client
                    .describe_log_streams()
                    .log_group_name(group)
                    .set_next_token(token.clone())
                    .send()
            };
            let page = self
                .caller
                .call(&rt, ctx, "DescribeLogStreams", request)
                .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
            names.extend(
                page.log_streams()
                    .iter()
                    .filter_map(|s| s.log_stream_name().map(str::to_owned)),
            );
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// Reads one group's new events: one pass over all streams, or (first retrieval without the optimized
    /// approach) one pass per stream.
    fn read_group(
        &mut self,
        ctx: &mut PullContext,
        group: &str,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let first = !self.groups.contains_key(group);
        if first {
            let floor = match self.cfg.start_time {
                Some(t) => t.timestamp_millis(),
                None => Utc::now().timestamp_millis() - self.cfg.request_period.as_millis() as i64,
            };
            log::info!(
                "New log group \"{group}\": reading it from \"{}\"",
                millis_utc(floor)
            );
            self.groups.insert(
                group.to_owned(),
                GroupPosition {
                    floor,
                    newest: floor,
                    streams: BTreeMap::new(),
                },
            );
        }
        if first && !self.cfg.use_first_optimized_retrieval {
            for stream in self.list_streams(ctx, group)? {
                self.pass(ctx, group, Some(stream), counts)?;
            }
        } else {
            if first {
                log::info!("Optimized first retrieval approach for high number of log streams with medium size");
            }
            self.pass(ctx, group, None, counts)?;
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.prune();
        }
        self.commit(ctx)
    }

    /// Every page of FilterLogEvents from the group's position (of one stream, or all).
    fn pass(
        &mut self,
        ctx: &mut PullContext,
        group: &str,
        stream: Option<String>,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let (rt, client) = self.api()?;
        let since = self.groups.get(group).map_or(0, GroupPosition::since);
        let mut token: Option<String> = None;
        loop {
            let request = || {
                client
                    .filter_log_events()
                    .log_group_name(group)
                    .set_log_stream_names(stream.clone().map(|s| vec![s]))
                    .start_time(since)
                    .set_next_token(token.clone())
                    .send()
            };
            let page = self
                .caller
                .call(&rt, ctx, "FilterLogEvents", request)
                .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
            ctx.stats.requests += 1;
            let position = self.groups.entry(group.to_owned()).or_default();
            for e in page.events() {
                counts.total += 1;
                ctx.stats.received += 1;
                let stream_name = e.log_stream_name().unwrap_or_default();
                let ts = e.timestamp().unwrap_or_default();
                if position.seen(stream_name, ts, e.event_id().unwrap_or_default()) {
                    counts.duplicated += 1;
                    ctx.stats.duplicated += 1;
                    continue;
                }
                let mut event = Map::new();
                event.insert("logGroup".into(), json!(group));
                event.insert("logStream".into(), json!(stream_name));
                event.insert("eventId".into(), json!(e.event_id()));
                event.insert("timestamp".into(), json!(ts));
                event.insert("ingestionTime".into(), json!(e.ingestion_time()));
                event.insert("message".into(), json!(e.message().unwrap_or_default()));
                ctx.emit_json(&self.cfg.tag, ts, event)?;
                counts.generated += 1;
            }
            // The page's events are in Redis before the streams' positions move past them.
            self.commit(ctx)?;
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    fn commit(&self, ctx: &mut PullContext) -> Result<(), PullerError> {
        ctx.commit_state(json!({ "groups": self.groups }))
    }
}

impl Puller for CloudWatchLogsPuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let api = ApiSession::open(self.rt.clone(), &self.cfg.client, ctx)?;
        let conf = aws_sdk_cloudwatchlogs::config::Builder::from(&api.session.sdk)
            // Throttling and passing failures are retried by `Caller`, on the same page, within the budget.
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
            .build();
        self.client = Some(aws_sdk_cloudwatchlogs::Client::from_conf(conf));
        self.rt = Some(api.rt);
        Ok(())
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        if let Some(groups) = ctx.state().get("groups") {
            self.groups = serde_json::from_value(groups.clone()).map_err(|e| {
                PullerError::pull(
                    PULL_ERROR_ID,
                    format!("the stored positions are not readable: {e}"),
                )
            })?;
            log::info!(
                "Persistence: positions of {} log group(s) retrieved",
                self.groups.len()
            );
        }
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        log::log!(
            ctx.routine_level(),
            "Starting a new pulling from \"{}\" at \"{}\"",
            self.cfg.log_group,
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, false)
        );
        self.caller.stats = Default::default();
        let groups = self.list_groups(ctx)?;
        let mut counts = Counts::default();
        for (i, group) in groups.iter().enumerate() {
            if i > 0 && (ctx.cycle_over() || ctx.stopping()) {
                break;
            }
            self.read_group(ctx, group, &mut counts)?;
        }
        let level = if counts.total > 0 {
            log::Level::Info
        } else {
            ctx.routine_level()
        };
        log::log!(
            level,
            "Received {} response(s), log groups: {}, messages (total/duplicated/generated): {}/{}/{}",
            self.caller.stats.responses,
            groups.len(),
            counts.total,
            counts.duplicated,
            counts.generated
        );
        Ok(())
    }
}

fn millis_utc(ms: i64) -> String {
    chrono::DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_positions_drop_what_was_read_and_keep_what_is_new() {
        let mut g = GroupPosition {
            floor: 1_000,
            newest: 1_000,
            streams: BTreeMap::new(),
        };
        assert!(!g.seen("a", 2_000, "e1"));
        assert!(!g.seen("a", 2_000, "e2"), "same millisecond, another event");
        assert!(g.seen("a", 2_000, "e1"), "read before");
        assert!(g.seen("a", 1_500, "e0"), "older than the stream's position");
        assert!(
            !g.seen("b", 1_500, "f1"),
            "another stream's late event is new"
        );
        assert_eq!(g.newest, 2_000);
        assert_eq!(g.since(), 1_000, "never before the floor");
        g.seen("a", 1_000_000, "e9");
        assert_eq!(g.since(), 1_000_000 - 300_000);
        g.prune();
        assert_eq!(g.streams.keys().collect::<Vec<_>>(), ["a"]);
    }
}
