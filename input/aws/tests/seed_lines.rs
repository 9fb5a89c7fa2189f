//! A real run (the binary, against moto) writes the lines of seeds 001 (`sqs_collector`) and 002 (`aws`) that the
//! runtime and the session write, as the seeds show them: thread names, setup threads, wording and levels, compared
//! after removing times and numbers. (The per-puller statistics lines are compared by the AWS pullers' own tests.)

mod common;

use common::Fixture;
use logferry_testkit::collector::{logferry_bin, Collector};
use logferry_testkit::{seed_lines, TempDir};
use std::time::Duration;

#[test]
fn a_run_writes_the_seed_001_and_002_lines() {
    let f = Fixture::start();
    let vpc = f.queue("aws-sqs-vpc");
    f.queue("dc-aws-cloudwatch-test-1.fifo");
    let config = format!(
        r#"globals:
  id: seeds
  persistence: {{type: redis, url: "{redis}"}}
inputs:
  sqs_collector:
    id: 12345
    base_url: {vpc}
    region: us-east-1
    endpoint: {moto}
    aws_access_key_id: testing
    aws_secret_access_key: testing
    ack_messages: true
    request_period_in_seconds: 5
    services:
      aws_sqs_vpc:
        tag: my.app.sqs.vpc
        format: lines
  aws:
    id: abc123
    region: us-east-1
    endpoint: {moto}
    credentials: {{access_key: testing, access_secret: testing}}
    services:
      service-events-all:
        sqs_queue_name: dc-aws-cloudwatch-test-1.fifo
        sqs_wait_timeout: 1
outputs:
  console:
    type: console
"#,
        redis = f.redis.url(),
        moto = f.moto.url(),
    );
    let dir = TempDir::new("seed-001-002");
    let mut c = Collector::start(&logferry_bin(), dir.path(), &config);
    // Seed 001 fixes the long poll at 20 s: the sqs_collector's first cycle ends with its empty 20 s receive.
    for puller in [
        "AWSsqsPuller(sqs_collector,12345,aws_sqs_vpc,predefined)",
        "AwsCloudwatchEventsPuller(aws,abc123,service-events-all,predefined,us-east-1)",
    ] {
        c.wait_log(
            &format!("{puller} -> Data collection completed"),
            Duration::from_secs(60),
        );
    }
    c.stop();
    let missing = seed_lines::missing_lines(include_str!("fixtures/seed_lines.log"), &c.log_text());
    assert!(
        missing.is_empty(),
        "seed lines not written:\n{}\n\nlog:\n{}",
        missing.join("\n"),
        c.log_text()
    );
}
