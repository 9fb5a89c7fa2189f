//! The InputProcess: the puller runtime (setup, pre-pull, pull cycles, statistics, state) and the pullers that
//! need no cloud SDK (`demo`). Provider crates (`input/aws`, `input/alibaba`) implement [`InputKind`] and
//! [`Puller`] and are registered by the supervisor.

pub mod config;
pub mod context;
pub mod demo;
pub mod error;
pub mod event_id;
pub mod process;
pub mod progress;
pub mod pulling_id;
pub mod runtime;
pub mod sink;

pub use config::{configure_inputs, InputKind, PullerIdentity, PullerSpec, ThreadNaming};
pub use context::{CycleStats, ItemLedger, ItemRead, NoEvent, PullContext};
pub use error::{PullerError, PullerErrorType};
pub use event_id::EventIdField;
pub use progress::{ProgressStore, SavedProgress};
pub use pulling_id::{object_body, PullingIdField};
pub use sink::{EventSink, SinkFactory};

/// One puller: a state machine driven by the runtime's thread.
///
/// The runtime calls `setup` until it succeeds (retrying with backoff), `pre_pull` once, then `pull` every
/// `request_period`. Events go out through [`PullContext::emit`]; state is committed with
/// [`PullContext::commit_state`], which first makes sure every emitted event is in Redis.
pub trait Puller: Send {
    /// Builds and checks the authentication (SetupError 100/101 in the seeds).
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError>;
    /// Runs once before the first pull (e.g. restore a cursor from `ctx.state()`).
    fn pre_pull(&mut self, _ctx: &mut PullContext) -> Result<(), PullerError> {
        Ok(())
    }
    /// The longest a pull cycle should run before it returns (it checks [`PullContext::cycle_over`] between units
    /// of work), so statistics appear and `@devo_pulling_id` moves on even when data keeps coming.
    fn max_cycle(&self) -> std::time::Duration {
        runtime::DEFAULT_MAX_CYCLE
    }
    /// One pull cycle.
    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError>;
    /// Whether the puller keeps its progress in the local persistence (default). A puller whose progress lives
    /// elsewhere (a Log Service consumer group's checkpoints) returns false: the runtime then does not report
    /// "No persistence found" at every start.
    fn keeps_local_state(&self) -> bool {
        true
    }
    /// Controlled stop, after the last cycle (e.g. release leases).
    fn stop(&mut self, _ctx: &mut PullContext) {}
}
