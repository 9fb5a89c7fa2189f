//! The OutputProcess: one consumer per event class reading the queue, per output a sender manager with a pool
//! of `concurrent_connections` senders, a statistics monitor; one module per sender kind in [`senders`].

pub mod config;
pub mod consumer;
pub mod failures;
pub mod manager;
pub mod process;
pub mod sender;
pub mod senders;
pub mod watched;

pub use config::{configure_outputs, OutputKind, OutputSpec};
pub use sender::{Batch, QueueUsage, SendError, Sender, SenderInfo};
