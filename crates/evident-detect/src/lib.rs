//! Detection: rules over a tenant's events as they are committed, learned baselines, the
//! findings they raise and their workflow. No network I/O: [`workspace`] keeps its state in the
//! store's service-state blobs, and [`backtest`] reads a past range through the engine.
//!
//! - [`rule`]: the rule model (`{id, template, params, severity, enabled, description}`), the
//!   templates, their parameters and validation, and the default rule set.
//! - [`observe`]: the few fields rules look at, taken from a committed entry (and its personal
//!   part, from which only a keyed hash of the IP address is kept).
//! - [`eval`]: the per-tenant [`eval::Evaluator`], fed events in index order; its state is bounded
//!   and serialisable, so it survives a restart.
//! - [`finding`]: a finding's record and its workflow ([`finding::Status`] and its transitions).
//! - [`workspace`]: each tenant's rules, webhooks, findings, dead letters and evaluator over the
//!   store, and the only way they change (an [`workspace::Editor`] serialises people's changes).
//! - [`backtest`]: a fresh evaluator over a past time range; findings are answered, never recorded.

pub mod backtest;
pub mod bounded;
pub mod eval;
pub mod finding;
pub mod observe;
pub mod rule;
pub mod workspace;

/// Everything that can go wrong here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule or its parameters are not acceptable; `field` names the part.
    #[error("{field}: {reason}")]
    InvalidRule { field: String, reason: String },
    /// A request breaks a rule other than a rule's own validity: `field` and the `rule` it breaks
    /// (`enum`, `required`, `length`, `limit`).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, rule: &'static str, reason: String },
    /// No such rule, finding, webhook or dead letter.
    #[error("{0}")]
    NotFound(String),
    /// The change does not fit the current state (an existing id, a workflow step not allowed).
    #[error("{0}")]
    Conflict(String),
    /// Persisted state does not parse (it is then started afresh).
    #[error("detection state does not parse: {0}")]
    State(String),
    #[error(transparent)]
    Core(#[from] evident_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) const SECOND: i64 = 1_000_000;
pub(crate) const HOUR: i64 = 3600 * SECOND;
