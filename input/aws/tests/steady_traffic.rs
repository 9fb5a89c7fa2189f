//! Through the real `logferry` binary: under steady SQS traffic (a new object every 200 ms, so no receive ever comes
//! back empty) the `sqs_collector` puller still ends a cycle every `max_cycle_seconds`, with its statistics line and
//! a new `@devo_pulling_id`; at stop, `Thread stopped` counts every event its workers wrote to the queue.

mod common;

use common::{Fixture, LinesCollectorConfig};
use logferry_testkit::collector::{self, logferry_bin, Collector};
use logferry_testkit::{hold_until, wait_until, LineSink, TempDir};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const TAG: &str = "my.app.sqs.steady";
/// The cycle bound the test configures (`max_cycle_seconds`).
const MAX_CYCLE: Duration = Duration::from_secs(2);
/// How long the traffic lasts.
const TRAFFIC: Duration = Duration::from_secs(20);
/// Lines per object.
const LINES: u64 = 20;
const STATS: &str = "Statistics for this pull cycle (@devo_pulling_id=";

/// The `@devo_pulling_id` of every statistics line of the log, in order.
fn cycle_ids(log: &str) -> Vec<u64> {
    log.split(STATS)
        .skip(1)
        .filter_map(|rest| rest.split(')').next()?.parse().ok())
        .collect()
}

#[test]
fn statistics_come_every_cycle_bound_under_steady_traffic_and_the_stop_line_counts_every_event() {
    common::init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("steady", "steady-q");
    let dir = TempDir::new("aws-steady");
    let sink = LineSink::start();
    let config = LinesCollectorConfig {
        persistence: format!(
            "{{type: embedded, directory: \"{}\"}}",
            dir.path().join("state").display()
        ),
        queue_url: &q,
        tag: TAG,
        queue_max: 100_000,
        sink_port: sink.port,
        input_keys: &["max_cycle_seconds: 2"],
        output_keys: &[],
    }
    .yaml(&f);
    let mut c = Collector::start(&logferry_bin(), dir.path(), &config);
    c.wait_log("Starting data collection every", Duration::from_secs(60));
    let traffic_end = Instant::now() + TRAFFIC;
    let objects = std::thread::scope(|scope| {
        let feeder = scope.spawn(|| {
            let mut n = 0u64;
            while Instant::now() < traffic_end {
                let text: String = (0..LINES)
                    .map(|i| format!("{{\"seq\":{},\"source\":\"steady\"}}\n", n * LINES + i))
                    .collect();
                f.put("steady", &format!("logs/o{n}.json"), text.into_bytes());
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            n
        });
        wait_until(
            MAX_CYCLE + Duration::from_secs(5),
            "the first statistics line",
            || c.log_count(STATS) >= 1,
        );
        // While messages keep coming, a statistics line at least every cycle bound (plus the request period of
        // 1 s, the message being processed and the polling of this check).
        let most = MAX_CYCLE + Duration::from_secs(3);
        let (mut seen, mut last_new) = (c.log_count(STATS), Instant::now());
        hold_until(
            traffic_end - Duration::from_secs(1),
            Duration::from_millis(250),
            || {
                let now = c.log_count(STATS);
                if now > seen {
                    (seen, last_new) = (now, Instant::now());
                }
                assert!(
                    last_new.elapsed() <= most,
                    "no statistics line for {:?} under steady traffic:\n{}",
                    last_new.elapsed(),
                    c.log_tail()
                );
            },
        );
        feeder.join().unwrap()
    });
    let ids = cycle_ids(&c.log_text());
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]) && ids.len() >= 6,
        "@devo_pulling_id moves on every cycle: {ids:?}"
    );
    let total = objects * LINES;
    c.wait_all_seqs(total, Duration::from_secs(60), || {
        collector::seqs(sink.lines().iter().map(String::as_str), TAG)
    });
    wait_until(Duration::from_secs(30), "every message deleted", || {
        f.queue_depth(&q) == 0
    });
    let (code, _) = c.stop();
    assert_eq!(code, 0, "{}", c.log_tail());
    let log = c.log_text();
    let stopped: BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains("Thread stopped ("))
        .collect();
    let expected = format!("Thread stopped ({total} events written to the queue)");
    assert!(
        stopped.iter().any(|l| l.contains(&expected)),
        "expected '{expected}' in {stopped:?}"
    );
}
