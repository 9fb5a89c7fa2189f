//! The `alibaba` input: ActionTrail (LookupEvents API), Log Service (PullLogs with consumer groups) and SMQ (MNS).

pub mod sign;

/// The input kinds this crate provides, registered by the supervisor.
pub fn input_kinds() -> Vec<&'static dyn logferry_input::InputKind> {
    Vec::new()
}
