//! One module per sender kind.

use crate::config::{OutputKind, OutputSpec};
use crate::sender::{Sender, SenderInfo};

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

/// The spec of output `name` of type `kind` whose senders (logged as `label`) are built by `build`, one per pool
/// slot; the runtime sets `concurrent_connections` afterwards.
pub(crate) fn spec<S: Sender + 'static>(
    name: &str,
    kind: &str,
    label: &'static str,
    build: impl Fn(&SenderInfo) -> S + Send + Sync + 'static,
) -> OutputSpec {
    OutputSpec {
        name: name.to_owned(),
        kind: kind.to_owned(),
        sender_label: label,
        concurrent_connections: 1,
        build: Box::new(move |info: &SenderInfo| Box::new(build(info)) as Box<dyn Sender>),
    }
}
