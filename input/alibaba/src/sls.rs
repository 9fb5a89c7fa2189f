//! A Log Service (SLS) client: ListShards, GetCursor, PullLogs (lz4 + protobuf) and the consumer-group calls,
//! signed with `LOG <ak>:<signature>`.

use crate::config::Credentials;
use crate::http::{ApiError, Http, Reply, ServiceError};
use crate::pb::{self, LogGroup};
use crate::sign;
use serde_json::{json, Value};
use std::time::Duration;

const API: &str = "LogService";

/// A shard's checkpoint in a consumer group and the consumer that committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub shard: u32,
    /// The next cursor to read.
    pub cursor: String,
    pub consumer: String,
}

/// What PullLogs returned.
#[derive(Debug)]
pub struct Pulled {
    pub next_cursor: String,
    /// Log groups in the answer (`x-log-count`).
    pub count: u64,
    /// The decompressed body (a protobuf `LogGroupList`), decoded in place by [`Pulled::groups`].
    pub raw: Vec<u8>,
    /// What was asked, for the error of a body that does not decode.
    context: String,
}

impl Pulled {
    /// The log groups, borrowing the body; a body that does not decode is a bad answer of PullLogs.
    pub fn groups(&self) -> Result<Vec<LogGroup<'_>>, ApiError> {
        pb::decode_log_group_list(&self.raw).map_err(|e| ApiError::BadResponse {
            api: API,
            context: self.context.clone(),
            detail: e.to_string(),
        })
    }
}

/// A client for one logstore.
pub struct SlsClient {
    http: Http,
    endpoint: String,
    pub logstore: String,
    creds: Credentials,
}

impl SlsClient {
    pub fn new(
        endpoint: &str,
        logstore: &str,
        creds: Credentials,
        timeout: Duration,
    ) -> Result<Self, String> {
        if creds.access_key_id.is_empty() || creds.access_key_secret.expose().is_empty() {
            return Err("access_key_id and access_key_secret are required".into());
        }
        if endpoint.is_empty() {
            return Err("no usable endpoint (set region and project, or endpoint)".into());
        }
        Ok(SlsClient {
            http: Http::new(timeout),
            endpoint: endpoint.to_owned(),
            logstore: logstore.to_owned(),
            creds,
        })
    }

    /// Sends a signed request; `query` values are raw (signed raw, percent-encoded in the URL).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(&[u8], &str)>,
        accept_lz4: bool,
    ) -> Result<Reply, ApiError> {
        let date = sign::http_date(chrono::Utc::now().timestamp());
        let mut headers: Vec<(String, String)> = vec![
            ("x-log-apiversion".into(), "0.6.0".into()),
            ("x-log-signaturemethod".into(), "hmac-sha1".into()),
            (
                "x-log-bodyrawsize".into(),
                body.map(|(b, _)| b.len()).unwrap_or(0).to_string(),
            ),
        ];
        if let Some(t) = &self.creds.security_token {
            headers.push(("x-acs-security-token".into(), t.expose().to_owned()));
        }
        let (md5, ctype) = match body {
            Some((b, ct)) => (sign::md5_upper_hex(b), ct.to_owned()),
            None => (String::new(), String::new()),
        };
        let signed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let sts = sign::sls_string_to_sign(method, &md5, &ctype, &date, &signed, path, query);
        let signature = sign::sls_signature(self.creds.access_key_secret.expose(), &sts);
        headers.push(("Date".into(), date));
        headers.push((
            "Authorization".into(),
            format!("LOG {}:{signature}", self.creds.access_key_id),
        ));
        if body.is_some() {
            headers.push(("Content-MD5".into(), md5));
            headers.push(("Content-Type".into(), ctype));
        }
        if accept_lz4 {
            headers.push(("Accept".into(), "application/x-protobuf".into()));
            headers.push(("Accept-Encoding".into(), "lz4".into()));
        }
        let mut url = format!("{}{path}", self.endpoint);
        if !query.is_empty() {
            url.push('?');
            url.push_str(
                &query
                    .iter()
                    .map(|(k, v)| format!("{}={}", sign::pe(k), sign::pe(v)))
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
        let reply = self
            .http
            .call(API, method, &url, &headers, body.map(|(b, _)| b))?;
        if reply.status >= 300 {
            let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let code = v
                .get("errorCode")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let message = v
                .get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or_else(|| {
                    crate::truncate(std::str::from_utf8(&reply.body).unwrap_or(""), 300)
                })
                .to_owned();
            if code == "SignatureNotMatch" {
                log::error!(
                    "Log Service refused the signature: {message}; our StringToSign was {sts:?}"
                );
            }
            return Err(ApiError::Service(Box::new(ServiceError {
                api: API,
                status: reply.status,
                code,
                message,
                request_id: reply.header("x-log-requestid").unwrap_or("").to_owned(),
                context: format!("{method} {path}, logstore {}", self.logstore),
                retry_after: None,
            })));
        }
        Ok(reply)
    }

    fn json(&self, reply: &Reply, what: &str) -> Result<Value, ApiError> {
        serde_json::from_slice(&reply.body).map_err(|e| ApiError::BadResponse {
            api: API,
            context: format!("{what}, logstore {}", self.logstore),
            detail: format!("not JSON: {e}"),
        })
    }

    fn store_path(&self) -> String {
        format!("/logstores/{}", self.logstore)
    }

    /// Every shard id (readonly shards are still readable).
    pub fn list_shards(&self) -> Result<Vec<u32>, ApiError> {
        let reply = self.request(
            "GET",
            &format!("{}/shards", self.store_path()),
            &[],
            None,
            false,
        )?;
        let v = self.json(&reply, "ListShards")?;
        let mut shards: Vec<u32> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("shardID").and_then(Value::as_u64))
                    .map(|s| s as u32)
                    .collect()
            })
            .unwrap_or_default();
        shards.sort_unstable();
        Ok(shards)
    }

    /// GetCursor with `from` = `begin`, `end` or unix seconds.
    pub fn get_cursor(&self, shard: u32, from: &str) -> Result<String, ApiError> {
        let reply = self.request(
            "GET",
            &format!("{}/shards/{shard}", self.store_path()),
            &[("type", "cursor"), ("from", from)],
            None,
            false,
        )?;
        let v = self.json(&reply, "GetCursor")?;
        v.get("cursor")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::BadResponse {
                api: API,
                context: format!("GetCursor shard {shard}, logstore {}", self.logstore),
                detail: "no cursor in the answer".into(),
            })
    }

    /// PullLogs: decompresses and decodes the log groups.
    pub fn pull_logs(&self, shard: u32, cursor: &str, count: u32) -> Result<Pulled, ApiError> {
        let count_s = count.to_string();
        let reply = self.request(
            "GET",
            &format!("{}/shards/{shard}", self.store_path()),
            &[("type", "log"), ("cursor", cursor), ("count", &count_s)],
            None,
            true,
        )?;
        let context = || {
            format!(
                "PullLogs shard {shard} cursor {cursor}, logstore {}",
                self.logstore
            )
        };
        let bad = |detail: String| ApiError::BadResponse {
            api: API,
            context: context(),
            detail,
        };
        let next_cursor = reply
            .header("x-log-cursor")
            .ok_or_else(|| bad("no x-log-cursor header".into()))?
            .to_owned();
        let count = reply
            .header("x-log-count")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let raw_size: usize = reply
            .header("x-log-bodyrawsize")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(reply.body.len());
        let raw = match reply.header("x-log-compresstype").unwrap_or("") {
            "lz4" => pb::lz4_decompress(&reply.body, raw_size).map_err(|e| bad(e.to_string()))?,
            "" => reply.body,
            other => return Err(bad(format!("unsupported x-log-compresstype {other}"))),
        };
        Ok(Pulled {
            next_cursor,
            count,
            raw,
            context: context(),
        })
    }

    fn cg_path(&self, group: &str) -> String {
        format!("{}/consumergroups/{group}", self.store_path())
    }

    /// Creates the consumer group, or updates its timeout when it exists.
    pub fn ensure_consumer_group(&self, group: &str, timeout_secs: u64) -> Result<(), ApiError> {
        let body =
            json!({"consumerGroup": group, "timeout": timeout_secs, "order": false}).to_string();
        match self.request(
            "POST",
            &format!("{}/consumergroups", self.store_path()),
            &[],
            Some((body.as_bytes(), "application/json")),
            false,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == "ConsumerGroupAlreadyExist" => {
                let body = json!({"timeout": timeout_secs, "order": false}).to_string();
                self.request(
                    "PUT",
                    &self.cg_path(group),
                    &[],
                    Some((body.as_bytes(), "application/json")),
                    false,
                )
                .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Heartbeat with the shards held; returns the shards now assigned to this consumer.
    pub fn heartbeat(
        &self,
        group: &str,
        consumer: &str,
        held: &[u32],
    ) -> Result<Vec<u32>, ApiError> {
        let body = serde_json::to_string(held).unwrap_or_else(|_| "[]".into());
        let reply = self.request(
            "POST",
            &self.cg_path(group),
            &[("type", "heartbeat"), ("consumer", consumer)],
            Some((body.as_bytes(), "application/json")),
            false,
        )?;
        let v = self.json(&reply, "ConsumerGroupHeartBeat")?;
        let mut shards: Vec<u32> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_u64)
                    .map(|s| s as u32)
                    .collect()
            })
            .unwrap_or_default();
        shards.sort_unstable();
        Ok(shards)
    }

    /// Commits a shard's checkpoint (the next cursor to read). Without `force`, the server refuses it when the
    /// shard is no longer this consumer's.
    pub fn checkpoint(
        &self,
        group: &str,
        consumer: &str,
        shard: u32,
        cursor: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let body = json!({"shard": shard, "checkpoint": cursor}).to_string();
        self.request(
            "POST",
            &self.cg_path(group),
            &[
                ("type", "checkpoint"),
                ("consumer", consumer),
                ("forceSuccess", if force { "true" } else { "false" }),
            ],
            Some((body.as_bytes(), "application/json")),
            false,
        )
        .map(|_| ())
    }

    /// The stored checkpoint of a shard (None when empty).
    pub fn get_checkpoint(&self, group: &str, shard: u32) -> Result<Option<String>, ApiError> {
        Ok(self
            .checkpoints(group, Some(shard))?
            .into_iter()
            .find(|c| c.shard == shard)
            .map(|c| c.cursor))
    }

    /// Every stored (non-empty) checkpoint of the group, with the consumer that wrote it.
    pub fn list_checkpoints(&self, group: &str) -> Result<Vec<Checkpoint>, ApiError> {
        self.checkpoints(group, None)
    }

    fn checkpoints(&self, group: &str, shard: Option<u32>) -> Result<Vec<Checkpoint>, ApiError> {
        let s = shard.map(|s| s.to_string());
        let query: Vec<(&str, &str)> = s.iter().map(|s| ("shard", s.as_str())).collect();
        let reply = self.request("GET", &self.cg_path(group), &query, None, false)?;
        let v = self.json(&reply, "GetCheckPoint")?;
        let field = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(Checkpoint {
                    shard: u32::try_from(c.get("shard")?.as_u64()?).ok()?,
                    cursor: Some(field(c, "checkpoint")).filter(|x| !x.is_empty())?,
                    consumer: field(c, "consumer"),
                })
            })
            .collect())
    }
}
