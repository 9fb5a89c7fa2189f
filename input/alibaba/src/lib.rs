//! The `alibaba` input: ActionTrail (LookupEvents API), Log Service (PullLogs with consumer groups) and SMQ (MNS).

pub mod actiontrail;
pub mod config;
pub mod flatten;
pub mod http;
pub mod input;
pub mod keys;
pub mod logservice;
pub mod pb;
pub mod sign;
pub mod sls;
pub mod smq;

/// The input kinds this crate provides, registered by the supervisor.
pub fn input_kinds() -> Vec<&'static dyn logferry_input::InputKind> {
    vec![&input::ALIBABA]
}

/// Setup error 100 of the seeds: the client (credentials, signer, endpoint) cannot be built; fatal.
pub fn cannot_build_authentication(reason: impl std::fmt::Display) -> logferry_input::PullerError {
    logferry_input::PullerError::setup(
        100,
        format!("Failed to build authentication. Reason {reason}"),
    )
    .fatal()
}

/// Setup error 101 of the seeds: the first request was refused; fatal unless a retry may succeed (throttling,
/// 5xx, transport).
pub fn authentication_test_failed(e: http::ApiError) -> logferry_input::PullerError {
    let err =
        logferry_input::PullerError::setup(101, format!("Authentication test failed. Reason {e}"));
    if e.is_retryable() {
        err
    } else {
        err.fatal()
    }
}

/// At most `max` bytes of `s` (on a char boundary), for error messages.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
