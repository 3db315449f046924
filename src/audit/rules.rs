//! What an audit row says: the actions recorded, who acts, what they act on, and the small
//! detail object kept with them (never a secret, never large).

use serde_json::{Map, Value};

/// Every action the log records, by the name stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum Action {
    // Accounts (email and password).
    #[serde(rename = "account.registered")]
    AccountRegistered,
    #[serde(rename = "account.email_verified")]
    AccountEmailVerified,
    #[serde(rename = "account.profile_updated")]
    AccountProfileUpdated,
    #[serde(rename = "account.password_changed")]
    AccountPasswordChanged,
    #[serde(rename = "account.password_reset_requested")]
    AccountPasswordResetRequested,
    #[serde(rename = "account.password_reset")]
    AccountPasswordReset,
    // Sessions.
    #[serde(rename = "session.started")]
    SessionStarted,
    #[serde(rename = "session.refreshed")]
    SessionRefreshed,
    #[serde(rename = "session.ended")]
    SessionEnded,
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    // Users and their keys.
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.updated")]
    UserUpdated,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "api_key.created")]
    ApiKeyCreated,
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked,
    // Plans and subscriptions.
    #[serde(rename = "plan.changed")]
    PlanChanged,
    #[serde(rename = "subscription.checkout_created")]
    SubscriptionCheckoutCreated,
    #[serde(rename = "subscription.cancelled")]
    SubscriptionCancelled,
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated,
    // The token ledger.
    #[serde(rename = "tokens.checkout_created")]
    TokensCheckoutCreated,
    #[serde(rename = "tokens.purchased")]
    TokensPurchased,
    #[serde(rename = "tokens.used")]
    TokensUsed,
    #[serde(rename = "tokens.granted")]
    TokensGranted,
    #[serde(rename = "tokens.adjusted")]
    TokensAdjusted,
    #[serde(rename = "tokens.refunded")]
    TokensRefunded,
    #[serde(rename = "tokens.social_reward")]
    TokensSocialReward,
    // Provider keys and credits (admin).
    #[serde(rename = "credits.adjusted")]
    CreditsAdjusted,
    #[serde(rename = "provider_key.added")]
    ProviderKeyAdded,
    #[serde(rename = "provider_key.retired")]
    ProviderKeyRetired,
    #[serde(rename = "provider_key.rotated")]
    ProviderKeyRotated,
    // Platforms.
    /// A platform was made (with its first key).
    #[serde(rename = "platform.created")]
    PlatformCreated,
    /// A new platform key was issued; the one before, if any, was revoked.
    #[serde(rename = "platform.key_issued")]
    PlatformKeyIssued,
    /// The platform's tier list was replaced.
    #[serde(rename = "platform.tiers_updated")]
    PlatformTiersUpdated,
    /// An end user moved to another tier (a paid Checkout).
    #[serde(rename = "platform.end_user_tier_changed")]
    PlatformEndUserTierChanged,
    // Organisations (the portal).
    /// Staff made an org.
    #[serde(rename = "org.created")]
    OrgCreated,
    /// An org's configuration changed (the fields changed are in the detail).
    #[serde(rename = "org.config_updated")]
    OrgConfigUpdated,
    // Sites (an org's chat widgets and voice endpoints).
    /// A site was made, with its key and origins.
    #[serde(rename = "site.created")]
    SiteCreated,
    /// A site's name, status, origins or server calls changed.
    #[serde(rename = "site.updated")]
    SiteUpdated,
    /// A site's key was replaced; the old value is refused from then on.
    #[serde(rename = "site.key_rotated")]
    SiteKeyRotated,
    // Webhooks.
    #[serde(rename = "webhook.applied")]
    WebhookApplied,
    #[serde(rename = "webhook.retried")]
    WebhookRetried,
    // Workflows (outgoing webhooks).
    #[serde(rename = "workflow.created")]
    WorkflowCreated,
    #[serde(rename = "workflow.updated")]
    WorkflowUpdated,
    #[serde(rename = "workflow.deleted")]
    WorkflowDeleted,
}

impl Action {
    /// Every action, in the order above.
    pub const ALL: [Action; 44] = [
        Action::AccountRegistered,
        Action::AccountEmailVerified,
        Action::AccountProfileUpdated,
        Action::AccountPasswordChanged,
        Action::AccountPasswordResetRequested,
        Action::AccountPasswordReset,
        Action::SessionStarted,
        Action::SessionRefreshed,
        Action::SessionEnded,
        Action::SessionRevoked,
        Action::UserCreated,
        Action::UserUpdated,
        Action::UserDeleted,
        Action::ApiKeyCreated,
        Action::ApiKeyRevoked,
        Action::PlanChanged,
        Action::SubscriptionCheckoutCreated,
        Action::SubscriptionCancelled,
        Action::SubscriptionUpdated,
        Action::TokensCheckoutCreated,
        Action::TokensPurchased,
        Action::TokensUsed,
        Action::TokensGranted,
        Action::TokensAdjusted,
        Action::TokensRefunded,
        Action::TokensSocialReward,
        Action::CreditsAdjusted,
        Action::ProviderKeyAdded,
        Action::ProviderKeyRetired,
        Action::ProviderKeyRotated,
        Action::PlatformCreated,
        Action::PlatformKeyIssued,
        Action::PlatformTiersUpdated,
        Action::PlatformEndUserTierChanged,
        Action::OrgCreated,
        Action::OrgConfigUpdated,
        Action::SiteCreated,
        Action::SiteUpdated,
        Action::SiteKeyRotated,
        Action::WebhookApplied,
        Action::WebhookRetried,
        Action::WorkflowCreated,
        Action::WorkflowUpdated,
        Action::WorkflowDeleted,
    ];

    /// The stored and shown name (`tokens.used`).
    pub fn as_str(self) -> &'static str {
        NAMES[self as usize]
    }

    /// The action with this exact name.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// The names of [`Action::ALL`], in the same order (checked against serde by a test).
const NAMES: [&str; 44] = [
    "account.registered",
    "account.email_verified",
    "account.profile_updated",
    "account.password_changed",
    "account.password_reset_requested",
    "account.password_reset",
    "session.started",
    "session.refreshed",
    "session.ended",
    "session.revoked",
    "user.created",
    "user.updated",
    "user.deleted",
    "api_key.created",
    "api_key.revoked",
    "plan.changed",
    "subscription.checkout_created",
    "subscription.cancelled",
    "subscription.updated",
    "tokens.checkout_created",
    "tokens.purchased",
    "tokens.used",
    "tokens.granted",
    "tokens.adjusted",
    "tokens.refunded",
    "tokens.social_reward",
    "credits.adjusted",
    "provider_key.added",
    "provider_key.retired",
    "provider_key.rotated",
    "platform.created",
    "platform.key_issued",
    "platform.tiers_updated",
    "platform.end_user_tier_changed",
    "org.created",
    "org.config_updated",
    "site.created",
    "site.updated",
    "site.key_rotated",
    "webhook.applied",
    "webhook.retried",
    "workflow.created",
    "workflow.updated",
    "workflow.deleted",
];

crate::stored_enum! {
    /// What kind of actor acted (`audit_log.actor_kind`).
    pub enum ActorKind ("audit actor kind") {
        User = "user",
        System = "system",
        Anonymous = "anonymous",
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// A signed-in user (or their API key), by Tollgate user id.
    User(&'a str),
    /// Tollgate itself, acting for a provider's event or a schedule: `stripe`, `clerk`,
    /// `scheduler`.
    System(&'static str),
    /// Nobody signed in (a registration, a password reset by emailed token).
    Anonymous,
}

impl Actor<'_> {
    /// `(actor_kind, actor_id)` as stored.
    pub fn stored(&self) -> (ActorKind, Option<&str>) {
        match self {
            Actor::User(id) => (ActorKind::User, Some(id)),
            Actor::System(name) => (ActorKind::System, Some(name)),
            Actor::Anonymous => (ActorKind::Anonymous, None),
        }
    }
}

/// What was acted on: a kind (`user`, `api_key`, `session`, ...) and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub kind: &'static str,
    pub id: &'a str,
}

impl<'a> Target<'a> {
    pub fn new(kind: &'static str, id: &'a str) -> Self {
        Self { kind, id }
    }

    /// A user, by Tollgate id.
    pub fn user(id: &'a str) -> Self {
        Self::new("user", id)
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: Actor<'a>,
    pub action: Action,
    pub target: Option<Target<'a>>,
    /// A small JSON object: amounts, plan ids, reasons. Never a secret, a token or a
    /// password; see [`detail_text`].
    pub detail: Value,
}

impl<'a> Entry<'a> {
    pub fn new(actor: Actor<'a>, action: Action) -> Self {
        Self {
            actor,
            action,
            target: None,
            detail: Value::Object(Map::new()),
        }
    }

    pub fn target(mut self, target: Target<'a>) -> Self {
        self.target = Some(target);
        self
    }

    /// Adds one field to the detail object.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.detail {
            map.insert(name.to_owned(), value.into());
        }
        self
    }
}

/// The most bytes of detail kept per row.
pub const MAX_DETAIL_BYTES: usize = 2048;

/// Field names whose values are never written, whatever a caller passes: a detail that
/// names one keeps the name with `"[redacted]"`.
const SECRET_NAMES: &[&str] = &[
    "password",
    "token",
    "secret",
    "key",
    "authorization",
    "hash",
];

/// The detail as stored: an object, secrets redacted, at most [`MAX_DETAIL_BYTES`] (a
/// larger one is replaced by `{"truncated": true}` and its field names).
pub fn detail_text(detail: &Value) -> String {
    let Value::Object(map) = detail else {
        return "{}".to_owned();
    };
    let redacted: Map<String, Value> = map
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let secret = SECRET_NAMES.iter().any(|s| {
                lower == *s
                    || lower.ends_with(&format!("_{s}"))
                    || lower.starts_with(&format!("{s}_"))
            });
            let value = if secret && !lower.ends_with("_id") {
                Value::String("[redacted]".to_owned())
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    let text = Value::Object(redacted.clone()).to_string();
    if text.len() <= MAX_DETAIL_BYTES {
        return text;
    }
    let names: Vec<Value> = redacted
        .keys()
        .take(20)
        .cloned()
        .map(Value::String)
        .collect();
    serde_json::json!({"truncated": true, "fields": names}).to_string()
}

/// Which rows to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before (RFC 3339).
    pub to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_action_has_one_name_and_the_names_match_serde() {
        for action in Action::ALL {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                json!(action.as_str()),
                "{action:?}"
            );
            assert_eq!(Action::from_name(action.as_str()), Some(action));
        }
        assert_eq!(Action::from_name("tokens.stolen"), None);
        assert_eq!(Action::from_name("TOKENS.USED"), None);
    }

    #[test]
    fn secrets_in_a_detail_are_redacted_and_other_fields_kept() {
        let detail = json!({
            "password": "hunter22222",
            "refresh_token": "abc",
            "key_hash": "ff",
            "api_key_id": "key_1",
            "amount": 5,
            "reason": "promo"
        });
        let stored: Value = serde_json::from_str(&detail_text(&detail)).unwrap();
        assert_eq!(stored["password"], "[redacted]");
        assert_eq!(stored["refresh_token"], "[redacted]");
        assert_eq!(stored["key_hash"], "[redacted]");
        assert_eq!(stored["api_key_id"], "key_1");
        assert_eq!(stored["amount"], 5);
        assert_eq!(stored["reason"], "promo");
    }

    #[test]
    fn a_large_detail_is_cut_to_its_field_names() {
        let detail = json!({"reason": "x".repeat(5000), "amount": 1});
        let stored = detail_text(&detail);
        assert!(stored.len() <= MAX_DETAIL_BYTES);
        let stored: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored["truncated"], true);
        assert_eq!(stored["fields"], json!(["amount", "reason"]));
        assert_eq!(detail_text(&json!([1, 2])), "{}");
    }

    #[test]
    fn actors_are_stored_by_kind_and_id() {
        assert_eq!(
            Actor::User("usr_1").stored(),
            (ActorKind::User, Some("usr_1"))
        );
        assert_eq!(
            Actor::System("stripe").stored(),
            (ActorKind::System, Some("stripe"))
        );
        assert_eq!(Actor::Anonymous.stored(), (ActorKind::Anonymous, None));
        crate::core::stored::check::<ActorKind>();
    }
}
