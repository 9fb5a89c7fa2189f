//! The `smq` service: Simple Message Queue (MNS) BatchReceiveMessage with long polling.
//!
//! Each received batch is emitted, flushed to Redis, and only then deleted (DeleteMessage with the receipt handle).
//! A message whose body cannot be decoded is set aside (dead letters, origin `smq://<queue>/<MessageId>`) and then
//! deleted, so it does not come back forever. With `visibility_timeout_in_seconds`, the visibility of each message
//! is changed right after receiving it, and the NEW receipt handle the service returns is the one used to delete.
//! A crash before the delete lets the messages become visible again: at-least-once.

use crate::config::Credentials;
use crate::http::{authority, ApiError, Http, Reply, ServiceError};
use crate::keys::*;
use crate::sign;
use base64::Engine;
use logferry::config::{ConfigErrorKind, Section};
use logferry_input::runtime::cycle_level;
use logferry_input::{PullContext, Puller, PullerError};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

const API: &str = "MNS";

/// The `smq` service; defaults and ranges are declared in [`crate::keys::SMQ_KEYS`].
#[derive(Debug, Clone, PartialEq)]
pub struct SmqConfig {
    /// `account_id`: the Alibaba Cloud account id (part of the host). Mandatory unless `endpoint` is set.
    pub account_id: String,
    /// `region`: region id. Mandatory unless `endpoint` is set.
    pub region: String,
    /// `endpoint`: scheme://host[:port] override. Default `https://<account_id>.mns.<region>.aliyuncs.com`.
    pub endpoint: String,
    /// `queue`: the queue name. Mandatory.
    pub queue: String,
    /// `batch_size`: messages per BatchReceiveMessage (`numOfMessages`).
    pub batch_size: u32,
    /// `wait_seconds`: long-polling wait (`waitseconds`).
    pub wait_seconds: u32,
    /// `base64_decode_body`: the bodies are base64 (the SDKs' default). Default true; false = bodies as sent.
    pub base64_decode_body: bool,
    /// `visibility_timeout_in_seconds`: when set, each received message's visibility is changed to this
    /// (ChangeMessageVisibility) and its new receipt handle used.
    pub visibility_timeout: Option<u32>,
    /// `request_period_in_seconds`: pause after the queue was found empty.
    pub request_period: Duration,
    /// `max_cycle_seconds`: no new receive starts after a cycle ran this long, so statistics and `@devo_pulling_id`
    /// move on while messages keep coming.
    pub max_cycle: Duration,
    /// `tag`: tag of the events. Default `my.app.alibaba.smq`.
    pub tag: String,
    /// `timeout_in_seconds`: HTTP timeout, added to `wait_seconds`.
    pub timeout: Duration,
}

pub(crate) fn read_smq(s: &Section<'_>) -> SmqConfig {
    let endpoint = s.get_opt::<String>(&SMQ_ENDPOINT);
    let account_id = if endpoint.is_some() {
        s.get_text(&ACCOUNT_ID)
    } else {
        s.get_required(&ACCOUNT_ID)
    };
    let region = crate::config::region_unless_endpoint(s, &endpoint);
    let (account_id, region) = (account_id.unwrap_or_default(), region.unwrap_or_default());
    let endpoint = crate::config::endpoint_url(s, endpoint, || {
        format!("https://{account_id}.mns.{region}.aliyuncs.com")
    });
    let queue = s.get_text(&QUEUE).unwrap_or_default();
    if !queue.is_empty() && !queue.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        s.error(
            QUEUE.name,
            ConfigErrorKind::InvalidValue,
            format!("\"{queue}\" may only hold letters, digits and -"),
        );
    }
    let visibility = s.get_int_opt::<u32>(&VISIBILITY_TIMEOUT_IN_SECONDS);
    SmqConfig {
        account_id,
        region,
        endpoint,
        queue,
        batch_size: s.get_int(&BATCH_SIZE),
        wait_seconds: s.get_int(&WAIT_SECONDS),
        base64_decode_body: s.get_bool(&BASE64_DECODE_BODY),
        visibility_timeout: visibility,
        request_period: Duration::from_secs(s.get_int(&SMQ_REQUEST_PERIOD)),
        max_cycle: logferry_input::runtime::read_max_cycle(s),
        tag: s
            .get_text(&TAG)
            .unwrap_or_else(|| crate::config::ServiceKind::Smq.default_tag().to_owned()),
        timeout: Duration::from_secs(s.get_int(&SMQ_TIMEOUT_IN_SECONDS)),
    }
}

/// One received message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub fields: Vec<(String, String)>,
}

impl Message {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#13;", "\r")
        .replace("&#10;", "\n")
        .replace("&amp;", "&")
}

/// The text of every `<tag>...</tag>` child of `xml` (flat elements only).
fn children(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(end) = rest.find('>') else { break };
        let name = rest[..end]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        rest = &rest[end + 1..];
        if name.starts_with('/') || name.starts_with('?') || name.ends_with('/') {
            continue;
        }
        let close = format!("</{name}>");
        if let Some(c) = rest.find(&close) {
            out.push((name, unescape(&rest[..c])));
            rest = &rest[c + close.len()..];
        }
    }
    out
}

/// Parses a BatchReceiveMessage answer.
pub fn parse_messages(xml: &str) -> Vec<Message> {
    xml.split("<Message>")
        .skip(1)
        .map(|block| Message {
            fields: children(block.split("</Message>").next().unwrap_or("")),
        })
        .collect()
}

/// An MNS client for one queue.
pub struct SmqClient {
    http: Http,
    cfg: SmqConfig,
    creds: Credentials,
}

impl SmqClient {
    pub fn new(cfg: SmqConfig, creds: Credentials) -> Result<Self, String> {
        if creds.access_key_id.is_empty() || creds.access_key_secret.expose().is_empty() {
            return Err("access_key_id and access_key_secret are required".into());
        }
        if cfg.endpoint.is_empty() || authority(&cfg.endpoint).is_empty() {
            return Err("no usable endpoint (set account_id and region, or endpoint)".into());
        }
        let http = Http::new(cfg.timeout + Duration::from_secs(u64::from(cfg.wait_seconds)));
        Ok(SmqClient { http, cfg, creds })
    }

    /// A signed request; `resource` is the path and query exactly as sent.
    fn request(&self, method: &str, resource: &str) -> Result<Reply, ApiError> {
        let date = sign::http_date(chrono::Utc::now().timestamp());
        let mut headers: Vec<(String, String)> =
            vec![("x-mns-version".into(), "2015-06-06".into())];
        if let Some(t) = &self.creds.security_token {
            headers.push(("security-token".into(), t.expose().to_owned()));
        }
        let signed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let sts = sign::mns_string_to_sign(method, "", "", &date, &signed, resource);
        let sig = sign::mns_signature(self.creds.access_key_secret.expose(), &sts);
        headers.push(("Date".into(), date));
        headers.push((
            "Authorization".into(),
            format!("MNS {}:{sig}", self.creds.access_key_id),
        ));
        let reply = self.http.call(
            API,
            method,
            &format!("{}{resource}", self.cfg.endpoint),
            &headers,
            None,
        )?;
        if reply.status >= 300 {
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            let f = children(
                text.split("<Error")
                    .nth(1)
                    .map(|e| e.split_once('>').map(|(_, r)| r).unwrap_or(e))
                    .unwrap_or(""),
            );
            let get = |n: &str| {
                f.iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            if get("Code") == "SignatureDoesNotMatch" {
                log::error!(
                    "MNS refused the signature: {}; our StringToSign was {sts:?}",
                    get("Message")
                );
            }
            return Err(ApiError::Service(Box::new(ServiceError {
                api: API,
                status: reply.status,
                code: get("Code"),
                message: get("Message"),
                request_id: get("RequestId"),
                context: format!("{method} {resource}, queue {}", self.cfg.queue),
                retry_after: None,
            })));
        }
        Ok(reply)
    }

    /// BatchReceiveMessage with long polling; an empty queue gives an empty list.
    pub fn receive(&self) -> Result<Vec<Message>, ApiError> {
        let resource = format!(
            "/queues/{}/messages?numOfMessages={}&waitseconds={}",
            self.cfg.queue, self.cfg.batch_size, self.cfg.wait_seconds
        );
        match self.request("GET", &resource) {
            Ok(r) => Ok(parse_messages(&String::from_utf8_lossy(&r.body))),
            Err(e) if e.code() == "MessageNotExist" => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// DeleteMessage.
    pub fn delete(&self, receipt_handle: &str) -> Result<(), ApiError> {
        self.request(
            "DELETE",
            &format!(
                "/queues/{}/messages?ReceiptHandle={receipt_handle}",
                self.cfg.queue
            ),
        )
        .map(|_| ())
    }

    /// ChangeMessageVisibility: returns the NEW receipt handle.
    pub fn change_visibility(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<String, ApiError> {
        let r = self.request(
            "PUT",
            &format!(
                "/queues/{}/messages?ReceiptHandle={receipt_handle}&VisibilityTimeout={seconds}",
                self.cfg.queue
            ),
        )?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        children(&text)
            .into_iter()
            .flat_map(|(k, v)| {
                if k == "ChangeVisibility" {
                    children(&v)
                } else {
                    vec![(k, v)]
                }
            })
            .find(|(k, _)| k == "ReceiptHandle")
            .map(|(_, v)| v)
            .ok_or_else(|| ApiError::BadResponse {
                api: API,
                context: format!("ChangeMessageVisibility, queue {}", self.cfg.queue),
                detail: "no ReceiptHandle".into(),
            })
    }
}

pub struct SmqPuller {
    cfg: SmqConfig,
    creds: Credentials,
    client: Option<SmqClient>,
}

impl SmqPuller {
    pub fn new(cfg: SmqConfig, creds: Credentials) -> Self {
        SmqPuller {
            cfg,
            creds,
            client: None,
        }
    }

    fn client(&self) -> &SmqClient {
        self.client.as_ref().expect("setup ran")
    }

    /// The event of one message, or the reason it cannot be decoded.
    fn event(&self, m: &Message) -> Result<Map<String, Value>, String> {
        let raw = m.get("MessageBody").unwrap_or("");
        let body = if self.cfg.base64_decode_body {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|e| format!("MessageBody is not base64 ({e})"))?;
            String::from_utf8(bytes)
                .map_err(|_| "MessageBody is not UTF-8 text once decoded".to_owned())?
        } else {
            raw.to_owned()
        };
        let mut out = Map::new();
        for (k, v) in &m.fields {
            if k == "ReceiptHandle" || k == "MessageBody" {
                continue;
            }
            let value = if matches!(
                k.as_str(),
                "EnqueueTime"
                    | "NextVisibleTime"
                    | "FirstDequeueTime"
                    | "DequeueCount"
                    | "Priority"
            ) {
                v.parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(v.as_str()))
            } else {
                Value::from(v.as_str())
            };
            out.insert(k.clone(), value);
        }
        out.insert("MessageBody".into(), Value::from(body));
        Ok(out)
    }
}

fn pull_error(e: &ApiError) -> PullerError {
    let err = PullerError::pull(302, format!("Error during pull: {e}"));
    if matches!(
        e.code(),
        "QueueNotExist" | "AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId"
    ) {
        err.fatal()
    } else {
        err
    }
}

impl Puller for SmqPuller {
    /// Messages are deleted from the queue once in Redis: there is no local progress to find or miss.
    fn keeps_local_state(&self) -> bool {
        false
    }

    fn setup(&mut self, _ctx: &mut PullContext) -> Result<(), PullerError> {
        let client = SmqClient::new(self.cfg.clone(), self.creds.clone())
            .map_err(crate::cannot_build_authentication)?;
        // GetQueueAttributes proves the credentials and the queue without touching messages.
        client
            .request("GET", &format!("/queues/{}", self.cfg.queue))
            .map_err(crate::authentication_test_failed)?;
        self.client = Some(client);
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        while !ctx.stopping() && !ctx.cycle_over() {
            ctx.stats.requests += 1;
            let polled = Instant::now();
            let mut batch = self.client().receive().map_err(|e| pull_error(&e))?;
            if batch.is_empty() {
                // The long poll that found nothing is waiting, not work: it stays out of the event rate.
                ctx.add_idle(polled.elapsed());
                break;
            }
            ctx.stats.received += batch.len() as u64;
            if let Some(v) = self.cfg.visibility_timeout {
                for m in &mut batch {
                    let Some(h) = m.get("ReceiptHandle").map(str::to_owned) else {
                        continue;
                    };
                    ctx.stats.requests += 1;
                    let new = self
                        .client()
                        .change_visibility(&h, v)
                        .map_err(|e| pull_error(&e))?;
                    m.fields.retain(|(k, _)| k != "ReceiptHandle");
                    m.fields.push(("ReceiptHandle".into(), new));
                }
            }
            for m in &batch {
                match self.event(m) {
                    Ok(ev) => {
                        let time_ms = ev
                            .get("EnqueueTime")
                            .and_then(Value::as_i64)
                            .unwrap_or_else(logferry::time::now_ms);
                        ctx.emit_json(&self.cfg.tag, time_ms, ev)?;
                    }
                    Err(reason) => {
                        let origin = format!(
                            "smq://{}/{}",
                            self.cfg.queue,
                            m.get("MessageId").unwrap_or("?")
                        );
                        ctx.set_aside(
                            &origin,
                            &reason,
                            m.get("MessageBody").unwrap_or("").as_bytes(),
                        )?;
                    }
                }
            }
            ctx.flush()?;
            for m in &batch {
                if let Some(h) = m.get("ReceiptHandle") {
                    ctx.stats.requests += 1;
                    if let Err(e) = self.client().delete(h) {
                        // The message comes back after its visibility timeout: a duplicate, never a loss.
                        log::warn!(
                            "Message {} was sent but not deleted ({e}); it will be received again",
                            m.get("MessageId").unwrap_or("?")
                        );
                    }
                }
            }
            ctx.log_partial_stats();
        }
        log::log!(
            cycle_level(ctx.stats.received > 0),
            "The data is up to date!"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_batch_receive_xml() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Messages xmlns="http://mns.aliyuncs.com/doc/v1/"><Message><MessageId>5F29</MessageId><ReceiptHandle>1-ODU4OTkzNDU5My0xNDMyNzI3ODI3LTItOA==</ReceiptHandle><MessageBody>PGE+Jmx0Ow==</MessageBody><MessageBodyMD5>C5DD</MessageBodyMD5><EnqueueTime>1250700979248</EnqueueTime><DequeueCount>1</DequeueCount></Message><Message><MessageId>6A</MessageId><MessageBody>a &amp; b &lt;c&gt;</MessageBody></Message></Messages>"#;
        let m = parse_messages(xml);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].get("ReceiptHandle"),
            Some("1-ODU4OTkzNDU5My0xNDMyNzI3ODI3LTItOA==")
        );
        assert_eq!(m[0].get("EnqueueTime"), Some("1250700979248"));
        assert_eq!(m[1].get("MessageBody"), Some("a & b <c>"));
    }
}
