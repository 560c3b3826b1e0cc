//! Who may do what. Roles are plain values; the decisions that use them
//! (who may approve, who may force a promotion) live in the state machine.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The kinds of approval the lifecycle asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    Technical,
    Ethics,
    Security,
    Stakeholder,
}

impl ApprovalKind {
    pub const ALL: [ApprovalKind; 4] =
        [ApprovalKind::Technical, ApprovalKind::Ethics, ApprovalKind::Security, ApprovalKind::Stakeholder];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Technical => "technical",
            ApprovalKind::Ethics => "ethics",
            ApprovalKind::Security => "security",
            ApprovalKind::Stakeholder => "stakeholder",
        }
    }
}

impl fmt::Display for ApprovalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalKind {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, RoleError> {
        ApprovalKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| RoleError(s.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Deployer,
    Approver(ApprovalKind),
    Admin,
    /// The controller itself: timers, judge verdicts, evidence it measured.
    System,
    /// May only evaluate feature flags (OFREP): the token an application holds.
    FlagReader,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "`{0}` is not a role: use viewer, deployer, admin, flags:read, or approver:KIND with KIND one of technical, ethics, security, stakeholder"
)]
pub struct RoleError(pub String);

impl FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Role, RoleError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "deployer" => Ok(Role::Deployer),
            "admin" => Ok(Role::Admin),
            "system" => Ok(Role::System),
            "flags:read" => Ok(Role::FlagReader),
            other => other
                .strip_prefix("approver:")
                .and_then(|kind| kind.parse().ok())
                .map(Role::Approver)
                .ok_or_else(|| RoleError(s.to_string())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Viewer => f.write_str("viewer"),
            Role::Deployer => f.write_str("deployer"),
            Role::Admin => f.write_str("admin"),
            Role::System => f.write_str("system"),
            Role::FlagReader => f.write_str("flags:read"),
            Role::Approver(kind) => write!(f, "approver:{kind}"),
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The person or component behind an input, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub roles: Vec<Role>,
}

impl Actor {
    pub fn new(name: impl Into<String>, roles: impl IntoIterator<Item = Role>) -> Actor {
        Actor { name: name.into(), roles: roles.into_iter().collect() }
    }

    /// The controller, which feeds timers, verdicts and measured evidence.
    pub fn system() -> Actor {
        Actor::new("rollgate", [Role::System])
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// People who may change a rollout's course: deployers and admins.
    pub fn may_operate(&self) -> bool {
        self.has(Role::Deployer) || self.is_admin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print_alike() {
        for text in ["viewer", "deployer", "admin", "approver:security", "approver:ethics"] {
            assert_eq!(text.parse::<Role>().unwrap().to_string(), text);
        }
        assert!("approver:finance".parse::<Role>().is_err());
        assert!("root".parse::<Role>().is_err());
    }
}
