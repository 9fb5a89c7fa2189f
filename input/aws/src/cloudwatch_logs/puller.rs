//! `AwsCloudwatchLogsPuller`: every cycle lists the log groups (DescribeLogGroups with the prefix: groups created
//! while running are found), then reads each group's new events with FilterLogEvents (nextToken pages). The
//! position of every log stream (its newest event time and the EventIds of that millisecond) is committed after
//! each page is in Redis.
//!
//! A pass does not re-read what was sent: it lists the group's streams (DescribeLogStreams: `lastIngestionTime`)
//! and starts at the oldest position among the streams that received events lately; only when such a stream has
//! no position (new, or silent longer than [`LATE_WINDOW`]) does it start [`LATE_WINDOW`] before the group's
//! newest event, so that events that reach CloudWatch late in another stream are still read. A group whose
//! streams received nothing lately is not read at all.

use super::CloudWatchLogsConfig;
use crate::api::{ApiSession, Caller};
use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput;
use aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsOutput;
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
    /// The newest ingestion time of the stream's events read: a stream whose `lastIngestionTime` is not newer
    /// has nothing new.
    #[serde(default)]
    ingested: i64,
}

/// FilterLogEvents' largest `logStreamNames`.
const MAX_STREAMS_PER_FILTER: usize = 100;

/// One FilterLogEvents pass: from `start` (epoch ms), over the given streams or the whole group.
#[derive(Debug, Clone, PartialEq)]
struct Pass {
    start: i64,
    streams: Option<Vec<String>>,
}

/// Position of one log group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GroupPosition {
    /// Events older than this are never read (the group's `start_time`).
    floor: i64,
    /// The newest event time read in the group.
    newest: i64,
    streams: BTreeMap<String, StreamPosition>,
    /// When the last pass started (epoch ms; 0 before the first): streams ingesting since [`LATE_WINDOW`] before
    /// it are read.
    #[serde(default)]
    passed_at: i64,
    /// The group's first retrieval was completed (states of earlier versions: taken as completed).
    #[serde(default = "completed")]
    first_read: bool,
}

fn completed() -> bool {
    true
}

impl GroupPosition {
    /// The oldest start of a pass: [`LATE_WINDOW`] before the newest event read, never before the floor.
    fn since(&self) -> i64 {
        (self.newest - LATE_WINDOW.as_millis() as i64).max(self.floor)
    }

    /// This cycle's pass, given each stream's `lastIngestionTime`: over the streams that received events since
    /// they were read, from the oldest of their positions; over the whole group from [`LATE_WINDOW`] before its
    /// newest event when a stream without a position received events since [`LATE_WINDOW`] before the last pass
    /// (from the floor when the group's first retrieval was cut short); None when no stream has anything new.
    fn plan_pass<'a>(
        &self,
        streams: impl IntoIterator<Item = (&'a str, Option<i64>)>,
    ) -> Option<Pass> {
        let window = self.since();
        let lately = self.passed_at - LATE_WINDOW.as_millis() as i64;
        let mut with_news: Vec<String> = Vec::new();
        let mut start = i64::MAX;
        let mut whole_group = false;
        for (name, last_ingestion) in streams {
            let from = match (self.streams.get(name), last_ingestion) {
                (Some(p), Some(t)) if t <= p.ingested => continue,
                (Some(p), _) => p.ts.max(window),
                // A first retrieval cut short (a kill) has not read this stream yet: from the group's floor.
                (None, _) if !self.first_read => self.floor,
                (None, Some(t)) if t < lately => continue,
                (None, _) => window,
            };
            whole_group |= !self.streams.contains_key(name);
            with_news.push(name.to_owned());
            start = start.min(from);
        }
        if with_news.is_empty() {
            return None;
        }
        let streams =
            (!whole_group && with_news.len() <= MAX_STREAMS_PER_FILTER).then_some(with_news);
        Some(Pass { start, streams })
    }

    /// True when the event was read before (then it is not sent again); else records it.
    fn seen(&mut self, stream: &str, ts: i64, id: &str, ingested: i64) -> bool {
        let p = self.streams.entry(stream.to_owned()).or_default();
        p.ingested = p.ingested.max(ingested);
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
        let request = |token| {
            client
                .describe_log_groups()
                .set_log_group_name_prefix(prefix.clone())
                .set_next_token(token)
                .send()
        };
        let take = |page: DescribeLogGroupsOutput| {
            let names = page
                .log_groups()
                .iter()
                .filter_map(|g| g.log_group_name().map(str::to_owned))
                .collect();
            (names, page.next_token().map(str::to_owned))
        };
        self.caller
            .list_all(&rt, ctx, "DescribeLogGroups", request, take)
            .map_err(|e| e.into_pull_error(PULL_ERROR_ID))
    }

    /// The streams of a group and when each last received an event (epoch ms; None when not said).
    fn list_streams(
        &mut self,
        ctx: &PullContext,
        group: &str,
    ) -> Result<Vec<(String, Option<i64>)>, PullerError> {
        let (rt, client) = self.api()?;
        let request = |token| {
            client
                .describe_log_streams()
                .log_group_name(group)
                .set_next_token(token)
                .send()
        };
        let take = |page: DescribeLogStreamsOutput| {
            let streams = page
                .log_streams()
                .iter()
                .filter_map(|s| Some((s.log_stream_name()?.to_owned(), s.last_ingestion_time())))
                .collect();
            (streams, page.next_token().map(str::to_owned))
        };
        self.caller
            .list_all(&rt, ctx, "DescribeLogStreams", request, take)
            .map_err(|e| e.into_pull_error(PULL_ERROR_ID))
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
                    passed_at: 0,
                    first_read: false,
                },
            );
        }
        let started = Utc::now().timestamp_millis();
        let streams = self.list_streams(ctx, group)?;
        let since = self.groups.get(group).map_or(0, GroupPosition::since);
        if first && !self.cfg.use_first_optimized_retrieval {
            for (stream, _) in streams {
                let pass = Pass {
                    start: since,
                    streams: Some(vec![stream]),
                };
                self.pass(ctx, group, &pass, counts)?;
            }
        } else if first {
            log::info!("Optimized first retrieval approach for high number of log streams with medium size");
            let pass = Pass {
                start: since,
                streams: None,
            };
            self.pass(ctx, group, &pass, counts)?;
        } else {
            let position = self.groups.get(group).cloned().unwrap_or_default();
            match position.plan_pass(streams.iter().map(|(name, t)| (name.as_str(), *t))) {
                Some(pass) => self.pass(ctx, group, &pass, counts)?,
                None => log::debug!("Log group \"{group}\": no stream received events lately"),
            }
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.passed_at = started;
            g.first_read = true;
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
        pass: &Pass,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        let (rt, client) = self.api()?;
        let mut token: Option<String> = None;
        loop {
            let request = || {
                client
                    .filter_log_events()
                    .log_group_name(group)
                    .set_log_stream_names(pass.streams.clone())
                    .start_time(pass.start)
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
                let ingested = e.ingestion_time().unwrap_or_default();
                if position.seen(stream_name, ts, e.event_id().unwrap_or_default(), ingested) {
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
        self.client = Some(crate::api::sdk_client!(aws_sdk_cloudwatchlogs, api));
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
            passed_at: 0,
            first_read: true,
        };
        assert!(!g.seen("a", 2_000, "e1", 2_000));
        assert!(
            !g.seen("a", 2_000, "e2", 2_000),
            "same millisecond, another event"
        );
        assert!(g.seen("a", 2_000, "e1", 2_000), "read before");
        assert!(
            g.seen("a", 1_500, "e0", 2_000),
            "older than the stream's position"
        );
        assert!(
            !g.seen("b", 1_500, "f1", 2_000),
            "another stream's late event is new"
        );
        assert_eq!(g.newest, 2_000);
        assert_eq!(g.since(), 1_000, "never before the floor");
        g.seen("a", 1_000_000, "e9", 1_000_000);
        assert_eq!(g.since(), 1_000_000 - 300_000);
        g.prune();
        assert_eq!(g.streams.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_pass_reads_the_streams_with_news_or_the_late_window_for_an_unknown_one() {
        let mut g = GroupPosition {
            floor: 0,
            newest: 0,
            streams: BTreeMap::new(),
            passed_at: 2_000_000,
            first_read: true,
        };
        g.seen("a", 1_000_000, "e1", 1_000_100);
        g.seen("b", 999_000, "f1", 999_100);
        let pass = |start, streams: Option<&[&str]>| {
            Some(Pass {
                start,
                streams: streams.map(|s| s.iter().map(|x| x.to_string()).collect()),
            })
        };
        let nothing_new = [("a", Some(1_000_100)), ("b", Some(999_100))];
        assert_eq!(g.plan_pass(nothing_new), None, "nothing new: no pass");
        assert_eq!(
            g.plan_pass([("a", Some(1_000_200)), ("b", Some(999_100))]),
            pass(1_000_000, Some(&["a"])),
            "only a has news: a from its position, nothing of b re-read"
        );
        assert_eq!(
            g.plan_pass([("a", None), ("b", Some(999_200))]),
            pass(999_000, Some(&["a", "b"]))
        );
        assert_eq!(
            g.plan_pass([("a", Some(1_000_200)), ("new", Some(1_999_000))]),
            pass(1_000_000 - 300_000, None),
            "a stream without a position that received events lately: the group's late window"
        );
        assert_eq!(
            g.plan_pass([("old", Some(1_000_000))]),
            None,
            "a stream without a position silent since long before the last pass"
        );
        g.first_read = false;
        assert_eq!(
            g.plan_pass([("unread", Some(1_000_000))]),
            pass(0, None),
            "a first retrieval cut short: an unread stream from the floor"
        );
    }

    #[test]
    fn a_state_of_an_earlier_version_reads_on_from_its_window() {
        let old = json!({"floor": 1_000, "newest": 900_000,
                         "streams": {"a": {"ts": 900_000, "ids": ["e1"]}}});
        let g: GroupPosition = serde_json::from_value(old).unwrap();
        assert!(g.first_read);
        assert_eq!(g.streams["a"].ingested, 0);
        assert_eq!(
            g.plan_pass([("a", Some(5)), ("b", Some(5))]),
            Some(Pass {
                start: 600_000,
                streams: None
            }),
            "not from the floor"
        );
    }
}
