//! alibaba pullers (being written).

/// The input kinds this crate provides, registered by the supervisor.
pub fn input_kinds() -> Vec<&'static dyn logferry_input::InputKind> {
    Vec::new()
}
