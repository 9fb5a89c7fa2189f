//! One module per sender kind.

use crate::config::OutputKind;

pub mod conn;
pub mod console;
pub mod devo;
pub mod format;
pub mod gzip;
pub mod rejects;
pub mod retry;
pub mod splunk_hec;
pub mod syslog;
pub mod tls;

/// Every output kind, registered by the supervisor.
pub fn output_kinds() -> Vec<&'static dyn OutputKind> {
    vec![
        &console::ConsoleKind,
        &syslog::SyslogKind,
        &devo::DevoKind,
        &splunk_hec::SplunkHecKind,
    ]
}
