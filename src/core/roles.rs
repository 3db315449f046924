//! Roles, derived from who the caller is and the organisation claims of their token.

use serde::Serialize;

use super::jwt::{OrgClaim, OrgRole};

/// Who holds the operator roles, from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleConfig {
    /// `ADMIN_USER_IDS`: user ids (Tollgate's `usr_...` or the source's id) that are admins.
    pub admin_user_ids: Vec<String>,
    /// `STAFF_USER_IDS`: user ids that are staff.
    pub staff_user_ids: Vec<String>,
    /// `STAFF_ORG_ID`: members of this organisation are staff.
    pub staff_org_id: Option<String>,
}

/// What a caller may do, beyond acting on their own data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Roles {
    /// Operator: may do anything (admin endpoints).
    pub admin: bool,
    /// Support staff: may act on any organisation.
    pub staff: bool,
    /// Admin of the token's active organisation.
    pub org_admin: bool,
    /// Member (any role) of the token's active organisation.
    pub org_member: bool,
}

impl Roles {
    /// The role names, most powerful first; every caller is at least `user`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.admin {
            names.push("admin");
        }
        if self.staff {
            names.push("staff");
        }
        if self.org_admin {
            names.push("org_admin");
        }
        if self.org_member {
            names.push("org_member");
        }
        names.push("user");
        names
    }
}

/// The roles of a user known by `ids` (their Tollgate id and their id at the source),
/// acting within `org` (from their token, if any).
pub fn derive(config: &RoleConfig, ids: &[&str], org: Option<&OrgClaim>) -> Roles {
    let listed = |list: &[String]| list.iter().any(|entry| ids.contains(&entry.as_str()));
    let admin = listed(&config.admin_user_ids);
    let in_staff_org = match (&config.staff_org_id, org) {
        (Some(staff_org), Some(org)) => *staff_org == org.id,
        _ => false,
    };
    Roles {
        admin,
        staff: admin || listed(&config.staff_user_ids) || in_staff_org,
        org_admin: org.is_some_and(|o| o.role == OrgRole::Admin),
        org_member: org.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RoleConfig {
        RoleConfig {
            admin_user_ids: vec!["user_admin".into()],
            staff_user_ids: vec!["usr_staff".into()],
            staff_org_id: Some("org_staff".into()),
        }
    }

    fn org(id: &str, role: OrgRole) -> OrgClaim {
        OrgClaim {
            id: id.into(),
            role,
            slug: None,
        }
    }

    #[test]
    fn a_plain_caller_is_a_user() {
        let roles = derive(&config(), &["usr_1", "user_1"], None);
        assert_eq!(roles, Roles::default());
        assert_eq!(roles.names(), ["user"]);
    }

    #[test]
    fn admins_are_also_staff() {
        let roles = derive(&config(), &["usr_9", "user_admin"], None);
        assert!(roles.admin && roles.staff);
        assert_eq!(roles.names(), ["admin", "staff", "user"]);
    }

    #[test]
    fn staff_come_from_the_list_or_the_staff_org() {
        assert!(derive(&config(), &["usr_staff"], None).staff);
        let member = org("org_staff", OrgRole::Member);
        let roles = derive(&config(), &["usr_2"], Some(&member));
        assert!(roles.staff && roles.org_member && !roles.org_admin && !roles.admin);
    }

    #[test]
    fn org_roles_come_from_the_claim() {
        let admin = org("org_acme", OrgRole::Admin);
        let roles = derive(&config(), &["usr_3"], Some(&admin));
        assert!(roles.org_admin && roles.org_member && !roles.staff);
        assert_eq!(roles.names(), ["org_admin", "org_member", "user"]);
    }
}
