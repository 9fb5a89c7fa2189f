//! An S3/SQS service with `regions: [...]` (the seed's `Queue "<name>" used by service "<s>" in "<region>" region`):
//! one puller per region, each reading the queue of that name in its own region on moto (moto keeps one SQS per
//! region, chosen by the request's signature), through the real puller runtime.

mod common;

use common::{fast, run, specs, Fixture};
use logferry_input_aws::AwsInput;
use logferry_testkit::wait_until;
use serde_json::json;
use std::time::Duration;

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

fn sqs_in(f: &Fixture, region: &str) -> aws_sdk_sqs::Client {
    let sdk = common::moto_sdk_config(&f.rt, &f.moto);
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .region(aws_sdk_sqs::config::Region::new(region.to_owned()))
            .build(),
    )
}

#[test]
fn a_service_in_two_regions_reads_the_queue_of_each_region() {
    let f = Fixture::start();
    let mut urls = Vec::new();
    for region in REGIONS {
        let sqs = sqs_in(&f, region);
        let url =
            f.rt.block_on(sqs.create_queue().queue_name("events").send())
                .unwrap()
                .queue_url()
                .unwrap()
                .to_owned();
        let event = json!({"version": "0", "id": region, "detail-type": "x", "source": "aws.ec2",
            "account": "111122223333", "time": "2024-01-02T03:04:05Z", "region": region, "detail": {}});
        f.rt.block_on(
            sqs.send_message()
                .queue_url(&url)
                .message_body(event.to_string())
                .send(),
        )
        .unwrap();
        urls.push((sqs, url));
    }
    let input = f.aws_input(json!({"services": {
        "service-events-all": fast(json!({"sqs_queue_name": "events", "regions": REGIONS})),
    }}));
    let sp = specs(&AwsInput, &input);
    let names: Vec<String> = sp.iter().map(|s| s.identity.thread_name()).collect();
    assert_eq!(
        names,
        REGIONS
            .map(|r| format!("AwsCloudwatchEventsPuller(x,1,service-events-all,predefined,{r})"))
    );
    let _running: Vec<_> = sp
        .into_iter()
        .map(|s| run(s, |stop| f.factory(stop)))
        .collect();
    let depth =
        |(sqs, url): &(aws_sdk_sqs::Client, String)| common::sqs_queue_depth(&f.rt, sqs, url);
    wait_until(
        Duration::from_secs(60),
        "one event from each region and both queues empty",
        || f.events().len() == 2 && urls.iter().all(|u| depth(u) == 0),
    );
    let mut tags: Vec<_> = f.events().into_iter().map(|e| e.tag).collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            "cloud.aws.cloudwatch.events.111122223333.eu-west-1.1",
            "cloud.aws.cloudwatch.events.111122223333.us-east-1.1",
        ]
    );
}
