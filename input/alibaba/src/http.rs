//! The HTTP layer shared by the Alibaba clients (ureq 3, statuses returned as values) and the typed API error.

use std::time::Duration;

/// An error answer of an Alibaba service.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{api}: HTTP {status} {code}: {message} (RequestId {request_id}, {context})")]
pub struct ServiceError {
    pub api: &'static str,
    pub status: u16,
    /// The service's error code (`Throttling`, `InvalidCursor`...).
    pub code: String,
    pub message: String,
    pub request_id: String,
    /// What was being done (region, endpoint, logstore, shard...).
    pub context: String,
    /// `x-acs-retry-after`, when the server asked for a wait.
    pub retry_after: Option<Duration>,
}

/// A failed call to an Alibaba API, with its context.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer (DNS, connect, TLS, timeout).
    #[error("{api}: transport error calling {url}: {detail}")]
    Transport {
        api: &'static str,
        url: String,
        detail: String,
    },
    /// The service answered with an error code.
    #[error("{0}")]
    Service(Box<ServiceError>),
    /// The answer could not be understood.
    #[error("{api}: bad response ({context}): {detail}")]
    BadResponse {
        api: &'static str,
        context: String,
        detail: String,
    },
}

impl ApiError {
    /// The service's error code (empty for other errors).
    pub fn code(&self) -> &str {
        match self {
            ApiError::Service(e) => &e.code,
            _ => "",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Service(e) => e.status,
            _ => 0,
        }
    }

    /// Whether a retry with backoff may succeed (throttling, busy, 5xx, transport). A refused TLS handshake or
    /// certificate may not: it fails the cycle (or the setup) at once, reported at ERROR by the runtime.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport { detail, .. } => !logferry_input::error::is_tls_refusal(detail),
            ApiError::Service(e) => {
                let (status, code) = (&e.status, &e.code);
                matches!(*status, 500 | 502 | 503 | 504)
                    || matches!(
                        code.as_str(),
                        "Throttling"
                            | "Throttling.User"
                            | "Throttling.Api"
                            | "ServiceUnavailable"
                            | "ServerBusy"
                            | "InternalError"
                            | "InternalServerError"
                            | "ReadQuotaExceed"
                            | "ShardReadQuotaExceed"
                            | "RequestTimeout"
                    )
            }
            ApiError::BadResponse { .. } => false,
        }
    }

    /// A server-requested wait (`x-acs-retry-after`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Service(e) => e.retry_after,
            _ => None,
        }
    }
}

/// A response read completely.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Largest response body accepted (PullLogs answers are at most a few MB).
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// A blocking HTTP agent that returns error statuses as values.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent("logferry")
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Sends one request; `headers` are set as given (names as given).
    pub fn call(
        &self,
        api: &'static str,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply, ApiError> {
        let transport = |e: ureq::Error| ApiError::Transport {
            api,
            url: url.to_owned(),
            detail: e.to_string(),
        };
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let result = match body {
            Some(b) => builder.body(b.to_vec()).map(|r| self.agent.run(r)),
            None => builder.body(()).map(|r| self.agent.run(r)),
        };
        let mut resp = result
            .map_err(|e| ApiError::BadResponse {
                api,
                context: url.to_owned(),
                detail: format!("cannot build the request: {e}"),
            })?
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(transport)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Splits `scheme://authority` of an endpoint and returns the authority (the `host` header value).
pub fn authority(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_keeps_port() {
        assert_eq!(authority("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(
            authority("https://actiontrail.cn-hangzhou.aliyuncs.com/"),
            "actiontrail.cn-hangzhou.aliyuncs.com"
        );
    }

    #[test]
    fn retryable_codes() {
        let e = |status, code: &str| {
            ApiError::Service(Box::new(ServiceError {
                api: "x",
                status,
                code: code.into(),
                message: String::new(),
                request_id: String::new(),
                context: String::new(),
                retry_after: None,
            }))
        };
        assert!(e(400, "Throttling").is_retryable());
        assert!(e(503, "Whatever").is_retryable());
        assert!(!e(400, "InvalidNextToken").is_retryable());
        assert!(!e(403, "NoPermission").is_retryable());
    }
}
