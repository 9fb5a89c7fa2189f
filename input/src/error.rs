//! Puller errors, with the error types and ids of the seeds' error tables.

use std::fmt;

/// The seeds' error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullerErrorType {
    /// Bad values found when the puller initialises (ids 1-99).
    InitVariablesError,
    /// Authentication could not be built or tested (ids 100-199).
    SetupError,
    /// A pull cycle failed (ids 300-399).
    PullError,
    /// The queue or state store failed (Redis).
    QueueError,
}

/// A typed puller error: error type, numeric id, message, and whether retrying may help.
#[derive(Debug, Clone)]
pub struct PullerError {
    pub kind: PullerErrorType,
    pub id: u32,
    pub message: String,
    /// False for errors that no retry can fix (bad credentials, a date in the future); the runtime then waits
    /// for the longest backoff before trying again and says so.
    pub retryable: bool,
}

impl PullerError {
    pub fn new(kind: PullerErrorType, id: u32, message: impl Into<String>) -> Self {
        PullerError {
            kind,
            id,
            message: message.into(),
            retryable: true,
        }
    }
    pub fn init(id: u32, message: impl Into<String>) -> Self {
        PullerError {
            retryable: false,
            ..Self::new(PullerErrorType::InitVariablesError, id, message)
        }
    }
    pub fn setup(id: u32, message: impl Into<String>) -> Self {
        Self::new(PullerErrorType::SetupError, id, message)
    }
    pub fn pull(id: u32, message: impl Into<String>) -> Self {
        Self::new(PullerErrorType::PullError, id, message)
    }
    /// The dead-letter stream refused an item (Redis failed).
    pub fn dead_letter(origin: &str, e: &redis::RedisError) -> Self {
        Self::new(
            PullerErrorType::QueueError,
            403,
            format!("cannot set {origin} aside in the dead-letter stream: {e}"),
        )
    }
    pub fn fatal(mut self) -> Self {
        self.retryable = false;
        self
    }
}

impl PullerError {
    /// The error's type and id as the seeds' tables name it: `PullError(300)` (a label of the figures).
    pub fn error_id(&self) -> String {
        format!("{:?}({})", self.kind, self.id)
    }
}

impl fmt::Display for PullerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({}): {}", self.kind, self.id, self.message)
    }
}

impl std::error::Error for PullerError {}

/// True when the text of a transport error says the TLS handshake or the server's certificate was refused: no
/// quick retry can fix that (only the operator can: a CA, a clock, an endpoint), so pullers report it at ERROR
/// and back off like a refused credential instead of retrying it as a passing network error.
pub fn is_tls_refusal(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["certificate", "tls", "handshake"]
        .iter()
        .any(|w| text.contains(w))
}

impl From<logferry::queue::QueueError> for PullerError {
    fn from(e: logferry::queue::QueueError) -> Self {
        PullerError::new(PullerErrorType::QueueError, 400, e.to_string())
    }
}

impl From<logferry::state::StateError> for PullerError {
    fn from(e: logferry::state::StateError) -> Self {
        PullerError::new(PullerErrorType::QueueError, 401, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::is_tls_refusal;

    #[test]
    fn tls_refusals_are_told_from_network_errors() {
        assert!(is_tls_refusal(
            "io: invalid peer certificate: UnknownIssuer"
        ));
        assert!(is_tls_refusal("received fatal alert: HandshakeFailure"));
        assert!(is_tls_refusal("TLS error: peer sent no certificates"));
        assert!(!is_tls_refusal("io: Connection refused (os error 111)"));
        assert!(!is_tls_refusal("timeout: global"));
    }
}
