//! What the AWS pullers make of an SDK error: one readable cause (the AWS code and message once) and whether it
//! may heal ([`Healing`]), shared by the S3/SQS services, the API pullers and the session setup.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// One readable cause of an SDK error: the AWS error code and message once when the service answered, else the
/// cause chain without repeats (the SDK's Display alone says only "service error"; its error metadata prints as a
/// debug struct, left out).
pub fn err_text<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => cause_chain(e),
    }
}

/// The error's text and its causes', each said once (a cause whose text its parent already contains is skipped).
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) && !more.starts_with("Error {") {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// How an S3 or SQS error may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healing {
    /// A network failure, throttling, a 5xx: it may pass, retry.
    Transient,
    /// Our own credentials or TLS were refused: retry (the operator may fix it), logged at ERROR.
    Refused,
    /// A 4xx about the request itself (no such bucket, access denied to it...): no retry can fix it.
    Permanent,
}

/// AWS error codes of a 4xx that may pass (throttling, clock skew, expired session).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "TooManyRequestsException",
    "ExpiredToken",
    "TokenRefreshRequired",
];

/// AWS error codes that refuse the collector's own credentials.
const REFUSED_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
];

/// Classifies an SDK error (see [`Healing`]).
pub fn healing<E>(e: &SdkError<E, HttpResponse>) -> Healing
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::DispatchFailure(_) if logferry_input::error::is_tls_refusal(&cause_chain(e)) => {
            Healing::Refused
        }
        SdkError::ServiceError(s) => {
            let code = e.code().unwrap_or("");
            let status = s.raw().status().as_u16();
            if REFUSED_CODES.contains(&code) {
                Healing::Refused
            } else if TRANSIENT_CODES.contains(&code) || status == 408 || status == 429 {
                Healing::Transient
            } else if (400..500).contains(&status) {
                Healing::Permanent
            } else {
                Healing::Transient
            }
        }
        _ => Healing::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GetObject error answered by S3 with `status`, `code` and `message`.
    fn s3_error(
        status: u16,
        code: &str,
        message: &str,
    ) -> SdkError<aws_sdk_s3::operation::get_object::GetObjectError, HttpResponse> {
        let meta = aws_sdk_s3::error::ErrorMetadata::builder()
            .code(code)
            .message(message)
            .build();
        let raw = HttpResponse::new(
            status.try_into().unwrap(),
            aws_sdk_s3::primitives::SdkBody::empty(),
        );
        SdkError::service_error(
            aws_sdk_s3::operation::get_object::GetObjectError::generic(meta),
            raw,
        )
    }

    #[test]
    fn s3_errors_heal_or_not() {
        let cases = [
            (404, "NoSuchBucket", Healing::Permanent),
            (404, "NoSuchKey", Healing::Permanent),
            (403, "AccessDenied", Healing::Permanent),
            (403, "InvalidAccessKeyId", Healing::Refused),
            (403, "SignatureDoesNotMatch", Healing::Refused),
            (400, "ExpiredToken", Healing::Transient),
            (400, "RequestTimeout", Healing::Transient),
            (429, "TooManyRequests", Healing::Transient),
            (503, "SlowDown", Healing::Transient),
            (500, "InternalError", Healing::Transient),
        ];
        for (status, code, expected) in cases {
            assert_eq!(
                healing(&s3_error(status, code, "m")),
                expected,
                "{status} {code}"
            );
        }
    }

    #[test]
    fn an_aws_error_says_its_code_and_message_once() {
        let e = s3_error(404, "NoSuchKey", "The specified key does not exist.");
        assert_eq!(err_text(&e), "NoSuchKey: The specified key does not exist.");
    }
}
