//! End-to-end tests of the AWS pullers against moto's server and a real Redis: bucket notification -> SQS ->
//! puller -> Redis, for each service's format; the delete-after-Redis guarantee; bad objects; scale-out.

mod common;

use common::*;
use logferry_input_aws::{AwsInput, SqsCollectorInput};
use logferry_testkit::wait_until;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn cloudtrail_objects_become_one_event_per_record_and_messages_are_deleted() {
    init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("trail", "trail-q");
    let records = json!({"Records": [
        {"eventVersion": "1.08", "eventTime": "2024-01-02T03:04:05Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "awsRegion": "eu-west-1", "recipientAccountId": "123456789012"},
        {"eventVersion": "1.08", "eventTime": "2024-01-02T03:04:06Z", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "awsRegion": "eu-west-1", "recipientAccountId": "123456789012"},
        {"eventVersion": "1.08", "eventTime": "2024-01-02T03:04:07Z", "eventSource": "s3.amazonaws.com", "eventName": "PutObject", "note": "caf\u{e9}"}
    ]});
    let key = "AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/02/a b é.json.gz";
    f.put("trail", key, gz(records.to_string().as_bytes()));
    let mut corrupt = gz(b"{\"Records\":[{\"a\":1}]}");
    let n = corrupt.len();
    corrupt[n / 2] ^= 0x55;
    corrupt.truncate(n - 3);
    f.put(
        "trail",
        "AWSLogs/123456789012/CloudTrail/eu-west-1/bad.json.gz",
        corrupt,
    );
    f.put(
        "trail",
        "AWSLogs/123456789012/CloudTrail/eu-west-1/empty.json.gz",
        Vec::new(),
    );
    let input = f.aws_input(json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "trail-q", "auto_event_type": true}))}}));
    let spec = specs(&AwsInput, &input).remove(0);
    let _run = run(spec, |s| f.factory(s));
    wait_until(T, "3 events, 1 dead letter and an empty queue", || {
        f.events().len() == 3 && f.queue_depth(&q) == 0 && f.dead_letters().len() == 1
    });
    let mut ev = f.events();
    ev.sort_by_key(|e| e.time_ms);
    assert_eq!(
        ev[0].tag,
        "cloud.aws.cloudtrail.s3.123456789012.eu-west-1.1"
    );
    assert_eq!(
        ev[1].tag,
        "cloud.aws.cloudtrail.ec2.123456789012.eu-west-1.1"
    );
    // The third record has no account/region: taken from the key path.
    assert_eq!(
        ev[2].tag,
        "cloud.aws.cloudtrail.s3.123456789012.eu-west-1.1"
    );
    assert_eq!(ev[0].time_ms, 1_704_164_645_000);
    // Each record arrives as it was in the file, with the pull cycle's `@devo_pulling_id` added.
    let ids: Vec<u64> = ev
        .iter()
        .map(|e| {
            let mut rec: serde_json::Value = serde_json::from_str(&e.message).unwrap();
            let id = rec["@devo_pulling_id"].as_u64().expect("@devo_pulling_id");
            rec.as_object_mut().unwrap().remove("@devo_pulling_id");
            assert!(
                records["Records"].as_array().unwrap().contains(&rec),
                "{rec}"
            );
            id
        })
        .collect();
    assert!(
        ids.iter().all(|&id| id == ids[0] && id > 1_700_000_000_000),
        "{ids:?}"
    );
    let dl = f.dead_letters();
    assert_eq!(
        dl[0].0,
        "s3://trail/AWSLogs/123456789012/CloudTrail/eu-west-1/bad.json.gz"
    );
}

/// A record whose brackets and strings are sound but whose grammar is not (`"a" 1`) is forwarded as written with
/// the default `records_check: structure`, set aside with `grammar`; a raw control character inside a string is
/// set aside by both.
#[test]
fn records_check_decides_which_records_are_set_aside() {
    init_log();
    let doc = b"{\"Records\":[{\"eventSource\":\"s3.amazonaws.com\",\"n\":0},\
{\"eventSource\":\"s3.amazonaws.com\",\"a\" 1},{\"a\":\"x\x01y\"}]}";
    for (check, events, set_aside) in [
        (None, 2, &["#Records[2]"][..]),
        (Some("grammar"), 1, &["#Records[1]", "#Records[2]"][..]),
    ] {
        let f = Fixture::start();
        let q = f.bucket_to_queue("trail", "trail-q");
        f.put(
            "trail",
            "AWSLogs/123456789012/CloudTrail/eu-west-1/r.json.gz",
            gz(doc),
        );
        let mut service = json!({"sqs_queue_name": "trail-q", "auto_event_type": true});
        if let Some(c) = check {
            service["records_check"] = json!(c);
        }
        let input = f.aws_input(json!({"services": {"audit-events-all": fast(service)}}));
        let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
        wait_until(
            T,
            "the records delivered or set aside, an empty queue",
            || f.events().len() + f.dead_letters().len() == 3 && f.queue_depth(&q) == 0,
        );
        assert_eq!(f.events().len(), events, "{check:?}");
        let mut origins: Vec<String> = f.dead_letters().into_iter().map(|d| d.0).collect();
        origins.sort();
        let want: Vec<String> = set_aside
            .iter()
            .map(|r| format!("s3://trail/AWSLogs/123456789012/CloudTrail/eu-west-1/r.json.gz{r}"))
            .collect();
        assert_eq!(origins, want, "{check:?}");
    }
}

#[test]
fn vpc_flow_and_cloudfront_lines_skip_headers_and_keep_latin1() {
    init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("logs", "logs-q");
    let vpc = b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
2 123456789012 eni-1 10.0.0.1 10.0.0.2 443 1024 6 1 40 1 2 ACCEPT OK\n\
2 123456789012 eni-1 10.0.0.3 10.0.0.2 22 1025 6 1 40 1 2 REJECT OK\n";
    f.put(
        "logs",
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/02/flow.log.gz",
        gz(vpc),
    );
    let cf = b"#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method\n2024-01-02\t03:04:05\tFRA2\t100\t1.2.3.4\tGET\n2024-01-02\t03:04:06\tFRA2\t200\t1.2.3.5\tGET /caf\xe9\n";
    f.put("logs", "cf/E2ABC.2024-01-02-03.abcd.gz", gz(cf));
    let input = f.aws_input(
        json!({"services": {"non-cloudwatch-logs": fast(json!({"sqs_queue_name": "logs-q"}))}}),
    );
    let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
    wait_until(T, "4 events and an empty queue", || {
        f.events().len() == 4 && f.queue_depth(&q) == 0
    });
    let ev = f.events();
    let vpc_ev: Vec<_> = ev
        .iter()
        .filter(|e| e.tag == "cloud.aws.vpc.unknown.123456789012.us-east-1.1")
        .collect();
    let cf_ev: Vec<_> = ev
        .iter()
        .filter(|e| e.tag == "cloud.aws.cloudfront.unknown.123456789012.us-east-1.1")
        .collect();
    assert_eq!(vpc_ev.len(), 2, "{ev:?}");
    assert_eq!(cf_ev.len(), 2, "{ev:?}");
    assert!(vpc_ev
        .iter()
        .all(|e| e.message.starts_with("2 123456789012 eni-1")));
    assert!(
        cf_ev.iter().any(|e| e.message.ends_with("GET /café")),
        "{cf_ev:?}"
    );
}

#[test]
fn umbrella_tags_by_key_path_and_sns_eventbridge_notifications() {
    init_log();
    let f = Fixture::start();
    let q = f.queue("umb-q");
    f.rt.block_on(f.s3.create_bucket().bucket("umb").send())
        .unwrap();
    f.put(
        "umb",
        "dnsa/dnslogs/2024-01-02/a.csv.gz",
        gz(b"\"2024-01-02 03:04:05\",\"u\",\"q.example.\"\n"),
    );
    f.put(
        "umb",
        "dnsa/proxylogs/2024-01-02/b.csv",
        b"\"2024-01-02 03:04:05\",\"p1\"\n\"2024-01-02 03:04:06\",\"p2\"\n".to_vec(),
    );
    f.put("umb", "dnsa/other/c d.csv", b"x\n".to_vec());
    // SNS-wrapped S3 notification, EventBridge Object Created, EventBridge with an encoded key, and a test event.
    let s3n = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "umb"}, "object": {"key": "dnsa%2Fdnslogs%2F2024-01-02%2Fa.csv.gz"}}}]});
    f.send(
        &q,
        &json!({"Type": "Notification", "Message": s3n.to_string()}).to_string(),
    );
    f.send(&q, &json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "umb"}, "object": {"key": "dnsa/proxylogs/2024-01-02/b.csv"}}}).to_string());
    f.send(&q, &json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "umb"}, "object": {"key": "dnsa/other/c+d.csv"}}}).to_string());
    f.send(
        &q,
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"umb"}"#,
    );
    let input = f.aws_input(
        json!({"services": {"cisco-umbrella": fast(json!({"sqs_queue_name": "umb-q"}))}}),
    );
    let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
    wait_until(T, "4 events and an empty queue", || {
        f.events().len() == 4 && f.queue_depth(&q) == 0
    });
    let mut tags: Vec<_> = f.events().into_iter().map(|e| e.tag).collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            "sig.cisco.umbrella.dns",
            "sig.cisco.umbrella.proxy",
            "sig.cisco.umbrella.proxy",
            "sig.cisco.umbrella.unknown"
        ]
    );
}

#[test]
fn eventbridge_fifo_and_security_hub_findings() {
    init_log();
    let f = Fixture::start();
    let q = f.queue("events.fifo");
    let hq = f.queue("hub.fifo");
    f.send(&q, &json!({"version": "0", "id": "1", "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "account": "111122223333", "time": "2024-01-02T03:04:05Z", "region": "eu-west-1", "detail": {"state": "running"}}).to_string());
    f.send(&q, &json!({"version": "0", "id": "2", "detail-type": "x", "source": "aws.kms", "account": "111122223333", "time": "2024-01-02T03:04:06Z", "region": "eu-west-1", "detail": {}}).to_string());
    f.send(&q, "not json at all");
    let findings = json!({"version": "0", "id": "3", "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub", "account": "111122223333", "region": "us-east-1",
        "detail": {"findings": [{"Id": "f1", "AwsAccountId": "444455556666", "Region": "us-west-2", "UpdatedAt": "2024-01-02T03:04:05.000Z"}, {"Id": "f2"}]}});
    f.send(&hq, &findings.to_string());
    let input = f.aws_input(json!({"services": {
        "service-events-all": fast(json!({"sqs_queue_name": "events.fifo", "auto_event_type": true})),
        "sqs-cloudwatch-consumer": fast(json!({"sqs_queue_name": "hub.fifo"})),
    }}));
    let mut sp = specs(&AwsInput, &input);
    let _r2 = run(sp.pop().unwrap(), |s| f.factory(s));
    let _r1 = run(sp.pop().unwrap(), |s| f.factory(s));
    wait_until(T, "4 events and empty queues", || {
        f.events().len() == 4 && f.queue_depth(&q) == 0 && f.queue_depth(&hq) == 0
    });
    for e in f.events() {
        let v: serde_json::Value = serde_json::from_str(&e.message).unwrap();
        assert!(v["@devo_pulling_id"].as_u64().is_some(), "{}", e.message);
        assert!(
            v["Id"].is_string() || v["detail-type"].is_string(),
            "{}",
            e.message
        );
    }
    let mut tags: Vec<_> = f.events().into_iter().map(|e| e.tag).collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            "cloud.aws.cloudwatch.ec2.111122223333.eu-west-1.1",
            "cloud.aws.cloudwatch.kms.111122223333.eu-west-1.1",
            "cloud.aws.securityhub.findings.111122223333.us-east-1.1",
            "cloud.aws.securityhub.findings.444455556666.us-west-2.1",
        ]
    );
    let dl = f.dead_letters();
    assert_eq!(dl.len(), 1);
    assert!(dl[0].0.starts_with("sqs://events.fifo/"), "{dl:?}");
}

#[test]
fn message_is_deleted_only_after_its_events_are_in_redis() {
    init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("big", "big-q");
    let lines: String = (0..50).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    f.put("big", "a.json", lines.into_bytes());
    let input = f.aws_input(
        json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "big-q"}))}}),
    );
    let mut sc = specs(
        &SqsCollectorInput,
        &json!({
            "base_url": q, "region": "us-east-1", "endpoint": f.moto.url(), "ack_messages": true,
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "workers": 1,
            "services": {"s": {"tag": "my.app.sqs.test"}}
        }),
    );
    drop(input);
    // A queue that holds only 10 events: the puller blocks (backpressure) with 40 events not yet in Redis.
    let spec = sc.remove(0);
    let limits = logferry::queue::QueueLimits {
        max_events: 10,
        max_bytes: 1 << 30,
        wrap_size: 5,
        lz4: false,
    };
    let run1 = f.run_with_limits(spec, limits);
    wait_until(T, "the queue to fill up", || f.events().len() >= 10);
    std::thread::sleep(Duration::from_millis(1500)); // let a wrongly early delete happen, if any
    assert_eq!(
        f.queue_depth(&q),
        1,
        "the message must stay while its events are not all in Redis"
    );
    drop(run1);
    assert_eq!(f.queue_depth(&q), 1);
}

#[test]
fn two_collectors_on_one_queue_deliver_every_event() {
    init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("shared", "shared-q");
    let mut expected = Vec::new();
    for o in 0..12 {
        let body: String = (0..25)
            .map(|i| format!("{{\"o\":{o},\"i\":{i}}}\n"))
            .collect();
        expected.extend((0..25).map(|i| format!("{{\"o\":{o},\"i\":{i}}}")));
        f.put("shared", &format!("obj/{o}.json.gz"), gz(body.as_bytes()));
    }
    let cfg = json!({"base_url": q, "region": "us-east-1", "endpoint": f.moto.url(), "ack_messages": true,
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "workers": 2, "request_period_in_seconds": 1,
        "services": {"s": {"tag": "my.app.sqs.shared"}}});
    let a = run(specs(&SqsCollectorInput, &cfg).remove(0), |s| f.factory(s));
    let b = run(specs(&SqsCollectorInput, &cfg).remove(0), |s| f.factory(s));
    wait_until(T, "every event and an empty queue", || {
        f.events().len() >= expected.len() && f.queue_depth(&q) == 0
    });
    drop((a, b));
    let mut got: Vec<_> = f.events().into_iter().map(|e| e.message).collect();
    got.sort();
    got.dedup();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn message_received_too_often_is_set_aside() {
    init_log();
    let f = Fixture::start();
    let q = f.queue("poison-q");
    f.send(&q, &json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "nobucket"}, "object": {"key": "k"}}}]}).to_string());
    for _ in 0..3 {
        let r =
            f.rt.block_on(
                f.sqs
                    .receive_message()
                    .queue_url(&q)
                    .visibility_timeout(0)
                    .send(),
            )
            .unwrap();
        assert_eq!(r.messages().len(), 1);
    }
    let input = f.aws_input(json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "poison-q", "max_receive_count": 2}))}}));
    let _run = run(specs(&AwsInput, &input).remove(0), |s| f.factory(s));
    wait_until(T, "the message set aside and deleted", || {
        f.dead_letters().len() == 1 && f.queue_depth(&q) == 0
    });
    assert!(
        f.dead_letters()[0].1.contains("received 4 times"),
        "{:?}",
        f.dead_letters()
    );
}

#[test]
fn assume_role_through_moto_sts() {
    init_log();
    let f = Fixture::start();
    let cfg = logferry_input_aws::config::ClientConfig {
        region: "us-east-1".into(),
        endpoint: Some(f.moto.url()),
        credentials: logferry_input_aws::config::CredentialsConfig {
            access_key: Some("AKIDBASE".into()),
            access_secret: Some(logferry::config::Secret("secret".into())),
            base_assume_role: Some("arn:aws:iam::123456789012:role/collector".into()),
            session_duration: Duration::from_secs(900),
            ..Default::default()
        },
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt
        .block_on(logferry_input_aws::session::start(&cfg, "logferry-test"))
        .unwrap();
    let key = rt.block_on(s.access_key_id()).unwrap();
    assert!(
        key.starts_with("ASIA"),
        "assumed-role credentials expected, got {key}"
    );
    assert!(s.arn.contains("assumed-role/collector"), "{}", s.arn);
    // The assumed session works for SQS too.
    rt.block_on(s.sqs().list_queues().send()).unwrap();
}

/// With `event_id: true` a Security Hub finding's id comes from its `Id` and `UpdatedAt`, not from the message:
/// the same finding version in two messages gets the same id, another version or finding another one.
#[test]
fn security_hub_ids_come_from_the_finding_id_and_update_time() {
    init_log();
    let f = Fixture::start();
    let hq = f.queue("hub-ids.fifo");
    let message = |id: &str, findings: serde_json::Value| {
        json!({"version": "0", "id": id, "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
            "account": "111122223333", "region": "us-east-1", "detail": {"findings": findings}})
        .to_string()
    };
    let v1 = json!({"Id": "f1", "UpdatedAt": "2024-01-02T03:04:05.000Z", "n": 1});
    let v2 = json!({"Id": "f1", "UpdatedAt": "2024-01-02T04:00:00.000Z", "n": 2});
    let other = json!({"Id": "f2", "UpdatedAt": "2024-01-02T03:04:05.000Z", "n": 3});
    f.send(&hq, &message("m1", json!([v1, other])));
    f.send(&hq, &message("m2", json!([v1, v2])));
    let input = f.aws_input(json!({"services": {
        "sqs-cloudwatch-consumer": fast(json!({"sqs_queue_name": "hub-ids.fifo", "event_id": true})),
    }}));
    let mut sp = specs(&AwsInput, &input);
    let _r = run(sp.pop().unwrap(), |s| f.factory(s));
    wait_until(T, "4 findings and an empty queue", || {
        f.events().len() == 4 && f.queue_depth(&hq) == 0
    });
    let mut ids: Vec<(u64, String)> = f
        .events()
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.message).unwrap();
            (
                v["n"].as_u64().unwrap(),
                v["@logferry_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0].0, 1);
    assert_eq!(ids[1].0, 1);
    assert_eq!(
        ids[0].1, ids[1].1,
        "one finding version in two messages: one id"
    );
    let distinct: std::collections::HashSet<&String> = ids.iter().map(|(_, id)| id).collect();
    assert_eq!(
        distinct.len(),
        3,
        "another version or finding: another id: {ids:?}"
    );
    assert_eq!(
        ids[0].1,
        format!(
            "{}-0",
            logferry_input::event_id::source_hash(&["f1", "2024-01-02T03:04:05.000Z"])
        )
    );
}
