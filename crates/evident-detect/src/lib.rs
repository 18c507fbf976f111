//! Detection: rules over a tenant's events as they are committed, learned baselines, and the
//! findings they raise. Pure logic and bounded state, no I/O of its own except [`backtest`],
//! which reads a past range through the engine.
//!
//! - [`rule`]: the rule model (`{id, template, params, severity, enabled, description}`), the
//!   templates, their parameters and validation, and the default rule set.
//! - [`observe`]: the few fields rules look at, taken from a committed entry (and its personal
//!   part, from which only a keyed hash of the IP address is kept).
//! - [`eval`]: the per-tenant [`eval::Evaluator`], fed events in index order; its state is bounded
//!   and serialisable, so it survives a restart.
//! - [`backtest`]: a fresh evaluator over a past time range; findings are answered, never recorded.

pub mod backtest;
pub mod bounded;
pub mod eval;
pub mod observe;
pub mod rule;

/// Everything that can go wrong here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule or its parameters are not acceptable; `field` names the part.
    #[error("{field}: {reason}")]
    InvalidRule { field: String, reason: String },
    /// Persisted state does not parse (it is then started afresh).
    #[error("detection state does not parse: {0}")]
    State(String),
    #[error(transparent)]
    Core(#[from] evident_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) const SECOND: i64 = 1_000_000;
pub(crate) const HOUR: i64 = 3600 * SECOND;
