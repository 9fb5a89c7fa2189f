//! `AwsCloudwatchMetricPuller`: every cycle lists the metrics of the service's namespaces (ListMetrics, paged),
//! then reads the periods due (see [`super::window`]) with GetMetricData: one query per metric and statistic,
//! 500 queries per request (the API's maximum), every NextToken page. One event per metric and period, with the
//! value of each statistic. The end of the periods read is committed after their events are in Redis.

use super::listing::{Listing, NewMetrics};
use super::window::{self, Plan};
use super::MetricsConfig;
use crate::api::{ApiSession, Caller};
use crate::tag::TagVars;
use aws_sdk_cloudwatch::operation::list_metrics::ListMetricsOutput;
use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy, StatusCode,
};
use chrono::{DateTime, SecondsFormat, Utc};
use logferry_input::{PullContext, Puller, PullerError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The puller class name in logs (seed 002).
pub const PULLER_NAME: &str = "AwsCloudwatchMetricPuller";

/// The PullError id of this puller.
const PULL_ERROR_ID: u32 = 313;

/// GetMetricData's largest number of queries per request.
pub const MAX_QUERIES: usize = 500;

/// One metric as ListMetrics names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricName {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
}

impl MetricName {
    fn from_sdk(m: &Metric) -> Option<MetricName> {
        Some(MetricName {
            namespace: m.namespace()?.to_owned(),
            name: m.metric_name()?.to_owned(),
            dimensions: m
                .dimensions()
                .iter()
                .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                .collect(),
        })
    }

    fn to_sdk(&self) -> Metric {
        let dimensions = self
            .dimensions
            .iter()
            .map(|(n, v)| Dimension::builder().name(n).value(v).build())
            .collect();
        Metric::builder()
            .namespace(&self.namespace)
            .metric_name(&self.name)
            .set_dimensions(Some(dimensions))
            .build()
    }
}

/// The values of one batch: per (period start, metric index in the batch), one value per statistic.
type BatchValues = BTreeMap<(i64, usize), Vec<Option<f64>>>;

/// Counters of one cycle.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    datapoints: u64,
    generated: u64,
}

pub struct MetricsPuller {
    cfg: Arc<MetricsConfig>,
    rt: Option<Arc<Runtime>>,
    client: Option<aws_sdk_cloudwatch::Client>,
    account_id: String,
    caller: Caller,
    /// End (ms) of the periods read and committed.
    last_end: Option<i64>,
    /// The metric list of each namespace, listed again every `metrics_list_refresh_in_seconds`.
    listing: Listing<MetricName>,
}

impl MetricsPuller {
    pub fn new(cfg: Arc<MetricsConfig>) -> Self {
        let caller = Caller::new(cfg.requests_per_second, &cfg.client.region);
        let listing = Listing::new(cfg.metrics_list_refresh);
        MetricsPuller {
            cfg,
            rt: None,
            client: None,
            account_id: String::new(),
            caller,
            last_end: None,
            listing,
        }
    }

    fn api(&self) -> Result<(Arc<Runtime>, aws_sdk_cloudwatch::Client), PullerError> {
        match (&self.rt, &self.client) {
            (Some(rt), Some(c)) => Ok((rt.clone(), c.clone())),
            _ => Err(PullerError::pull(PULL_ERROR_ID, "pull before setup")),
        }
    }

    /// `['AWS/EC2', 'AWS/EC2Spot']`, as the seed prints them (`['all_namespaces']` for every namespace).
    fn namespaces_text(&self) -> String {
        let names: Vec<String> = if self.cfg.namespaces.is_empty() {
            vec!["'all_namespaces'".into()]
        } else {
            self.cfg
                .namespaces
                .iter()
                .map(|n| format!("'{n}'"))
                .collect()
        };
        format!("[{}]", names.join(", "))
    }

    /// Every metric of the namespaces (all of them when none is configured): a namespace's list of less than
    /// `metrics_list_refresh_in_seconds` ago, else a new one, used from the period start `read_from` (ms). Also
    /// returns the metrics a new list adds, with the period start from which they were not read.
    fn list_metrics(
        &mut self,
        ctx: &mut PullContext,
        read_from: i64,
    ) -> Result<(Vec<MetricName>, Vec<NewMetrics<MetricName>>), PullerError> {
        let passes: Vec<Option<String>> = if self.cfg.namespaces.is_empty() {
            vec![None]
        } else {
            self.cfg.namespaces.iter().cloned().map(Some).collect()
        };
        let mut metrics = Vec::new();
        let mut added = Vec::new();
        for pass in passes {
            let now = Instant::now();
            if let Some(listed) = self.listing.current(&pass, now) {
                metrics.extend_from_slice(listed);
                continue;
            }
            let listed = self.list_namespace(ctx, &pass)?;
            log::log!(
                ctx.routine_level(),
                "ListMetrics of \"{}\": {} metric(s), listed again in {} s",
                pass.as_deref().unwrap_or("all_namespaces"),
                listed.len(),
                self.cfg.metrics_list_refresh.as_secs()
            );
            metrics.extend_from_slice(&listed);
            added.extend(self.listing.store(pass, listed, now, read_from));
        }
        Ok((metrics, added))
    }

    /// Every page of ListMetrics of one namespace (`None`: every namespace).
    fn list_namespace(
        &mut self,
        ctx: &mut PullContext,
        namespace: &Option<String>,
    ) -> Result<Vec<MetricName>, PullerError> {
        let (rt, client) = self.api()?;
        let request = |token| {
            client
                .list_metrics()
                .set_namespace(namespace.clone())
                .set_next_token(token)
                .send()
        };
        let mut pages = 0;
        let take = |page: ListMetricsOutput| {
            pages += 1;
            let metrics = page
                .metrics()
                .iter()
                .filter_map(MetricName::from_sdk)
                .collect();
            (metrics, page.next_token)
        };
        let metrics = self
            .caller
            .list_all(&rt, ctx, "ListMetrics", request, take)
            .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
        ctx.stats.requests += pages;
        Ok(metrics)
    }

    /// Reads the periods a new list's metrics were not read for: from the period the list before was used from
    /// up to `end`, where this cycle's windows start. Their events go to Redis with the next window's; the
    /// committed end does not move.
    fn read_back(
        &mut self,
        ctx: &mut PullContext,
        added: &NewMetrics<MetricName>,
        end: i64,
        tag: &str,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        log::info!(
            "{} metric(s) new since the last listing: reading them back from {}",
            added.metrics.len(),
            utc(added.from)
        );
        let period = self.cfg.period.as_millis() as i64;
        for w in window::split(added.from, end, period) {
            self.read_periods(ctx, &added.metrics, w, tag, counts)?;
        }
        Ok(())
    }

    /// Reads one window of every metric (see [`Self::read_periods`]), then commits its end.
    fn read_window(
        &mut self,
        ctx: &mut PullContext,
        metrics: &[MetricName],
        (start, end): (i64, i64),
        tag: &str,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        self.read_periods(ctx, metrics, (start, end), tag, counts)?;
        // The window's events are in Redis (commit_state flushes first) before its end is stored.
        ctx.commit_state(json!({"last_end": end, "last_end_utc": utc(end)}))?;
        self.last_end = Some(end);
        Ok(())
    }

    /// Reads the periods of `[start, end)` of `metrics`, batch by batch, and emits their events.
    fn read_periods(
        &mut self,
        ctx: &mut PullContext,
        metrics: &[MetricName],
        (start, end): (i64, i64),
        tag: &str,
        counts: &mut Counts,
    ) -> Result<(), PullerError> {
        log::log!(
            ctx.routine_level(),
            "Time range: \"{}\" > \"{}\"",
            utc(start),
            utc(end)
        );
        let per_batch = (MAX_QUERIES / self.cfg.statistics.len()).max(1);
        for batch in metrics.chunks(per_batch) {
            let values = self.read_batch(ctx, batch, (start, end), counts)?;
            for ((ts, i), stats) in values {
                ctx.emit_json(tag, ts, self.event(&batch[i], ts, &stats))?;
                counts.generated += 1;
            }
        }
        Ok(())
    }

    /// Every page of one GetMetricData request (a query per metric and statistic).
    fn read_batch(
        &mut self,
        ctx: &mut PullContext,
        batch: &[MetricName],
        (start, end): (i64, i64),
        counts: &mut Counts,
    ) -> Result<BatchValues, PullerError> {
        let (rt, client) = self.api()?;
        let period = self.cfg.period.as_secs() as i32;
        let stats = &self.cfg.statistics;
        let queries: Vec<MetricDataQuery> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                let metric = m.to_sdk();
                stats.iter().enumerate().map(move |(j, stat)| {
                    MetricDataQuery::builder()
                        .id(query_id(i, j))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric.clone())
                                .period(period)
                                .stat(stat)
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
            })
            .collect();
        let mut values = BatchValues::new();
        let mut token: Option<String> = None;
        loop {
            let request = || {
                client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(AwsTime::from_millis(start))
                    .end_time(AwsTime::from_millis(end))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(token.clone())
                    .send()
            };
            let page = self
                .caller
                .call(&rt, ctx, "GetMetricData", request)
                .map_err(|e| e.into_pull_error(PULL_ERROR_ID))?;
            ctx.stats.requests += 1;
            for result in page.metric_data_results() {
                let n = collect_result(result, stats.len(), &mut values)?;
                counts.datapoints += n;
                ctx.stats.received += n;
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(values);
            }
        }
    }

    /// The event of one metric and period: its names, dimensions and the value of each statistic.
    fn event(&self, m: &MetricName, ts: i64, stats: &[Option<f64>]) -> Map<String, Value> {
        let dimensions: Map<String, Value> = m
            .dimensions
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        let values: Map<String, Value> = self
            .cfg
            .statistics
            .iter()
            .zip(stats)
            .filter_map(|(name, v)| Some((name.clone(), json!((*v)?))))
            .collect();
        let mut event = Map::new();
        event.insert("timestamp".into(), json!(utc(ts)));
        event.insert("namespace".into(), json!(m.namespace));
        event.insert("metricName".into(), json!(m.name));
        event.insert("dimensions".into(), Value::Object(dimensions));
        event.insert("period".into(), json!(self.cfg.period.as_secs()));
        event.insert("values".into(), Value::Object(values));
        event.insert("accountId".into(), json!(self.account_id));
        event.insert("region".into(), json!(self.cfg.client.region));
        event
    }

    fn tag(&self) -> String {
        self.cfg.tag.render(TagVars {
            event_type: "metrics",
            account_id: &self.account_id,
            region_id: &self.cfg.client.region,
        })
    }

    /// Starts the next cycle when the next period may be read, and says so as the seed does.
    fn schedule_next(&self, ctx: &mut PullContext, plan: &Plan) {
        log::log!(
            ctx.routine_level(),
            "Applied an offset to wait, retrieval_offset: {:.6} seconds",
            plan.offset_ms as f64 / 1000.0
        );
        let until = (plan.next_cycle - Utc::now().timestamp_millis()).max(0);
        ctx.start_next_cycle_at(Instant::now() + Duration::from_millis(until as u64));
    }
}

/// `m<metric>_<statistic>`: a GetMetricData query id (lowercase letter first, letters, digits, `_`).
fn query_id(metric: usize, stat: usize) -> String {
    format!("m{metric}_{stat}")
}

fn parse_query_id(id: &str) -> Option<(usize, usize)> {
    let (m, s) = id.strip_prefix('m')?.split_once('_')?;
    Some((m.parse().ok()?, s.parse().ok()?))
}

/// Adds one query's data points to the batch's values; returns how many. A query CloudWatch could not answer
/// (`InternalError`, `Forbidden`) fails the window, which is read again at the next cycle.
fn collect_result(
    result: &MetricDataResult,
    statistics: usize,
    values: &mut BatchValues,
) -> Result<u64, PullerError> {
    let id = result.id().unwrap_or_default();
    if let Some(code) = result
        .status_code()
        .filter(|c| !matches!(c, StatusCode::Complete | StatusCode::PartialData))
    {
        let messages: Vec<&str> = result.messages().iter().filter_map(|m| m.value()).collect();
        return Err(PullerError::pull(
            PULL_ERROR_ID,
            format!("GetMetricData answered {code:?} for query {id}: {messages:?}"),
        ));
    }
    let (metric, stat) = parse_query_id(id)
        .filter(|(_, s)| *s < statistics)
        .ok_or_else(|| {
            PullerError::pull(
                PULL_ERROR_ID,
                format!("GetMetricData answered an unknown query id \"{id}\""),
            )
        })?;
    for (t, v) in result.timestamps().iter().zip(result.values()) {
        let ts = t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000);
        values
            .entry((ts, metric))
            .or_insert_with(|| vec![None; statistics])[stat] = Some(*v);
    }
    Ok(result.timestamps().len().min(result.values().len()) as u64)
}

impl Puller for MetricsPuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let api = ApiSession::open(self.rt.clone(), &self.cfg.client, ctx)?;
        self.client = Some(crate::api::sdk_client!(aws_sdk_cloudwatch, api));
        self.account_id = api.session.account_id.clone();
        self.rt = Some(api.rt);
        Ok(())
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        self.last_end = ctx.state().get("last_end").and_then(Value::as_i64);
        if let Some(end) = self.last_end {
            log::info!("Resuming after the periods read up to {}", utc(end));
        }
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let now = Utc::now();
        log::log!(
            ctx.routine_level(),
            "Starting a new pulling from \"{}\" namespaces at \"{}\"",
            self.namespaces_text(),
            now.to_rfc3339_opts(SecondsFormat::Micros, false)
        );
        let plan = window::plan(
            now.timestamp_millis(),
            self.last_end,
            self.cfg.period.as_millis() as i64,
            self.cfg.retrieval_delay.as_millis() as i64,
        );
        if plan.clipped {
            log::warn!(
                "The periods missed since {} reach past CloudWatch's retention for a {} s period: reading from {}",
                self.last_end.map(utc).unwrap_or_default(),
                self.cfg.period.as_secs(),
                plan.windows.first().map(|w| utc(w.0)).unwrap_or_default()
            );
        }
        self.caller.stats = Default::default();
        let mut counts = Counts::default();
        let tag = self.tag();
        if !plan.windows.is_empty() {
            let read_from = plan.windows[0].0;
            let (metrics, added) = self.list_metrics(ctx, read_from)?;
            for new in &added {
                self.read_back(ctx, new, read_from, &tag, &mut counts)?;
            }
            for (i, w) in plan.windows.iter().enumerate() {
                // At least one window per cycle; then the cycle's bound or a stop ends it (the next goes on).
                if i > 0 && (ctx.cycle_over() || ctx.stopping()) {
                    break;
                }
                self.read_window(ctx, &metrics, *w, &tag, &mut counts)?;
            }
        }
        let calls = self.caller.stats;
        let avg_ms = if calls.responses == 0 {
            0.0
        } else {
            calls.busy.as_secs_f64() * 1000.0 / calls.responses as f64
        };
        let level = if counts.generated > 0 {
            log::Level::Info
        } else {
            ctx.routine_level()
        };
        log::log!(
            level,
            "Received {} response(s), generated {} message(s), tag used: \"{tag}\", avg_time_per_source_message: {avg_ms:.3} ms",
            calls.responses,
            counts.generated,
        );
        if calls.throttled > 0 {
            log::warn!(
                "CloudWatch was throttled {} time(s) in this cycle; every throttled request was sent again",
                calls.throttled
            );
        }
        if self.last_end.is_some_and(|e| e >= plan.end) {
            self.schedule_next(ctx, &plan);
        }
        Ok(())
    }
}

/// `2022-09-23T14:48:00Z`, as the seed prints the time range.
fn utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_round_trip_and_follow_the_api_pattern() {
        let id = query_id(499, 4);
        assert_eq!(id, "m499_4");
        assert!(id.starts_with(|c: char| c.is_ascii_lowercase()));
        assert_eq!(parse_query_id(&id), Some((499, 4)));
        assert_eq!(parse_query_id("x1_2"), None);
    }

    #[test]
    fn results_fill_one_value_per_statistic_and_period() {
        let mut values = BatchValues::new();
        let r = |id: &str, ts: &[i64], vs: &[f64]| {
            MetricDataResult::builder()
                .id(id)
                .set_timestamps(Some(ts.iter().map(|t| AwsTime::from_millis(*t)).collect()))
                .set_values(Some(vs.to_vec()))
                .status_code(StatusCode::Complete)
                .build()
        };
        assert_eq!(
            collect_result(&r("m0_1", &[60_000], &[3.0]), 2, &mut values).unwrap(),
            1
        );
        collect_result(&r("m0_0", &[60_000, 0], &[1.5, 1.0]), 2, &mut values).unwrap();
        assert_eq!(values[&(60_000, 0)], vec![Some(1.5), Some(3.0)]);
        assert_eq!(values[&(0, 0)], vec![Some(1.0), None]);
        assert!(collect_result(&r("m0_2", &[0], &[1.0]), 2, &mut values).is_err());
        let failed = MetricDataResult::builder()
            .id("m0_0")
            .status_code(StatusCode::InternalError)
            .build();
        assert!(collect_result(&failed, 2, &mut values).is_err());
    }

    #[test]
    fn the_time_range_is_printed_as_the_seed_does() {
        assert_eq!(utc(1_663_944_480_000), "2022-09-23T14:48:00Z");
    }
}
