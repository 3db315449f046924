//! Roles, derived from who the caller is and the organisation claims of their token.

use serde::Serialize;

use crate::identity::rules::jwt::{OrgClaim, OrgRole};
use crate::identity::rules::status::AuthSource;

/// Who holds the operator roles, from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleConfig {
    /// `ADMIN_USER_IDS`: the users who are admins, each named as [`RoleEntry::read`] reads it.
    pub admin_user_ids: Vec<String>,
    /// `STAFF_USER_IDS`: the users who are staff, named the same way.
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

/// Who a user is, in every way a role list may name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    /// Tollgate's id, `usr_...`.
    pub id: &'a str,
    /// Where they proved who they are.
    pub auth_source: AuthSource,
    /// Their id at that source.
    pub external_id: &'a str,
}

/// What one entry of `ADMIN_USER_IDS` / `STAFF_USER_IDS` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleEntry<'a> {
    /// A Tollgate user id (`usr_...`), whatever the user's source.
    Tollgate(&'a str),
    /// A user's id at one source.
    AtSource { source: &'a str, id: &'a str },
}

impl<'a> RoleEntry<'a> {
    /// Reads an entry:
    /// - `usr_...` is a Tollgate user id (Tollgate makes these; nobody chooses their own);
    /// - `<source>:<id>` (`clerk:user_...`, `hmac:alice`, `password:...`) is that id at that
    ///   source; the source is matched exactly, so `HMAC:alice` names nobody;
    /// - any other (bare) entry is a **Clerk** user id. `user_...` is how the seeds' settings
    ///   name their admins. A bare entry of another shape (`alice`) is read the same way,
    ///   never as an HMAC or password subject: those callers choose their own subject, so a
    ///   bare id must never be theirs to borrow. Clerk only issues `user_...` ids, so such an
    ///   entry matches nobody; name an HMAC user `hmac:alice`.
    pub fn read(entry: &'a str) -> RoleEntry<'a> {
        if entry.starts_with("usr_") {
            return RoleEntry::Tollgate(entry);
        }
        match entry.split_once(':') {
            Some((source, id)) => RoleEntry::AtSource { source, id },
            None => RoleEntry::AtSource {
                source: "clerk",
                id: entry,
            },
        }
    }

    /// Whether this entry names `subject`.
    pub fn names(self, subject: Subject<'_>) -> bool {
        match self {
            RoleEntry::Tollgate(id) => id == subject.id,
            RoleEntry::AtSource { source, id } => {
                source == subject.auth_source.as_str() && id == subject.external_id
            }
        }
    }
}

/// The roles of `subject`, acting within `org` (from their token, if any).
pub fn derive(config: &RoleConfig, subject: Subject<'_>, org: Option<&OrgClaim>) -> Roles {
    let listed = |list: &[String]| {
        list.iter()
            .any(|entry| RoleEntry::read(entry).names(subject))
    };
    let admin = listed(&config.admin_user_ids);
    // Org claims are Clerk's: an HMAC token can write any org id into its claims, so only a
    // Clerk user's membership of the staff org makes them staff.
    let in_staff_org = match (&config.staff_org_id, org) {
        (Some(staff_org), Some(org)) => {
            subject.auth_source == AuthSource::Clerk && *staff_org == org.id
        }
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
            admin_user_ids: vec![
                "user_admin".into(),
                "hmac:puku-admin".into(),
                "usr_tollgate_admin".into(),
                "alice".into(),
            ],
            staff_user_ids: vec!["usr_staff".into(), "clerk:user_staff".into()],
            staff_org_id: Some("org_staff".into()),
        }
    }

    fn clerk(external_id: &str) -> Subject<'_> {
        Subject {
            id: "usr_1",
            auth_source: AuthSource::Clerk,
            external_id,
        }
    }

    fn hmac(external_id: &str) -> Subject<'_> {
        Subject {
            id: "usr_2",
            auth_source: AuthSource::Hmac,
            external_id,
        }
    }

    fn admin(subject: Subject<'_>) -> bool {
        derive(&config(), subject, None).admin
    }

    fn org(id: &str, role: OrgRole) -> OrgClaim {
        OrgClaim {
            id: id.into(),
            role,
            slug: None,
        }
    }

    #[test]
    fn entries_are_tollgate_ids_source_qualified_ids_or_bare_clerk_ids() {
        assert_eq!(RoleEntry::read("usr_9"), RoleEntry::Tollgate("usr_9"));
        let at = |source, id| RoleEntry::AtSource { source, id };
        assert_eq!(RoleEntry::read("hmac:alice"), at("hmac", "alice"));
        assert_eq!(RoleEntry::read("clerk:user_1"), at("clerk", "user_1"));
        assert_eq!(RoleEntry::read("hmac:a:b"), at("hmac", "a:b"));
        assert_eq!(RoleEntry::read("user_1"), at("clerk", "user_1"));
        assert_eq!(RoleEntry::read("alice"), at("clerk", "alice"));
    }

    #[test]
    fn a_bare_user_id_names_only_the_clerk_user() {
        assert!(admin(clerk("user_admin")));
        assert!(!admin(hmac("user_admin")), "an HMAC uid never borrows it");
        let password = Subject {
            auth_source: AuthSource::Password,
            ..hmac("user_admin")
        };
        assert!(!admin(password));
    }

    #[test]
    fn a_bare_id_of_another_shape_is_clerk_only_too() {
        assert!(!admin(hmac("alice")));
        assert!(
            admin(clerk("alice")),
            "read as a Clerk id, which Clerk never issues"
        );
    }

    #[test]
    fn a_source_qualified_id_names_only_that_source() {
        assert!(admin(hmac("puku-admin")));
        assert!(!admin(clerk("puku-admin")));
        assert!(!admin(hmac("hmac:puku-admin")));
        assert!(derive(&config(), clerk("user_staff"), None).staff);
        assert!(!derive(&config(), hmac("user_staff"), None).staff);
    }

    #[test]
    fn a_tollgate_id_names_the_user_whatever_their_source() {
        for source in AuthSource::ALL {
            let subject = Subject {
                id: "usr_tollgate_admin",
                auth_source: source,
                external_id: "someone",
            };
            assert!(admin(subject), "{source}");
        }
        // An external id that looks like a Tollgate id is not one.
        assert!(!admin(hmac("usr_tollgate_admin")));
        assert!(!admin(clerk("usr_tollgate_admin")));
    }

    #[test]
    fn a_plain_caller_is_a_user() {
        let roles = derive(&config(), clerk("user_1"), None);
        assert_eq!(roles, Roles::default());
        assert_eq!(roles.names(), ["user"]);
    }

    #[test]
    fn admins_are_also_staff() {
        let roles = derive(&config(), clerk("user_admin"), None);
        assert!(roles.admin && roles.staff);
        assert_eq!(roles.names(), ["admin", "staff", "user"]);
    }

    #[test]
    fn staff_come_from_the_list_or_the_staff_org() {
        let listed = Subject {
            id: "usr_staff",
            ..hmac("anyone")
        };
        assert!(derive(&config(), listed, None).staff);
        let member = org("org_staff", OrgRole::Member);
        let roles = derive(&config(), clerk("user_p"), Some(&member));
        assert!(roles.staff && roles.org_member && !roles.org_admin && !roles.admin);
    }

    #[test]
    fn an_hmac_token_claiming_the_staff_org_is_not_staff() {
        let member = org("org_staff", OrgRole::Admin);
        let roles = derive(&config(), hmac("p"), Some(&member));
        assert!(!roles.staff && !roles.admin);
    }

    #[test]
    fn org_roles_come_from_the_claim() {
        let admin = org("org_acme", OrgRole::Admin);
        let roles = derive(&config(), clerk("user_3"), Some(&admin));
        assert!(roles.org_admin && roles.org_member && !roles.staff);
        assert_eq!(roles.names(), ["org_admin", "org_member", "user"]);
    }
}
