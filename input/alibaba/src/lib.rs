//! The `alibaba` input: ActionTrail (LookupEvents API), Log Service (PullLogs with consumer groups) and SMQ (MNS).

pub mod actiontrail;
pub mod config;
pub mod http;
pub mod input;
pub mod logservice;
pub mod pb;
pub mod sign;
pub mod sls;
pub mod smq;

/// The input kinds this crate provides, registered by the supervisor.
pub fn input_kinds() -> Vec<&'static dyn logferry_input::InputKind> {
    vec![&input::ALIBABA]
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
