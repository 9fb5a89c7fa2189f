//! `workers` process the objects of one received batch in parallel (moto + a real Redis). Alone in its test binary:
//! it installs its own logger to see which worker threads wait for room in the queue.

mod common;

use common::*;
use logferry::queue::QueueLimits;
use logferry_input_aws::AwsInput;
use logferry_testkit::wait_until;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Threads that logged "is full ... waiting for the queue until the output makes room" (each worker has its own producer, which
/// says it once when it starts waiting).
#[derive(Default)]
struct WaitingThreads(Mutex<Vec<String>>);

struct Capture(Arc<WaitingThreads>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string();
        if text.contains("waiting for the queue until the output makes room") {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            self.0 .0.lock().unwrap().push(thread);
        }
        eprintln!("{} {}", record.level(), text);
    }

    fn flush(&self) {}
}

#[test]
fn workers_share_the_objects_of_one_receive() {
    let waiting = Arc::new(WaitingThreads::default());
    log::set_boxed_logger(Box::new(Capture(waiting.clone()))).expect("the only logger");
    log::set_max_level(log::LevelFilter::Info);
    let f = Fixture::start();
    let q = f.bucket_to_queue("batch", "batch-q");
    for o in 0..2 {
        f.put(
            "batch",
            &format!("AWSLogs/1/CloudTrail/o{o}.json.gz"),
            gz(json!({"Records": (0..40).map(|i| json!({"o": o, "i": i, "eventSource": "s3.amazonaws.com"})).collect::<Vec<_>>()}).to_string().as_bytes()),
        );
    }
    wait_until(Duration::from_secs(30), "both notifications queued", || {
        f.queue_depth(&q) >= 2
    });
    // Up to 10 messages per receive (the `aws` input's default): one receive takes both notifications. With a queue
    // that holds one write and no consumer, the worker holding the first object waits for room after its first
    // write; the other object must still start, on the other worker, which then waits too.
    let input = f.aws_input(
        json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "batch-q"}))}}),
    );
    let limits = QueueLimits {
        max_events: 1,
        max_bytes: 1 << 30,
        wrap_size: 1,
        lz4: false,
    };
    let _run = f.run_with_limits(specs(&AwsInput, &input).remove(0), limits);
    wait_until(
        Duration::from_secs(30),
        "both workers waiting with an object each",
        || {
            let mut threads = waiting.0.lock().unwrap().clone();
            threads.sort();
            threads.dedup();
            threads.len() == 2
        },
    );
    assert!(
        f.queue_depth(&q) == 2,
        "both messages are still being processed (none deleted)"
    );
}
