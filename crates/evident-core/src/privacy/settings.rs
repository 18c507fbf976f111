//! A tenant's privacy settings that are not retention: which roles may erase a subject (a tenant
//! decision: privacy officers only, administrators only, or both, the default). Kept in the
//! service-state blob `privacy/<tenant>/settings`; set by admins only (the server checks).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{KeyStore, Role, TenantId};

/// The roles that may ever be allowed to erase.
pub const ERASURE_CAPABLE: [Role; 2] = [Role::Privacy, Role::Admin];

/// A tenant's privacy settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Role names (`privacy`, `admin`) whose keys may erase; never empty.
    pub erasure_roles: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { erasure_roles: ERASURE_CAPABLE.iter().map(|r| r.as_str().to_owned()).collect() }
    }
}

impl Settings {
    /// Whether a key of `role` may erase.
    pub fn may_erase(&self, role: Role) -> bool {
        self.erasure_roles.iter().any(|name| name == role.as_str())
    }

    /// Checks the roles: at least one, each `privacy` or `admin`, none twice. The error names
    /// the problem.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.erasure_roles.is_empty() {
            return Err("erasure_roles needs at least one role: privacy, admin or both".to_owned());
        }
        for (i, name) in self.erasure_roles.iter().enumerate() {
            if !ERASURE_CAPABLE.iter().any(|r| r.as_str() == name) {
                return Err(format!("erasure_roles[{i}] {name:?} may not erase: privacy or admin"));
            }
            if self.erasure_roles[..i].contains(name) {
                return Err(format!("erasure_roles[{i}] {name:?} is listed twice"));
            }
        }
        Ok(())
    }
}

fn blob_name(tenant: &TenantId) -> String {
    format!("privacy/{tenant}/settings")
}

/// A tenant's settings; the default (privacy and admin may erase) if none were set.
pub fn settings(store: &dyn KeyStore, tenant: &TenantId) -> Result<Settings> {
    super::load_blob(store, &blob_name(tenant))
}

/// Replaces a tenant's settings, durably.
pub fn put_settings(store: &dyn KeyStore, tenant: &TenantId, settings: &Settings) -> Result<()> {
    super::save_blob(store, &blob_name(tenant), settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_that_may_erase() {
        let only = |names: &[&str]| Settings { erasure_roles: names.iter().map(|n| n.to_string()).collect() };
        assert!(Settings::default().may_erase(Role::Admin) && Settings::default().may_erase(Role::Privacy));
        assert!(!only(&["privacy"]).may_erase(Role::Admin));
        assert!(!Settings::default().may_erase(Role::Investigator));
        assert_eq!(only(&["privacy"]).check(), Ok(()));
        assert!(only(&[]).check().unwrap_err().contains("at least one"));
        assert!(only(&["investigator"]).check().unwrap_err().contains("erasure_roles[0]"));
        assert!(only(&["admin", "admin"]).check().unwrap_err().contains("twice"));
    }
}
