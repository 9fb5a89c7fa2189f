//! Configuration validation of both inputs: ranges, combinations and error paths.

mod common;

use common::specs_and_errors;
use logferry_input_aws::{AwsInput, SqsCollectorInput};
use serde_json::json;

#[test]
fn seed_001_ranges_and_mandatory_keys() {
    let (specs, errors) = specs_and_errors(
        &SqsCollectorInput,
        &json!({
            "region": "us-east-1", "sqs_visibility_timeout": 100, "sqs_wait_timeout": 10, "sqs_max_messages": 7,
            "aws_access_key_id": "a", "services": {"s": {"tag": "x.{bogus}"}}
        }),
    );
    assert!(specs.is_empty());
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("(4) \"inputs.x.sqs_visibility_timeout\""),
        "{errors:#?}"
    );
    assert!(has("(4) \"inputs.x.sqs_wait_timeout\""), "{errors:#?}");
    assert!(has("(4) \"inputs.x.sqs_max_messages\""), "{errors:#?}");
    assert!(has("(1) \"inputs.x.base_url\""), "{errors:#?}");
    assert!(has("(1) \"inputs.x.ack_messages\""), "{errors:#?}");
    assert!(has("(1) \"inputs.x.aws_secret_access_key\""), "{errors:#?}");
    assert!(
        has("ServiceConfigurationError(5) \"inputs.x.services.s.tag\""),
        "{errors:#?}"
    );
}

#[test]
fn aws_services_credentials_and_unknown_keys() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "credentials": {"target_assume_role": "arn:aws:iam::1:role/x", "assume_role_external_id": "e"},
            "services": {
                "audit-events-all": {"types": ["audits_api"], "bogus": 1},
                "non-cloudwatch-logs": {"types": ["flowlogs", "nope"], "key_regex": "("},
                "no-such-service": {},
                "cisco-umbrella": {"sqs_queue_name": "bad name!"}
            }
        }),
    );
    assert!(specs.is_empty() || specs.len() < 3);
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("(1) \"inputs.x.credentials.base_assume_role\""),
        "{errors:#?}"
    );
    assert!(
        has("(5) \"inputs.x.services.audit-events-all.types\""),
        "{errors:#?}"
    );
    assert!(
        has("(6) \"inputs.x.services.audit-events-all.bogus\""),
        "{errors:#?}"
    );
    assert!(
        has("(5) \"inputs.x.services.non-cloudwatch-logs.types\""),
        "{errors:#?}"
    );
    assert!(
        has("(5) \"inputs.x.services.non-cloudwatch-logs.key_regex\""),
        "{errors:#?}"
    );
    assert!(
        has("(8) \"inputs.x.services.no-such-service\""),
        "{errors:#?}"
    );
    assert!(
        has("(5) \"inputs.x.services.cisco-umbrella.sqs_queue_name\""),
        "{errors:#?}"
    );
}

#[test]
fn a_valid_aws_input_gives_one_puller_per_service() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "eu-west-1", "environment": "prod-1",
            "credentials": {"access_key": "a", "access_secret": "b", "base_assume_role": "arn:aws:iam::123456789012:role/r"},
            "services": {
                "audit-events-all": {"sqs_queue_name": "q1", "tag": "cloud.aws.cloudtrail.{event_type}.{account_id}.{region_id}.{format_version}.{environment}"},
                "service-events-all": {"sqs_queue_name": "q2.fifo", "auto_event_type": true, "workers": 8}
            }
        }),
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].identity.puller, "AwsSqsS3CloudTrailPuller");
    assert_eq!(
        specs[0].identity.thread_name(),
        "AwsSqsS3CloudTrailPuller(x,1,audit-events-all,predefined,eu-west-1)"
    );
}

#[test]
fn records_check_takes_structure_or_grammar() {
    for (value, ok) in [("structure", true), ("grammar", true), ("strict", false)] {
        let (specs, errors) = specs_and_errors(
            &AwsInput,
            &json!({"region": "us-east-1", "services": {"audit-events-all": {"records_check": value}}}),
        );
        if ok {
            assert_eq!((specs.len(), errors.len()), (1, 0), "{value}: {errors:#?}");
        } else {
            assert!(
                errors.iter().any(|e| e.contains(
                    "(5) \"inputs.x.services.audit-events-all.records_check\""
                )),
                "{errors:#?}"
            );
        }
    }
}

#[test]
fn cloudtrail_api_keys_are_checked_with_the_seeds_errors() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {"audit-events-all": {
                "types": ["audit_apis"], "start_time": "2024-01-02 03:04:05", "gap_until_now_in_minutes": -1,
                "time_slot_in_hours": 0, "sources": 5, "drop_event_names": "ConsoleLogin",
                "requests_per_second": 5, "sqs_queue_name": "not-for-the-api"
            }}
        }),
    );
    assert!(specs.is_empty());
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    let p = "inputs.x.services.audit-events-all";
    assert!(has(&format!("(5) \"{p}.start_time\": AwsServiceConfigurationError(7): The property \"{p}.start_time\" from configuration is having a wrong format, expected pattern: ")), "{errors:#?}");
    assert!(
        has(&format!(
            "(3) \"{p}.gap_until_now_in_minutes\": AwsServiceConfigurationError(5)"
        )),
        "{errors:#?}"
    );
    assert!(
        has(&format!("(4) \"{p}.time_slot_in_hours\"")),
        "{errors:#?}"
    );
    assert!(
        has(&format!(
            "(3) \"{p}.sources\": AwsServiceConfigurationError(4)"
        )),
        "{errors:#?}"
    );
    assert!(
        has(&format!(
            "(3) \"{p}.drop_event_names\": AwsServiceConfigurationError(8)"
        )),
        "{errors:#?}"
    );
    assert!(
        has(&format!("(4) \"{p}.requests_per_second\"")),
        "{errors:#?}"
    );
    assert!(has(&format!("(6) \"{p}.sqs_queue_name\"")), "{errors:#?}");

    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {"audit-events-all": {
                "types": ["audit_apis", "audits_s3"], "start_time": "2024-01-02T03:04:05Z",
                "sources": ["s3.amazonaws.com", "iam.amazonaws.com"], "drop_event_names": ["ConsoleLogin"]
            }}
        }),
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let pullers: Vec<_> = specs.iter().map(|s| s.identity.thread_name()).collect();
    assert_eq!(
        pullers,
        [
            "AwsCloudtrailApiPuller(x,1,audit-events-all,predefined,us-east-1)",
            "AwsSqsS3CloudTrailPuller(x,1,audit-events-all,predefined,us-east-1)"
        ]
    );
}

#[test]
fn cloudwatch_logs_needs_requests_per_second_and_a_log_group() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {"cwl_1": {"types": ["logs"], "log_group": 5, "use_first_optimized_retrieval": "yes",
                                   "start_time": "yesterday"}}
        }),
    );
    assert!(specs.is_empty());
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(has("InputConfigurationError(1) \"inputs.x.requests_per_second\": AwsInputConfigurationError(0): Mandatory property \"requests_per_second\" is missing"), "{errors:#?}");
    let p = "inputs.x.services.cwl_1";
    assert!(
        has(&format!(
            "(3) \"{p}.log_group\": AwsServiceConfigurationError(1)"
        )),
        "{errors:#?}"
    );
    assert!(
        has(&format!(
            "(3) \"{p}.use_first_optimized_retrieval\": AwsServiceConfigurationError(43)"
        )),
        "{errors:#?}"
    );
    assert!(
        has(&format!(
            "(5) \"{p}.start_time\": AwsServiceConfigurationError(1)"
        )),
        "{errors:#?}"
    );

    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1", "requests_per_second": 5,
            "services": {"cwl_1": {"types": ["logs"], "log_group": "/"}}
        }),
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        specs[0].identity.thread_name(),
        "AwsCloudwatchLogsPuller(x,1,cwl_1,custom,us-east-1)"
    );
}

#[test]
fn metrics_services_read_their_namespaces_and_the_seeds_period() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {
                "metrics-all": {},
                "ec2": {"request_period_in_seconds": 300, "statistics": ["Average", "p99.9"]},
                "mine": {"types": ["metrics"], "metric_namespaces": ["My/App"], "request_period_in_seconds": 10}
            }
        }),
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let mut names: Vec<_> = specs.iter().map(|s| s.identity.thread_name()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "AwsCloudwatchMetricPuller(x,1,ec2,predefined,us-east-1)",
            "AwsCloudwatchMetricPuller(x,1,metrics-all,predefined,us-east-1)",
            "AwsCloudwatchMetricPuller(x,1,mine,custom,us-east-1)",
        ]
    );
    let ec2 = specs.iter().find(|s| s.identity.service == "ec2").unwrap();
    assert_eq!(
        ec2.defining["namespaces"],
        json!(["AWS/EC2", "AWS/EC2Spot"])
    );
    assert_eq!(ec2.request_period.as_secs(), 300);

    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {
                "a": {"types": ["metrics"], "metric_namespaces": "My/App", "request_period_in_seconds": 0},
                "b": {"types": ["metrics"], "metric_namespaces": [], "request_period_in_seconds": 86_460},
                "ec2": {"statistics": ["Median"], "request_period_in_seconds": "60"}
            }
        }),
    );
    assert!(specs.is_empty());
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    let period_error = "AwsServiceConfigurationError(1): When a service uses \"metrics\" type, the property \"request_period_in_seconds\" must have one of the following values: 1, 5, 10, 30, 60, or any multiple of 60";
    assert!(has("(3) \"inputs.x.services.a.metric_namespaces\": AwsServiceConfigurationError(0): Mandatory property \"metric_namespaces\" property must be a list"), "{errors:#?}");
    assert!(
        has(&format!(
            "(5) \"inputs.x.services.a.request_period_in_seconds\": {period_error}"
        )),
        "{errors:#?}"
    );
    assert!(
        has("(1) \"inputs.x.services.b.metric_namespaces\": AwsServiceConfigurationError(0)"),
        "{errors:#?}"
    );
    assert!(
        has("(4) \"inputs.x.services.b.request_period_in_seconds\""),
        "{errors:#?}"
    );
    assert!(
        has("(5) \"inputs.x.services.ec2.statistics\""),
        "{errors:#?}"
    );
    assert!(
        has(&format!(
            "(5) \"inputs.x.services.ec2.request_period_in_seconds\": {period_error}"
        )),
        "{errors:#?}"
    );
}

#[test]
fn regions_run_one_puller_each_and_are_checked() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "services": {
                "ec2": {"regions": ["us-east-1", "eu-west-1"]},
                "audit-events-all": {"types": ["audit_apis"], "regions": ["us-east-1", "ap-south-1"]},
                "service-events-all": {"sqs_queue_name": "events.fifo", "regions": ["eu-west-1", "eu-central-1"]}
            }
        }),
    );
    assert!(
        errors.is_empty(),
        "no input region is needed when every service has regions: {errors:#?}"
    );
    let mut names: Vec<_> = specs.iter().map(|s| s.identity.thread_name()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "AwsCloudtrailApiPuller(x,1,audit-events-all,predefined,ap-south-1)",
            "AwsCloudtrailApiPuller(x,1,audit-events-all,predefined,us-east-1)",
            "AwsCloudwatchEventsPuller(x,1,service-events-all,predefined,eu-central-1)",
            "AwsCloudwatchEventsPuller(x,1,service-events-all,predefined,eu-west-1)",
            "AwsCloudwatchMetricPuller(x,1,ec2,predefined,eu-west-1)",
            "AwsCloudwatchMetricPuller(x,1,ec2,predefined,us-east-1)",
        ]
    );
    for s in &specs {
        let region = s
            .identity
            .thread_name()
            .rsplit(',')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_owned();
        assert_eq!(
            s.defining["region"],
            json!(region),
            "{}",
            s.identity.thread_name()
        );
        assert_eq!(s.identity.state_parts().last(), Some(&region.as_str()));
    }

    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "services": {
                "ec2": {"regions": ["us-east-1", "us-east-1"]},
                "s3": {"regions": "us-east-1"},
                "metrics-all": {"regions": ["Mars"]},
                "service-events-all": {"sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q", "regions": ["eu-west-1", "us-east-1"]}
            }
        }),
    );
    assert!(
        specs.is_empty(),
        "{:?}",
        specs
            .iter()
            .map(|s| s.identity.thread_name())
            .collect::<Vec<_>>()
    );
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("(5) \"inputs.x.services.ec2.regions\": region \"us-east-1\" is given twice"),
        "{errors:#?}"
    );
    assert!(has("(3) \"inputs.x.services.s3.regions\""), "{errors:#?}");
    assert!(
        has("(5) \"inputs.x.services.metrics-all.regions\": \"Mars\" is not an AWS region"),
        "{errors:#?}"
    );
    assert!(
        has("(9) \"inputs.x.services.service-events-all.regions\""),
        "{errors:#?}"
    );
    assert_eq!(
        errors.iter().filter(|e| e.contains("ec2")).count(),
        1,
        "one problem reported once: {errors:#?}"
    );
}

#[test]
fn a_problem_of_a_service_in_two_regions_is_reported_once() {
    let (_, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {"ec2": {"regions": ["us-east-1", "eu-west-1"], "statistics": ["Nope"], "bogus": 1}}
        }),
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn guardduty_keys_are_checked_and_a_valid_service_gives_its_puller() {
    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "us-east-1",
            "services": {"aws-guardduty": {"start_time": "2024-01-02 03:04:05", "requests_per_second": 500,
                                           "tag": "x.{bogus}", "detectors": ["d1"]}}
        }),
    );
    assert!(specs.is_empty());
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    let p = "inputs.x.services.aws-guardduty";
    assert!(
        has(&format!(
            "(5) \"{p}.start_time\": AwsServiceConfigurationError(7)"
        )),
        "{errors:#?}"
    );
    assert!(
        has(&format!("(4) \"{p}.requests_per_second\"")),
        "{errors:#?}"
    );
    assert!(has(&format!("(5) \"{p}.tag\"")), "{errors:#?}");
    assert!(has(&format!("(6) \"{p}.detectors\"")), "{errors:#?}");

    let (specs, errors) = specs_and_errors(
        &AwsInput,
        &json!({
            "region": "eu-west-1",
            "services": {"aws-guardduty": {"start_time": "2024-01-02T03:04:05Z", "request_period_in_seconds": 30}}
        }),
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        specs[0].identity.thread_name(),
        "AwsGuardDutyApiPuller(x,1,aws-guardduty,predefined,eu-west-1)"
    );
    assert_eq!(specs[0].request_period.as_secs(), 30);
    assert_eq!(specs[0].defining["start_time"], "2024-01-02T03:04:05+00:00");
}

/// The keys of resuming inside objects and of event ids: ranges and names are checked, with their paths.
#[test]
fn object_progress_and_event_id_keys_are_checked() {
    let (_, errors) = specs_and_errors(
        &SqsCollectorInput,
        &json!({
            "base_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q", "region": "us-east-1",
            "ack_messages": true, "object_progress_ttl_in_seconds": 10, "resume_inside_objects": "yes",
            "event_id": true, "event_id_field": "a\"b", "services": {"s": {"tag": "my.app.x"}}
        }),
    );
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("(4) \"inputs.x.object_progress_ttl_in_seconds\""),
        "{errors:#?}"
    );
    assert!(has("\"inputs.x.resume_inside_objects\""), "{errors:#?}");
    assert!(
        has("(5) \"inputs.x.event_id_field\"") && has("a JSON member name"),
        "{errors:#?}"
    );
}

/// The example configurations of the AWS services in `config/` are valid for `logferry validate` (every key they
/// show is declared), with the number of pullers their comments promise.
#[test]
fn the_example_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for (file, pullers) in [
        ("aws.yaml", None),
        ("sqs.yaml", None),
        ("aws_cloudtrail_api.yaml", Some(2)),
        ("aws_cloudwatch_logs.yaml", None),
        ("aws_guardduty.yaml", None),
        ("aws_metrics.yaml", Some(3)),
    ] {
        let out = std::process::Command::new(logferry_testkit::collector::logferry_bin())
            .args(["validate", "--config"])
            .arg(root.join(file))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(": valid ("),
            "{file}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(n) = pullers {
            assert!(
                text.contains(&format!("valid ({n} puller(s)")),
                "{file}: {text}"
            );
        }
    }
}
