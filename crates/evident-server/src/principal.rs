//! Who is calling and what an endpoint needs: the plain facts that authentication establishes and
//! the self-audit records (kept apart from both, so neither depends on the other).

use std::net::IpAddr;

use evident_core::store::{Role, TenantId};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub tenant: TenantId,
    pub role: Role,
    /// The bootstrap admin key: administers every tenant.
    pub global: bool,
    pub ip: Option<IpAddr>,
}

/// What an endpoint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Append,
    Read,
    /// Work findings and run backtests: auditors, investigators and admins.
    Review,
    Admin,
    /// Erasure, legal holds, retention and subject reports: the `privacy` role and admins.
    Privacy,
}

impl Principal {
    pub fn may(&self, need: Need) -> bool {
        match need {
            Need::Append => self.role == Role::Producer,
            Need::Read => {
                // Privacy officers read (without personal values) to export their reports' bundles.
                matches!(
                    self.role,
                    Role::Reader | Role::Investigator | Role::Auditor | Role::Admin | Role::Privacy
                )
            }
            Need::Review => matches!(self.role, Role::Auditor | Role::Investigator | Role::Admin),
            Need::Admin => self.role == Role::Admin,
            Need::Privacy => matches!(self.role, Role::Privacy | Role::Admin),
        }
    }

    /// The actor object of the events this caller causes.
    pub fn actor_id(&self) -> String {
        format!("key:{}", self.key_id)
    }
}
