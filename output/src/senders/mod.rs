//! One module per sender kind.

use crate::config::OutputKind;

/// Every output kind, registered by the supervisor.
pub fn output_kinds() -> Vec<&'static dyn OutputKind> {
    vec![]
}
