//! The `alibaba` [`InputKind`]: reads `credentials` and `services`, one puller per enabled service.

use crate::actiontrail::ActionTrailPuller;
use crate::config::{read_actiontrail, read_credentials, read_log_service, ServiceKind};
use crate::keys::*;
use crate::logservice::LogServicePuller;
use logferry::config::{ConfigErrorKind, KeySet, Section};
use logferry_input::config::{InputInfo, InputKind, PullerIdentity, PullerSpec, ThreadNaming};
use serde_json::json;

/// The `alibaba` input.
pub struct AlibabaInput;

/// The registered instance.
pub static ALIBABA: AlibabaInput = AlibabaInput;

impl InputKind for AlibabaInput {
    fn name(&self) -> &'static str {
        "alibaba"
    }

    fn keys(&self) -> &'static [&'static KeySet] {
        &ALIBABA_SETS
    }

    fn configure(&self, info: &InputInfo, section: &Section<'_>) -> Vec<PullerSpec> {
        let creds = match section.get_section(&CREDENTIALS) {
            Some(c) => {
                let creds = read_credentials(&c);
                c.finish();
                Some(creds)
            }
            None => None,
        };
        let Some(services) = section.get_section(&SERVICES) else {
            return Vec::new();
        };
        let mut specs = Vec::new();
        for (service, s) in services.entries() {
            let type_name = s.get_text(&TYPE).unwrap_or_else(|| service.to_owned());
            let enabled = s.get_bool(&ENABLED);
            let Some(kind) = ServiceKind::from_name(&type_name) else {
                let known: Vec<_> = ServiceKind::ALL.iter().map(|k| k.name()).collect();
                s.error(
                    TYPE.name,
                    ConfigErrorKind::UnknownType,
                    format!("unknown alibaba service \"{type_name}\"; known: {known:?}"),
                );
                continue;
            };
            let identity = PullerIdentity {
                input: info.name.clone(),
                input_id: info.id.clone(),
                service: service.to_owned(),
                module: "predefined".into(),
                puller: kind.puller_name().into(),
                naming: ThreadNaming::Hashed {
                    setup: kind.setup_name().into(),
                },
            };
            let creds = creds.clone().unwrap_or_else(|| crate::config::Credentials {
                access_key_id: String::new(),
                access_key_secret: Default::default(),
                security_token: None,
            });
            let spec = match kind {
                ServiceKind::ActionTrail => {
                    let cfg = read_actiontrail(&s);
                    let defining = json!({
                        "initial_start_time_in_utc": cfg.initial_start_time_in_utc.map(crate::actiontrail::api_time),
                        "region": cfg.region,
                        "lookup_attributes": cfg.lookup_attributes.iter().map(|a| format!("{}={}", a.key, a.value)).collect::<Vec<_>>(),
                    });
                    let request_period = cfg.request_period;
                    PullerSpec {
                        identity,
                        request_period,
                        defining,
                        build: Box::new(move || {
                            Box::new(ActionTrailPuller::new(cfg.clone(), creds.clone()))
                        }),
                    }
                }
                ServiceKind::Smq => {
                    let cfg = crate::smq::read_smq(&s);
                    let request_period = cfg.request_period;
                    let defining = json!({"endpoint": cfg.endpoint, "queue": cfg.queue});
                    PullerSpec {
                        identity,
                        request_period,
                        defining,
                        build: Box::new(move || {
                            Box::new(crate::smq::SmqPuller::new(cfg.clone(), creds.clone()))
                        }),
                    }
                }
                _ => {
                    let cfg = read_log_service(kind, &s, &info.id);
                    let defining = json!({
                        "initial_start_time_in_utc": cfg.initial_start_time_in_utc.map(crate::actiontrail::api_time),
                        "project": cfg.project,
                        "logstore": cfg.logstore,
                        "consumer_group": if cfg.use_consumer_group { Some(cfg.consumer_group.clone()) } else { None },
                    });
                    let request_period = cfg.request_period;
                    PullerSpec {
                        identity,
                        request_period,
                        defining,
                        build: Box::new(move || {
                            Box::new(LogServicePuller::new(cfg.clone(), creds.clone()))
                        }),
                    }
                }
            };
            s.finish();
            if enabled {
                specs.push(spec);
            }
        }
        services.finish();
        specs
    }
}
