//! Requests and answers of the detection endpoints (`/v1/rules`, `/v1/findings`, `/v1/webhooks`)
//! as clients send and read them: the shapes `evident-server`'s `detect_api.rs` serves from
//! `evident-detect`'s types (which hold the rules' logic and stay there). Severities and statuses
//! are their wire names (`high`, `false_positive`); a rule's `params` are its template's own JSON
//! object (see `GET /v1/rules/templates`). Clients ignore members they do not know.

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn yes() -> bool {
    true
}

/// A detection rule: an instance of a template with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub template: String,
    #[serde(default = "empty_object")]
    pub params: Value,
    pub severity: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
}

/// Answer of `GET /v1/rules`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

/// A rule template: what it finds and its default parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub template: String,
    pub finds: String,
    pub params: Value,
}

/// Answer of `GET /v1/rules/templates`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateList {
    pub templates: Vec<Template>,
}

/// Answer of `DELETE /v1/rules/{id}` and `DELETE /v1/webhooks/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: String,
}

/// Request of `POST /v1/rules/backtest`: a rule, or the id of one of the tenant's, and a time range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BacktestRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
}

/// What a rule found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub rule: String,
    pub template: String,
    pub severity: String,
    /// What it is about: an actor, `ip:<hash>`, a source or a customer.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// RFC 3339: event time of the last trigger.
    pub time: String,
    /// Event ids that triggered it (the latest last).
    pub triggers: Vec<String>,
    pub trigger_count: u64,
    pub explanation: String,
}

/// Answer of `POST /v1/rules/backtest`: what a rule would have found. Creates no findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    pub events: u64,
    /// True when a limit stopped it early.
    pub truncated: bool,
    pub findings: Vec<Finding>,
}

/// A step of a finding's workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: String,
    /// Index of the event recording this step.
    pub event_index: u64,
}

/// A finding with its workflow (`GET /v1/findings/{id}`, and each item of a page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    #[serde(flatten)]
    pub finding: Finding,
    /// `open`, `acknowledged`, `resolved` or `false_positive`.
    pub status: String,
    pub opened_at: String,
    /// Index of its `evident.finding.opened` event.
    pub event_index: u64,
    #[serde(default)]
    pub history: Vec<StatusChange>,
}

/// Filters of `GET /v1/findings`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// This severity or higher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Answer of `GET /v1/findings`, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindingPage {
    pub findings: Vec<FindingRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Request of `POST /v1/findings/{id}/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// `acknowledged`, `resolved` or `false_positive`.
    pub status: String,
    /// Required for `resolved` and `false_positive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Request of `POST /v1/webhooks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateWebhook {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A webhook, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Findings below this severity are not sent.
    pub min_severity: String,
    pub created_at: String,
    #[serde(default)]
    pub description: String,
}

/// Answer of `POST /v1/webhooks`: the webhook and its signing secret, shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

/// Answer of `GET /v1/webhooks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// A delivery that failed every attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The delivery id (`Evident-Delivery`).
    pub id: String,
    pub webhook: String,
    pub finding: String,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at: String,
}

/// Answer of `GET /v1/webhooks/dead-letters`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
}

/// Answer of `POST /v1/webhooks/dead-letters/{id}/redeliver`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Redelivering {
    pub redelivering: String,
}
