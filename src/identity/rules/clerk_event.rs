//! Clerk webhook events (delivered by Svix), reduced to what Tollgate acts on.

use serde::Deserialize;
use serde_json::Value;

use crate::plans::rules::PlanCatalog;

/// A user as Clerk's `user.created` / `user.updated` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkUserData {
    pub id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// The plan named in public metadata, if it is one the catalog knows.
    pub plan: Option<String>,
    /// A plan named in public metadata that the catalog does not know (kept for the log).
    pub unknown_plan: Option<String>,
    /// Clerk's `updated_at`, epoch ms.
    pub updated_at_ms: i64,
}

/// What an event asks Tollgate to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkEvent {
    /// `user.created`, `user.updated`.
    UserUpsert(ClerkUserData),
    /// `user.deleted`.
    UserDeleted { id: String },
    /// `session.created`.
    SessionStarted { id: String, user_id: String },
    /// `session.ended`, `session.removed`, `session.revoked`.
    SessionEnded {
        id: String,
        user_id: String,
        reason: String,
    },
    /// Any other type: stored and acknowledged, nothing else.
    Ignored,
}

/// The envelope every Clerk webhook has.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ClerkWebhookEvent)]
pub struct Envelope {
    /// `user.created`, `user.updated`, `user.deleted`, `session.created`, `session.ended`,
    /// `session.removed`, `session.revoked`; any other type is stored and ignored.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The user or session the event is about, as Clerk describes it.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
}

#[derive(Deserialize)]
struct UserData {
    id: String,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    primary_email_address_id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
    #[serde(default)]
    public_metadata: Value,
    #[serde(default)]
    updated_at: Option<i64>,
    #[serde(default)]
    created_at: Option<i64>,
}

#[derive(Deserialize)]
struct SessionData {
    id: String,
    user_id: String,
}

#[derive(Deserialize)]
struct DeletedData {
    id: String,
}

/// Parses a delivery body; a body that is not a Clerk event names what is wrong.
pub fn parse(body: &[u8], catalog: &PlanCatalog) -> Result<(String, ClerkEvent), String> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("not a Clerk event: {e}"))?;
    let data = envelope.data;
    let bad = |e: serde_json::Error| format!("{}: {e}", envelope.event_type);
    let event = match envelope.event_type.as_str() {
        "user.created" | "user.updated" => {
            let user: UserData = serde_json::from_value(data).map_err(bad)?;
            ClerkEvent::UserUpsert(user_data(user, catalog))
        }
        "user.deleted" => {
            let deleted: DeletedData = serde_json::from_value(data).map_err(bad)?;
            ClerkEvent::UserDeleted { id: deleted.id }
        }
        "session.created" => {
            let s: SessionData = serde_json::from_value(data).map_err(bad)?;
            ClerkEvent::SessionStarted {
                id: s.id,
                user_id: s.user_id,
            }
        }
        kind @ ("session.ended" | "session.removed" | "session.revoked") => {
            let s: SessionData = serde_json::from_value(data).map_err(bad)?;
            ClerkEvent::SessionEnded {
                id: s.id,
                user_id: s.user_id,
                reason: kind.to_owned(),
            }
        }
        _ => ClerkEvent::Ignored,
    };
    Ok((envelope.event_type, event))
}

fn user_data(user: UserData, catalog: &PlanCatalog) -> ClerkUserData {
    let email = user
        .email_addresses
        .iter()
        .find(|e| Some(&e.id) == user.primary_email_address_id.as_ref())
        .or(user.email_addresses.first())
        .map(|e| e.email_address.clone());
    let name = [user.first_name, user.last_name]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let named_plan = ["plan", "subscription", "tier"]
        .iter()
        .find_map(|key| user.public_metadata.get(key).and_then(Value::as_str))
        .map(|p| p.trim().to_ascii_lowercase());
    let (plan, unknown_plan) = match named_plan {
        Some(p) if catalog.get(&p).is_some() => (Some(p), None),
        Some(p) => (None, Some(p)),
        None => (None, None),
    };
    ClerkUserData {
        id: user.id,
        email,
        username: user.username.filter(|u| !u.is_empty()),
        display_name: (!name.is_empty()).then_some(name),
        avatar_url: user.image_url.filter(|u| !u.is_empty()),
        plan,
        unknown_plan,
        updated_at_ms: user.updated_at.or(user.created_at).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(value: Value) -> Result<(String, ClerkEvent), String> {
        parse(value.to_string().as_bytes(), &PlanCatalog::default())
    }

    fn user_event(kind: &str, metadata: Value) -> Value {
        json!({
            "object": "event", "type": kind, "timestamp": 1_700_000_000_000i64,
            "data": {
                "id": "user_29w83sxmDNGwOuEthce5gg56FcC", "object": "user",
                "email_addresses": [
                    { "id": "idn_other", "email_address": "old@example.org" },
                    { "id": "idn_primary", "email_address": "example@example.org" }
                ],
                "primary_email_address_id": "idn_primary",
                "first_name": "Example", "last_name": "Person", "username": null,
                "image_url": "https://img.clerk.com/x.png",
                "public_metadata": metadata,
                "created_at": 1_654_012_591_514i64, "updated_at": 1_654_012_591_835i64
            }
        })
    }

    #[test]
    fn user_events_carry_the_primary_email_name_and_plan() {
        let (kind, event) =
            parse_json(user_event("user.updated", json!({ "plan": "Premium" }))).unwrap();
        assert_eq!(kind, "user.updated");
        let ClerkEvent::UserUpsert(user) = event else {
            panic!("{event:?}")
        };
        assert_eq!(user.email.as_deref(), Some("example@example.org"));
        assert_eq!(user.display_name.as_deref(), Some("Example Person"));
        assert_eq!(user.plan.as_deref(), Some("premium"));
        assert_eq!(user.updated_at_ms, 1_654_012_591_835);
    }

    #[test]
    fn an_unknown_plan_is_not_applied() {
        let (_, event) = parse_json(user_event("user.created", json!({ "plan": "gold" }))).unwrap();
        let ClerkEvent::UserUpsert(user) = event else {
            panic!("{event:?}")
        };
        assert_eq!(user.plan, None);
        assert_eq!(user.unknown_plan.as_deref(), Some("gold"));
    }

    #[test]
    fn deletions_and_session_ends_are_recognised() {
        let deleted = json!({ "type": "user.deleted", "data": { "deleted": true, "id": "user_1", "object": "user" } });
        assert_eq!(
            parse_json(deleted).unwrap().1,
            ClerkEvent::UserDeleted {
                id: "user_1".into()
            }
        );
        for kind in ["session.ended", "session.removed", "session.revoked"] {
            let ended = json!({ "type": kind, "data": { "id": "sess_1", "user_id": "user_1", "status": "ended" } });
            assert_eq!(
                parse_json(ended).unwrap().1,
                ClerkEvent::SessionEnded {
                    id: "sess_1".into(),
                    user_id: "user_1".into(),
                    reason: kind.into()
                }
            );
        }
        let other = json!({ "type": "email.created", "data": {} });
        assert_eq!(parse_json(other).unwrap().1, ClerkEvent::Ignored);
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(parse(b"not json", &PlanCatalog::default()).is_err());
        assert!(parse_json(json!({ "type": "user.deleted", "data": {} })).is_err());
        assert!(parse_json(json!({ "data": {} })).is_err());
    }
}
