//! The roles people hold in Mamori, named as they appear in profiles and the API.

use serde::{Deserialize, Serialize};

/// A role. Roles are granted by admins; nobody changes their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Role {
    /// Manages users and configuration.
    Admin,
    /// Approves requests, revokes and holds certificates.
    SecurityOfficer,
    /// Reads everything, changes nothing.
    Auditor,
    /// Enrolls devices such as ambulance terminals.
    DeviceEnroller,
    /// Requests certificates for hospital staff.
    StaffRequester,
    /// An outside vendor requesting remote-maintenance certificates.
    Vendor,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::SecurityOfficer,
        Role::Auditor,
        Role::DeviceEnroller,
        Role::StaffRequester,
        Role::Vendor,
    ];

    /// The kebab-case name used in profiles, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::SecurityOfficer => "security-officer",
            Role::Auditor => "auditor",
            Role::DeviceEnroller => "device-enroller",
            Role::StaffRequester => "staff-requester",
            Role::Vendor => "vendor",
        }
    }

    /// Parses a kebab-case role name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
