//! AWS pullers. Two input kinds:
//! - `aws` (seed 002): S3+SQS services `audit-events-all` (CloudTrail), `non-cloudwatch-logs` (VPC flow logs,
//!   CloudFront), `cisco-umbrella`, and SQS services `service-events-all` (EventBridge) and
//!   `sqs-cloudwatch-consumer` (Security Hub findings);
//! - `sqs_collector` (seed 001): the generic SQS collector (S3 notifications or direct messages).
//!
//! The S3/SQS services run an [`sqs::puller::SqsPuller`]; the API services (CloudTrail LookupEvents, CloudWatch
//! Logs, CloudWatch Metrics, GuardDuty) their own puller, each in its own module. A service with `regions: [...]` runs one
//! puller per region.

pub mod api;
pub mod cloudtrail_api;
pub mod cloudwatch_logs;
pub mod config;
pub mod errors;
pub mod guardduty;
pub mod keys;
pub mod metrics;
pub mod session;
pub mod sqs;
pub mod tag;

use config::*;
use keys::*;
use logferry::config::{ConfigErrorKind, KeySet, Section};
use logferry_input::config::{InputInfo, InputKind, PullerIdentity, PullerSpec, ThreadNaming};
use serde_json::json;
use tag::TagTemplate;

/// The input kinds this crate provides, registered by the supervisor.
pub fn input_kinds() -> Vec<&'static dyn logferry_input::InputKind> {
    vec![&AwsInput, &SqsCollectorInput]
}

/// The `{format_version}` of the default tags.
pub const FORMAT_VERSION: &str = "1";

/// The `aws` input of seed 002.
pub struct AwsInput;

/// The services of the `aws` input this crate implements: (name, puller class, default tag, default event type).
const AWS_SERVICES: [(&str, &str, &str, &str); 5] = [
    (
        "audit-events-all",
        "AwsSqsS3CloudTrailPuller",
        "cloud.aws.cloudtrail.{event_type}.{account_id}.{region_id}.{format_version}",
        "events",
    ),
    (
        "non-cloudwatch-logs",
        "AwsSqsS3VpcFlowlogsPuller",
        "cloud.aws.vpc.{event_type}.{account_id}.{region_id}.{format_version}",
        "unknown",
    ),
    (
        "cisco-umbrella",
        "AwsSqsS3CiscoUmbrellaPuller",
        "sig.cisco.umbrella.{event_type}",
        "unknown",
    ),
    (
        "service-events-all",
        "AwsCloudwatchEventsPuller",
        "cloud.aws.cloudwatch.{event_type}.{account_id}.{region_id}.{format_version}",
        "events",
    ),
    (
        "sqs-cloudwatch-consumer",
        "AwsCloudwatchEventsPuller",
        "cloud.aws.securityhub.{event_type}.{account_id}.{region_id}.{format_version}",
        "findings",
    ),
];

/// Reads a service's keys and returns its puller (None when a problem was recorded).
type ConfigureService = fn(&ServiceContext<'_>, &Section<'_>) -> Option<PullerSpec>;

/// True when a service (its name, its section) is read by a module.
type IsService = fn(&str, &Section<'_>) -> bool;

/// The services that call an AWS API, each in its own module: (is the service this module's?, its configure).
/// A new way of pulling adds one row.
const API_SERVICES: &[(IsService, ConfigureService)] = &[
    (metrics::wanted, metrics::configure),
    (guardduty::wanted, guardduty::configure),
];

const CLOUDFRONT_TAG: &str =
    "cloud.aws.cloudfront.{event_type}.{account_id}.{region_id}.{format_version}";

/// Services of seed 002 that other parts of logferry (or nobody yet) provide: a clear error instead of silence.
const OTHER_AWS_SERVICES: [&str; 2] = ["custom_service", "cloudwatch-logs"];

impl InputKind for AwsInput {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn keys(&self) -> &'static [&'static KeySet] {
        &AWS_SETS
    }

    fn configure(&self, info: &InputInfo, section: &Section<'_>) -> Vec<PullerSpec> {
        let credentials = match section.get_section(&CREDENTIALS) {
            Some(c) => {
                let r = read_credentials(&c, &AWS_CREDENTIAL_KEYS);
                c.finish();
                r
            }
            None => CredentialsConfig {
                session_duration: std::time::Duration::from_secs(3600),
                ..Default::default()
            },
        };
        let endpoint = read_endpoint(section);
        let environment = section.get_text(&ENVIRONMENT);
        let Some(services) = section.get_section(&SERVICES) else {
            read_region(section, &AWS_REGION);
            return Vec::new();
        };
        let mut specs = Vec::new();
        let entries = services.entries();
        // The input's `region` is the services' default: needed unless every service names its `regions`.
        let every_service_regional =
            !entries.is_empty() && entries.iter().all(|(_, s)| s.has(&REGIONS));
        let region = if section.has(&AWS_REGION) || !every_service_regional {
            read_region(section, &AWS_REGION)
        } else {
            None
        };
        // Mandatory with a CloudWatch Logs service; range-checked (and known) without one too.
        let logs_rps = if entries.iter().any(|(_, s)| cloudwatch_logs::wanted(s)) {
            cloudwatch_logs::read_requests_per_second(section)
        } else {
            section.get_float_opt(&REQUESTS_PER_SECOND)
        };
        for (service, s) in entries {
            let regions = read_service_regions(&s, region.as_deref());
            let base = ServiceContext {
                info,
                service,
                region: None,
                endpoint: endpoint.as_deref(),
                credentials: &credentials,
                environment: environment.as_deref(),
            };
            if cloudwatch_logs::wanted(&s) {
                let enabled = s.get_bool(&ENABLED);
                let built = per_region(&s, &regions, |s, r| {
                    cloudwatch_logs::configure(&base.in_region(r), s, logs_rps)
                });
                specs.extend(built.into_iter().filter(|_| enabled));
                s.finish();
                continue;
            }
            if let Some((_, configure)) = API_SERVICES.iter().find(|(is, _)| is(service, &s)) {
                let enabled = s.get_bool(&ENABLED);
                let built = per_region(&s, &regions, |s, r| configure(&base.in_region(r), s));
                specs.extend(built.into_iter().filter(|_| enabled));
                s.finish();
                continue;
            }
            if service == "audit-events-all" {
                let (s3, api) = read_audit_types(&s);
                if api {
                    let enabled = s.get_bool(&ENABLED);
                    let built = per_region(&s, &regions, |s, r| {
                        cloudtrail_api::configure(&base.in_region(r), s)
                    });
                    specs.extend(built.into_iter().filter(|_| enabled));
                }
                if !s3 {
                    s.finish();
                    continue;
                }
            }
            let Some(&(_, puller_name, default_tag, default_et)) =
                AWS_SERVICES.iter().find(|x| x.0 == service)
            else {
                let why = if OTHER_AWS_SERVICES.contains(&service) {
                    "is not provided by the S3/SQS pullers"
                } else {
                    "is not a known service"
                };
                let known: Vec<_> = AWS_SERVICES.iter().map(|x| x.0).collect();
                services.error(
                    service,
                    ConfigErrorKind::UnknownType,
                    format!("service \"{service}\" {why}; known: {known:?}"),
                );
                continue;
            };
            let enabled = s.get_bool(&ENABLED);
            let mode = match service {
                "audit-events-all" => Mode::S3(ObjectFormat::CloudTrail),
                "non-cloudwatch-logs" => {
                    let types = s
                        .get_list(&TYPES)
                        .unwrap_or_else(|| vec!["flowlogs".into(), "cloudfrontlogs".into()]);
                    for t in &types {
                        if t != "flowlogs" && t != "cloudfrontlogs" {
                            s.error(
                                TYPES.name,
                                ConfigErrorKind::InvalidValue,
                                format!("\"{t}\" is not one of [\"flowlogs\", \"cloudfrontlogs\"]"),
                            );
                        }
                    }
                    if types.is_empty() {
                        s.error(
                            TYPES.name,
                            ConfigErrorKind::Missing,
                            "mandatory property is missing or empty",
                        );
                    }
                    Mode::S3(ObjectFormat::NonCloudwatchLogs {
                        flowlogs: types.iter().any(|t| t == "flowlogs"),
                        cloudfront: types.iter().any(|t| t == "cloudfrontlogs"),
                    })
                }
                "cisco-umbrella" => Mode::S3(ObjectFormat::Umbrella),
                "service-events-all" => Mode::Direct(DirectKind::EventBridge),
                _ => Mode::Direct(DirectKind::SecurityHub),
            };
            let queue = read_queue(&s, &info.id, service);
            let tag_src = s.get_text(&TAG);
            let tag = parse_tag(
                &s,
                tag_src.as_deref().unwrap_or(default_tag),
                environment.as_deref(),
                service,
            );
            let tag_alt = match (mode, &tag_src) {
                (Mode::S3(ObjectFormat::NonCloudwatchLogs { .. }), None) => {
                    parse_tag(&s, CLOUDFRONT_TAG, environment.as_deref(), service)
                }
                _ => None,
            };
            let auto_event_type = s.get_bool(&AUTO_EVENT_TYPE);
            let ack_messages = s.get_bool(&ACK_MESSAGES);
            let common = read_common(&s, &AWS_SQS_RANGES);
            let do_not_send = s.get_bool(&DO_NOT_SEND);
            let debug_md5 = s.get_bool(&DEBUG_MD5);
            let one_queue_many_regions =
                regions.len() > 1 && matches!(queue, Some(QueueRef::Url(_)));
            if one_queue_many_regions {
                s.error(
                    REGIONS.name,
                    ConfigErrorKind::Conflict,
                    "sqs_queue_url names one queue of one region: give sqs_queue_name to read the queue of that name in each region",
                );
            }
            s.finish();
            let (Some(first_region), Some(queue), Some(tag), false) =
                (regions.first(), queue, tag, one_queue_many_regions)
            else {
                continue;
            };
            let cfg = SqsServiceConfig {
                client: ClientConfig {
                    region: first_region.clone(),
                    endpoint: endpoint.clone(),
                    credentials: credentials.clone(),
                },
                queue,
                mode,
                tag,
                tag_alt,
                auto_event_type,
                event_type_default: default_et.to_owned(),
                environment: environment.clone(),
                key_regex: common.key_regex,
                event_type_file_patterns: common.event_type_file_patterns,
                workers: common.workers,
                max_messages: common.max_messages,
                wait_time: common.wait_time,
                visibility_timeout: common.visibility_timeout,
                max_receive_count: common.max_receive_count,
                ack_messages,
                compression: common.compression,
                bad_object_policy: common.bad_object_policy,
                records_check: common.records_check,
                object_progress: common.object_progress,
                event_id_field: common.event_id_field.clone(),
                do_not_send,
                debug_md5,
                request_period: common.request_period,
                max_cycle: common.max_cycle,
                puller_name,
                pulling_id_field: true,
            };
            if enabled {
                for region in &regions {
                    let mut cfg = cfg.clone();
                    cfg.client.region = region.clone();
                    specs.push(spec(info, service, region, cfg));
                }
            }
        }
        services.finish();
        specs
    }
}

/// `regions` of a service: one puller per region (default: the input's `region`). A list of AWS regions without
/// repetition; empty when invalid (recorded) or when no region is known.
fn read_service_regions(s: &Section<'_>, input_region: Option<&str>) -> Vec<String> {
    let items = match s.get_raw(&REGIONS) {
        None | Some(serde_json::Value::Null) => {
            return input_region.map(str::to_owned).into_iter().collect()
        }
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items,
        Some(_) => {
            s.error(
                REGIONS.name,
                ConfigErrorKind::WrongType,
                "property must be a non-empty list of AWS regions, e.g. [us-east-1, eu-west-1]",
            );
            return Vec::new();
        }
    };
    let mut regions: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(r) if regions.iter().any(|x| x == r) => {
                s.error(
                    REGIONS.name,
                    ConfigErrorKind::InvalidValue,
                    format!("region \"{r}\" is given twice"),
                );
                return Vec::new();
            }
            Some(r) if is_region(r) => regions.push(r.to_owned()),
            _ => {
                s.error(
                    REGIONS.name,
                    ConfigErrorKind::InvalidValue,
                    format!("{item} is not an AWS region (e.g. us-east-1)"),
                );
                return Vec::new();
            }
        }
    }
    regions
}

/// Configures an API service once per region: the section is read for the first region with its problems
/// recorded, then again quietly for the others (the same keys, the same problems). Without a valid region it is
/// read once, so that its other problems are still reported.
fn per_region(
    s: &Section<'_>,
    regions: &[String],
    configure: impl Fn(&Section<'_>, Option<&str>) -> Option<PullerSpec>,
) -> Vec<PullerSpec> {
    if regions.is_empty() {
        return configure(s, None).into_iter().collect();
    }
    regions
        .iter()
        .enumerate()
        .filter_map(|(i, region)| match i {
            0 => configure(s, Some(region)),
            _ => configure(&s.quiet_copy(), Some(region)),
        })
        .collect()
}

/// `types` of `audit-events-all`: `audits_s3` (S3+SQS, the default) and/or `audit_apis` (LookupEvents).
/// Returns (S3+SQS wanted, API wanted).
fn read_audit_types(s: &Section<'_>) -> (bool, bool) {
    let types = s
        .get_list(&TYPES)
        .unwrap_or_else(|| vec!["audits_s3".into()]);
    for t in &types {
        if t != "audits_s3" && t != "audit_apis" {
            s.error(
                TYPES.name,
                ConfigErrorKind::InvalidValue,
                format!("\"{t}\" is not one of [\"audits_s3\", \"audit_apis\"]"),
            );
        }
    }
    if types.is_empty() {
        s.error(
            TYPES.name,
            ConfigErrorKind::Missing,
            "mandatory property is missing or empty",
        );
    }
    let has = |t: &str| types.iter().any(|x| x == t);
    (has("audits_s3"), has("audit_apis"))
}

/// What a service of the `aws` input needs from its input: the input's identity and its shared keys (region,
/// endpoint, credentials, environment). Each way of pulling (`cloudtrail_api`, ...) builds its puller from it.
pub struct ServiceContext<'a> {
    pub info: &'a InputInfo,
    pub service: &'a str,
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub credentials: &'a CredentialsConfig,
    pub environment: Option<&'a str>,
}

impl ServiceContext<'_> {
    /// The same service in `region` (one of its `regions`).
    pub fn in_region<'b>(&'b self, region: Option<&'b str>) -> ServiceContext<'b> {
        ServiceContext {
            info: self.info,
            service: self.service,
            region,
            endpoint: self.endpoint,
            credentials: self.credentials,
            environment: self.environment,
        }
    }

    /// Where the service's clients connect; None when the input's region is missing or invalid (recorded).
    pub fn client(&self) -> Option<ClientConfig> {
        Some(ClientConfig {
            region: self.region?.to_owned(),
            endpoint: self.endpoint.map(str::to_owned),
            credentials: self.credentials.clone(),
        })
    }

    /// The service's tag template (`tag`, declared with the service's default), parsed; None when invalid
    /// (recorded).
    pub fn tag(&self, s: &Section<'_>, declared: &logferry::config::Key) -> Option<TagTemplate> {
        let src = s.get_text(declared)?;
        parse_tag(s, &src, self.environment, self.service)
    }

    /// The puller spec of the service, named as seed 002 names its threads (`<puller>(aws,<id>,<service>,
    /// predefined,<region>)`).
    pub fn spec(
        &self,
        puller: &str,
        request_period: std::time::Duration,
        defining: serde_json::Value,
        build: Box<dyn Fn() -> Box<dyn logferry_input::Puller> + Send + Sync>,
    ) -> PullerSpec {
        self.spec_in_module(puller, "predefined", request_period, defining, build)
    }

    /// [`Self::spec`] of a service in another module (`custom` for the custom services of seed 002).
    pub fn spec_in_module(
        &self,
        puller: &str,
        module: &str,
        request_period: std::time::Duration,
        defining: serde_json::Value,
        build: Box<dyn Fn() -> Box<dyn logferry_input::Puller> + Send + Sync>,
    ) -> PullerSpec {
        PullerSpec {
            identity: PullerIdentity {
                input: self.info.name.clone(),
                input_id: self.info.id.clone(),
                service: self.service.to_owned(),
                module: module.to_owned(),
                puller: puller.to_owned(),
                naming: ThreadNaming::Regional {
                    region: self.region.unwrap_or_default().to_owned(),
                },
            },
            request_period,
            defining,
            build,
        }
    }
}

fn spec(info: &InputInfo, service: &str, region: &str, cfg: SqsServiceConfig) -> PullerSpec {
    let identity = PullerIdentity {
        input: info.name.clone(),
        input_id: info.id.clone(),
        service: service.to_owned(),
        module: "predefined".into(),
        puller: cfg.puller_name.to_owned(),
        naming: ThreadNaming::Regional {
            region: region.to_owned(),
        },
    };
    let defining = json!({"queue": format!("{:?}", cfg.queue), "region": region});
    let request_period = cfg.request_period;
    let service = service.to_owned();
    PullerSpec {
        identity,
        request_period,
        defining,
        build: Box::new(move || Box::new(sqs::puller::SqsPuller::new(cfg.clone(), &service))),
    }
}

fn parse_tag(
    s: &Section<'_>,
    src: &str,
    environment: Option<&str>,
    service: &str,
) -> Option<TagTemplate> {
    match TagTemplate::parse(src, FORMAT_VERSION, environment, service) {
        Ok(t) => Some(t),
        Err(e) => {
            s.error(TAG.name, ConfigErrorKind::InvalidValue, e.to_string());
            None
        }
    }
}

/// `sqs_queue_url`, or `sqs_queue_name` (default `<service>-<input id>`; `{input_id}` is replaced).
fn read_queue(s: &Section<'_>, input_id: &str, service: &str) -> Option<QueueRef> {
    if let Some(url) = s.get_text(&SQS_QUEUE_URL) {
        if s.has(&SQS_QUEUE_NAME) {
            s.error(
                SQS_QUEUE_NAME.name,
                ConfigErrorKind::Conflict,
                "give either sqs_queue_url or sqs_queue_name",
            );
        }
        return check_url(s, SQS_QUEUE_URL.name, url);
    }
    let name = s
        .get_text(&SQS_QUEUE_NAME)
        .unwrap_or_else(|| format!("{service}-{{input_id}}"));
    let name = name.replace("{input_id}", input_id);
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .trim_end_matches(".fifo")
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        s.error(
            SQS_QUEUE_NAME.name,
            ConfigErrorKind::InvalidValue,
            format!(
                "\"{name}\" is not a valid SQS queue name (1..80 of A-Za-z0-9_- , optional .fifo)"
            ),
        );
        return None;
    }
    Some(QueueRef::Name(name))
}

fn check_url(s: &Section<'_>, key: &str, url: String) -> Option<QueueRef> {
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .is_none_or(str::is_empty)
    {
        s.error(key, ConfigErrorKind::InvalidValue, format!("\"{url}\" is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)"));
        return None;
    }
    Some(QueueRef::Url(url))
}

/// The generic SQS collector of seed 001 (`type: sqs_collector`).
pub struct SqsCollectorInput;

impl InputKind for SqsCollectorInput {
    fn name(&self) -> &'static str {
        "sqs_collector"
    }

    fn keys(&self) -> &'static [&'static KeySet] {
        &SQS_COLLECTOR_SETS
    }

    fn configure(&self, info: &InputInfo, section: &Section<'_>) -> Vec<PullerSpec> {
        let credentials = read_credentials(section, &SQS_COLLECTOR_CREDENTIAL_KEYS);
        let region = read_region(section, &REGION);
        let endpoint = read_endpoint(section);
        let queue = section
            .get_text(&BASE_URL)
            .and_then(|u| check_url(section, BASE_URL.name, u));
        let ack_messages: Option<bool> = section.get_opt(&SQS_COLLECTOR_ACK_MESSAGES);
        let direct_mode = section.get_bool(&DIRECT_MODE);
        let do_not_send = section.get_bool(&DO_NOT_SEND);
        let debug_md5 = section.get_bool(&DEBUG_MD5);
        let common = read_common(section, &SQS_COLLECTOR_SQS_RANGES);
        let Some(services) = section.get_section(&SQS_COLLECTOR_SERVICES) else {
            return Vec::new();
        };
        let mut specs = Vec::new();
        for (service, s) in services.entries() {
            let tag_src = s.get_text(&SQS_COLLECTOR_TAG).unwrap_or_default();
            let tag = parse_tag(&s, &tag_src, None, service);
            let format = match s.get_choice(&FORMAT).as_str() {
                "cloudtrail" => ObjectFormat::CloudTrail,
                "lines" => ObjectFormat::Lines,
                _ => ObjectFormat::Auto,
            };
            let key_regex = regex_opt(&s, &SERVICE_KEY_REGEX);
            let enabled = s.get_bool(&ENABLED);
            s.finish();
            let (Some(region), Some(queue), Some(tag), Some(ack)) =
                (region.clone(), queue.clone(), tag, ack_messages)
            else {
                continue;
            };
            let cfg = SqsServiceConfig {
                client: ClientConfig {
                    region: region.clone(),
                    endpoint: endpoint.clone(),
                    credentials: credentials.clone(),
                },
                queue,
                mode: if direct_mode {
                    Mode::Direct(DirectKind::Body)
                } else {
                    Mode::S3(format)
                },
                tag,
                tag_alt: None,
                auto_event_type: false,
                event_type_default: "events".into(),
                environment: None,
                key_regex: key_regex.or_else(|| common.key_regex.clone()),
                event_type_file_patterns: common.event_type_file_patterns.clone(),
                workers: common.workers,
                max_messages: common.max_messages,
                wait_time: common.wait_time,
                visibility_timeout: common.visibility_timeout,
                max_receive_count: common.max_receive_count,
                ack_messages: ack,
                compression: common.compression,
                bad_object_policy: common.bad_object_policy,
                records_check: common.records_check,
                object_progress: common.object_progress,
                event_id_field: common.event_id_field.clone(),
                do_not_send,
                debug_md5,
                request_period: common.request_period,
                max_cycle: common.max_cycle,
                puller_name: "AWSsqsPuller",
                pulling_id_field: false,
            };
            if enabled {
                let mut sp = spec(info, service, &region, cfg);
                sp.identity.naming = ThreadNaming::Plain;
                specs.push(sp);
            }
        }
        services.finish();
        specs
    }
}
