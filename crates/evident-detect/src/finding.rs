//! A finding as the workspace keeps it: the [`FindingRecord`] (what a rule found, where its
//! `evident.finding.opened` event is, and its workflow) and the workflow itself, [`Status`] with
//! its allowed transitions. This is the one place that knows the statuses and their wire names.

use evident_wire::names::WireName;
use serde::{Deserialize, Serialize};

use crate::eval::Finding;

/// Where a finding is in its workflow: `open` -> `acknowledged` -> `resolved` | `false_positive`;
/// `open` may go straight to `resolved` or `false_positive`. The last two are closed: nothing
/// follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl Status {
    pub const ALL: [Status; 4] =
        [Status::Open, Status::Acknowledged, Status::Resolved, Status::FalsePositive];

    /// The wire name (`open`, `acknowledged`, `resolved`, `false_positive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::FalsePositive => "false_positive",
        }
    }

    /// The status with this wire name.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the workflow allows a finding with this status to move to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::{Acknowledged, FalsePositive, Open, Resolved};
        matches!(
            (self, to),
            (Open, Acknowledged | Resolved | FalsePositive) | (Acknowledged, Resolved | FalsePositive)
        )
    }

    /// Resolved and false positive: the workflow ends there.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Resolved | Status::FalsePositive)
    }

    /// Moving to a closed status needs a comment saying why.
    pub fn needs_comment(self) -> bool {
        self.is_closed()
    }

    /// The type of the event that records a finding reaching this status.
    pub fn event_type(self) -> &'static str {
        match self {
            Status::Open => "evident.finding.opened",
            Status::Acknowledged => "evident.finding.acknowledged",
            Status::Resolved => "evident.finding.resolved",
            Status::FalsePositive => "evident.finding.false_positive",
        }
    }
}

impl WireName for Status {
    const ALL: &'static [Status] = &Status::ALL;
    fn wire_name(self) -> &'static str {
        self.as_str()
    }
    fn from_wire_name(name: &str) -> Option<Status> {
        Status::parse(name)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a finding's workflow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusChange {
    pub status: Status,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: String,
    /// Index of the event that records this step in the tenant's log.
    pub event_index: u64,
}

/// A finding with its workflow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FindingRecord {
    #[serde(flatten)]
    pub finding: Finding,
    pub status: Status,
    pub opened_at: String,
    /// Index of its `evident.finding.opened` event.
    pub event_index: u64,
    #[serde(default)]
    pub history: Vec<StatusChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_allows_only_its_transitions() {
        use Status::{Acknowledged, FalsePositive, Open, Resolved};
        let allowed = [
            (Open, Acknowledged),
            (Open, Resolved),
            (Open, FalsePositive),
            (Acknowledged, Resolved),
            (Acknowledged, FalsePositive),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert!(status.event_type().ends_with(if status == Status::Open {
                "opened"
            } else {
                status.as_str()
            }));
        }
        assert_eq!(<Status as WireName>::names(), ["open", "acknowledged", "resolved", "false_positive"]);
        assert_eq!(Status::parse("closed"), None);
        assert_eq!(Status::parse("Open"), None);
    }
}
