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
                "metrics-all": {},
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
    assert!(has("(8) \"inputs.x.services.metrics-all\""), "{errors:#?}");
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
