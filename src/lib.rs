//! logferry kernel: everything that crosses a process boundary.
//!
//! The event and batch model ([`event`]), the Redis queue ([`queue`]), the configuration file with its
//! `globals` and the validation vocabulary ([`config`]), the per-puller persistence ([`state`]), the log line
//! format ([`logging`]) and the memory report ([`memory`]). It knows no puller and no sender.

pub mod config;
pub mod deadletter;
pub mod event;
pub mod figures;
pub mod json_text;
pub mod logging;
pub mod lookup;
pub mod memory;
pub mod panic_hook;
pub mod process;
pub mod proctitle;
pub mod queue;
pub mod queue_ledger;
pub mod redact;
pub mod redis_conn;
pub mod resp;
pub mod state;
pub mod time;
pub mod watchdog;

pub use event::{Event, EventClass};
