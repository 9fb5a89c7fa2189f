//! The `demo` input (like Vector's `demo_logs`): realistic CloudTrail-like JSON records or VPC flow log lines,
//! each with a unique sequence number (`seq`) so tests can prove that nothing is lost.
//!
//! The next sequence number is the puller's state: it is committed after each cycle's events are in Redis, so a
//! killed InputProcess re-generates (duplicates) at most one uncommitted cycle and never skips a number.

use crate::config::{InputInfo, InputKind, PullerIdentity, PullerSpec, ThreadNaming};
use crate::{PullContext, Puller, PullerError};
use logferry::config::{ConfigErrorKind, Key, KeySet, Section};
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::Duration;

const SERVICES: Key = Key::dict(
    "services",
    None,
    "`<service name>: {...}`, one puller each, with the keys of `inputs.demo.services`",
)
.required();

/// The keys of the demo input (`inputs.<name>` with `type: demo`) besides `id`, `enabled`, `type`.
pub static DEMO_INPUT_KEYS: KeySet = KeySet {
    id: "inputs.demo",
    place: "`inputs.<name>` of type `demo`",
    groups: &[&[SERVICES]],
};

const FORMAT: Key = Key::one_of(
    "format",
    "cloudtrail",
    &["cloudtrail", "vpc_flow"],
    "CloudTrail-like JSON records (~300 bytes) or VPC flow log lines",
);
const EVENTS_PER_SECOND: Key = Key::int(
    "events_per_second",
    10,
    0,
    10_000_000,
    "generation rate; 0 = as fast as the queue takes them",
);
const COUNT: Key = Key::int(
    "count",
    0,
    0,
    i64::MAX,
    "total events, across restarts; 0 = no limit",
);
const TAG: Key = Key::text_or("tag", "my.app.logferry.demo", "event tag");
const REQUEST_PERIOD_IN_SECONDS: Key = Key::int(
    "request_period_in_seconds",
    1,
    0,
    3600,
    "pull cycle length (0 with `events_per_second: 0` = flat out)",
);
const INITIAL_START_TIME_IN_UTC: Key = Key::format(
    "initial_start_time_in_utc",
    "YYYY-MM-DDTHH:MM:SSZ, not in the future",
    "defines the state: changing it restarts `seq` at 0",
);
const PANIC_AFTER_EVENTS: Key = Key::int(
    "panic_after_events",
    0,
    0,
    1_000_000_000,
    "the puller thread panics after emitting this many events in one run of the InputProcess (each restarted \
     process again after as many), to prove that a dying thread is reported and its process restarted; 0 = never",
)
.testing_only();

/// The keys of one demo service (`inputs.<name>.services.<service>`).
pub static DEMO_SERVICE_KEYS: KeySet = KeySet {
    id: "inputs.demo.services",
    place: "`inputs.<name>.services.<service>` of a `demo` input",
    groups: &[&[
        FORMAT,
        EVENTS_PER_SECOND,
        COUNT,
        TAG,
        REQUEST_PERIOD_IN_SECONDS,
        INITIAL_START_TIME_IN_UTC,
        PANIC_AFTER_EVENTS,
    ]],
};

/// Configuration of one demo service; each field reads the key of the same name in [`DEMO_SERVICE_KEYS`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    pub format: DemoFormat,
    pub events_per_second: u64,
    pub count: u64,
    pub tag: String,
    /// Key `request_period_in_seconds`.
    pub request_period: Duration,
    pub initial_start_time_in_utc: Option<String>,
    /// Testing only.
    pub panic_after_events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoFormat {
    CloudTrail,
    VpcFlow,
}

/// Events generated per cycle when the rate is unlimited (then the state is committed).
const UNLIMITED_CHUNK: u64 = 200_000;

pub struct DemoInput;

impl InputKind for DemoInput {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn keys(&self) -> &'static [&'static KeySet] {
        const SETS: [&KeySet; 2] = [&DEMO_INPUT_KEYS, &DEMO_SERVICE_KEYS];
        &SETS
    }

    fn configure(&self, info: &InputInfo, section: &Section<'_>) -> Vec<PullerSpec> {
        let Some(services) = section.get_section(&SERVICES) else {
            return Vec::new();
        };
        let mut specs = Vec::new();
        for (service, s) in services.entries() {
            let config = read_service(&s);
            s.finish();
            let defining = json!({"initial_start_time_in_utc": config.initial_start_time_in_utc, "format": format!("{:?}", config.format)});
            let identity = PullerIdentity {
                input: info.name.clone(),
                input_id: info.id.clone(),
                service: service.to_owned(),
                module: "predefined".into(),
                puller: "DemoPuller".into(),
                naming: ThreadNaming::Plain,
            };
            let request_period = config.request_period;
            specs.push(PullerSpec {
                identity,
                request_period,
                defining,
                build: Box::new(move || Box::new(DemoPuller::new(config.clone()))),
            });
        }
        services.finish();
        specs
    }
}

fn read_service(s: &Section<'_>) -> DemoConfig {
    let format = match s.get_choice(&FORMAT).as_str() {
        "vpc_flow" => DemoFormat::VpcFlow,
        _ => DemoFormat::CloudTrail,
    };
    let start = s.get_text(&INITIAL_START_TIME_IN_UTC);
    if let Some(t) = &start {
        match chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%SZ") {
            Err(_) => s.error(
                INITIAL_START_TIME_IN_UTC.name,
                ConfigErrorKind::InvalidValue,
                format!("initial_start_time_in_utc is not set as per the datetime_format : %Y-%m-%dT%H:%M:%SZ (got \"{t}\")"),
            ),
            Ok(dt) if dt.and_utc() > chrono::Utc::now() => {
                s.error(INITIAL_START_TIME_IN_UTC.name, ConfigErrorKind::InvalidValue, format!("Date {t} is in the future"))
            }
            Ok(_) => {}
        }
    }
    DemoConfig {
        format,
        events_per_second: s.get_int(&EVENTS_PER_SECOND),
        count: s.get_int(&COUNT),
        tag: s.get_text(&TAG).unwrap_or_default(),
        request_period: crate::config::request_period(s, &REQUEST_PERIOD_IN_SECONDS),
        initial_start_time_in_utc: start,
        panic_after_events: s.get_int(&PANIC_AFTER_EVENTS),
    }
}

pub struct DemoPuller {
    config: DemoConfig,
    next_seq: u64,
    line: String,
    /// `eventTime` of the cycle, formatted once (every event of a cycle carries the cycle's time).
    event_time: String,
    /// Events emitted by this puller since its process started (for `panic_after_events`).
    emitted: u64,
}

impl DemoPuller {
    pub fn new(config: DemoConfig) -> Self {
        DemoPuller {
            config,
            next_seq: 0,
            line: String::with_capacity(512),
            event_time: String::new(),
            emitted: 0,
        }
    }

    /// Events to generate in this cycle.
    fn cycle_quota(&self) -> u64 {
        let by_rate = match self.config.events_per_second {
            0 => UNLIMITED_CHUNK,
            rate => (rate as f64 * self.config.request_period.as_secs_f64().max(1.0)) as u64,
        };
        match self.config.count {
            0 => by_rate,
            total => by_rate.min(total.saturating_sub(self.next_seq)),
        }
    }

    fn set_cycle_time(&mut self, now_ms: i64) {
        self.event_time.clear();
        let at = chrono::DateTime::from_timestamp(now_ms / 1000, 0).unwrap_or_default();
        let _ = write!(self.event_time, "{}", at.format("%Y-%m-%dT%H:%M:%SZ"));
    }

    fn render(&mut self, seq: u64, now_ms: i64, pulling_id: u64) {
        self.line.clear();
        let secs = now_ms / 1000;
        match self.config.format {
            DemoFormat::CloudTrail => {
                let _ = write!(
                    self.line,
                    "{{\"eventVersion\":\"1.08\",\"eventTime\":\"{}\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"{}\",\
                     \"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"10.0.{}.{}\",\"userIdentity\":{{\"type\":\"IAMUser\",\"userName\":\"demo-user-{}\"}},\
                     \"seq\":{seq},\"@devo_pulling_id\":{pulling_id}}}",
                    self.event_time,
                    ["GetObject", "PutObject", "ListBuckets", "DeleteObject"][(seq % 4) as usize],
                    (seq >> 8) % 256,
                    seq % 256,
                    seq % 17
                );
            }
            DemoFormat::VpcFlow => {
                let _ = write!(
                    self.line,
                    "2 123456789012 eni-0a1b2c3d{:04x} 10.0.{}.{} 10.1.0.{} 443 {} 6 {} {} {} {} {} OK seq={seq}",
                    seq % 65536,
                    (seq >> 8) % 256,
                    seq % 256,
                    seq % 200,
                    1024 + seq % 60000,
                    1 + seq % 40,
                    64 * (1 + seq % 300),
                    secs - 60,
                    secs,
                    if seq.is_multiple_of(10) { "REJECT" } else { "ACCEPT" }
                );
            }
        }
    }
}

impl Puller for DemoPuller {
    fn setup(&mut self, _ctx: &mut PullContext) -> Result<(), PullerError> {
        Ok(())
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        self.next_seq = ctx
            .state()
            .get("next_seq")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        log::info!("Demo generation starts at seq {}", self.next_seq);
        Ok(())
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let quota = self.cycle_quota();
        if quota == 0 {
            log::info!(
                "The data is up to date! (count of {} events reached)",
                self.config.count
            );
            return Ok(());
        }
        let now = logferry::time::now_ms();
        let pulling_id = ctx.pulling_id();
        let end = self.next_seq + quota;
        ctx.stats.requests += 1;
        self.set_cycle_time(now);
        for seq in self.next_seq..end {
            self.render(seq, now, pulling_id);
            ctx.stats.received += 1;
            ctx.emit_parts(&self.config.tag, now, &self.line)?;
            self.emitted += 1;
            assert!(
                self.emitted != self.config.panic_after_events,
                "demo puller: panic_after_events reached ({} events emitted by this process)",
                self.emitted
            );
            if ctx.stopping() && seq % 1000 == 999 {
                self.commit(ctx, seq + 1)?;
                return Ok(());
            }
        }
        self.commit(ctx, end)
    }
}

impl DemoPuller {
    fn commit(&mut self, ctx: &mut PullContext, next: u64) -> Result<(), PullerError> {
        ctx.commit_state(json!({"next_seq": next}))?;
        self.next_seq = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn puller(format: DemoFormat) -> DemoPuller {
        DemoPuller::new(DemoConfig {
            format,
            events_per_second: 5,
            count: 12,
            tag: "t".into(),
            request_period: Duration::from_secs(2),
            initial_start_time_in_utc: None,
            panic_after_events: 0,
        })
    }

    #[test]
    fn quota_follows_rate_and_count() {
        let mut p = puller(DemoFormat::CloudTrail);
        assert_eq!(p.cycle_quota(), 10);
        p.next_seq = 10;
        assert_eq!(p.cycle_quota(), 2);
        p.next_seq = 12;
        assert_eq!(p.cycle_quota(), 0);
    }

    #[test]
    fn cloudtrail_records_are_json_with_seq() {
        let mut p = puller(DemoFormat::CloudTrail);
        p.set_cycle_time(1_700_000_000_000);
        p.render(42, 1_700_000_000_000, 7);
        let v: Value = serde_json::from_str(&p.line).unwrap();
        assert_eq!(v["seq"], 42);
        assert_eq!(v["@devo_pulling_id"], 7);
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
        assert!((150..400).contains(&p.line.len()), "{}", p.line.len());
    }

    #[test]
    fn vpc_lines_carry_seq() {
        let mut p = puller(DemoFormat::VpcFlow);
        p.render(9, 1_700_000_000_000, 7);
        assert!(p.line.starts_with("2 123456789012 eni-"));
        assert!(p.line.ends_with(" seq=9"));
    }
}
