//! What the platform endpoints take and answer.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::core::time::rfc3339_from_millis;
use crate::metering::rules::{Period, QuotaState};
use crate::platforms::rules::Tier;

/// A `POST /api/data` body (optional: without one, one call is counted). Other fields a
/// client sends along are ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DataBody {
    /// Calls to count: a whole number from 1 to 1000000 (default 1).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1_000_000)]
    pub amount: Option<u64>,
    /// An idempotency key (or send `Idempotency-Key`): a retry with it counts nothing again.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Calls in the current period.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallUsageView {
    /// Calls counted this period.
    pub used: u64,
    /// The tier's calls per month; `null` is unlimited.
    #[schema(required = true)]
    pub limit: Option<u64>,
    /// Calls still admitted this period; `null` is unlimited.
    #[schema(required = true)]
    pub remaining: Option<u64>,
}

/// The calendar month (UTC) usage counts in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallPeriodView {
    /// `YYYY-MM`.
    pub key: String,
    /// Its first instant, RFC 3339.
    pub start: String,
    /// The first instant of the next period (exclusive), when usage resets.
    pub end: String,
}

impl From<&Period> for CallPeriodView {
    fn from(period: &Period) -> Self {
        Self {
            key: period.key(),
            start: rfc3339_from_millis(period.start_ms()),
            end: rfc3339_from_millis(period.end_ms()),
        }
    }
}

/// An end user's (or a developer's) usage: whether the call was admitted (for a read:
/// whether one more would be), on which tier, and the period's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallUsageAnswer {
    pub allowed: bool,
    /// The tier (or plan) whose limit applies.
    pub tier: String,
    pub usage: CallUsageView,
    pub period: CallPeriodView,
}

impl CallUsageAnswer {
    pub fn new(allowed: bool, tier: &str, quota: &QuotaState, period: &Period) -> Self {
        Self {
            allowed,
            tier: tier.to_owned(),
            usage: CallUsageView {
                used: quota.used + quota.reserved,
                limit: quota.limit,
                remaining: quota.remaining(),
            },
            period: period.into(),
        }
    }
}

/// A platform's tiers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TiersView {
    pub platform_id: String,
    /// The first is where new end users start.
    pub tiers: Vec<Tier>,
}

/// `GET /api/tiers` query.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct TiersQuery {
    /// The platform whose tiers to show (`plt_...`); without it, the calling platform key's.
    pub platform_id: Option<String>,
}

/// A `PUT /api/developer/tiers` body: the whole new list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TiersBody {
    /// 1 to 20 tiers with unique ids; the first is where end users start.
    pub tiers: Vec<Tier>,
}

/// A `POST /api/developer/register` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The owner's email; one platform per email.
    pub email: String,
    /// The platform's name, 1 to 100 characters.
    #[serde(default)]
    pub name: Option<String>,
}

/// A platform just made, with its key: the only time the key is shown whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredView {
    pub platform_id: String,
    /// `pk_live_...`: store it now; only its masked form is shown again.
    pub api_key: String,
    pub key_id: String,
    #[schema(required = true)]
    pub name: Option<String>,
    pub tiers: Vec<Tier>,
    pub created_at: String,
}

/// Credentials just issued to a developer: the only time the key is shown whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCredentialsView {
    pub platform_id: String,
    /// `pk_live_...`: store it now; only its masked form is shown again.
    pub api_key: String,
    pub key_id: String,
    /// Whether this call made the platform.
    pub platform_created: bool,
    /// Whether a key issued before was revoked by this one (it is refused from now on).
    pub revoked_previous_key: bool,
}

/// A developer's platform and its live key, masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialsView {
    pub platform_id: String,
    /// The live key, masked (`pk_live_AbCd****WxYz`); `null` if every key was revoked.
    #[schema(required = true)]
    pub api_key: Option<String>,
    #[schema(required = true)]
    pub key_id: Option<String>,
    /// When the platform was made.
    pub created_at: String,
    /// When the live key was made.
    #[schema(required = true)]
    pub key_created_at: Option<String>,
    /// When the live key was last used (to the minute).
    #[schema(required = true)]
    pub last_used_at: Option<String>,
}

/// A platform's end users.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndUserCountsView {
    /// Every end user with a counted call or a purchase.
    pub total: u64,
    /// Those with calls counted this period.
    pub active_this_period: u64,
}

/// A platform's calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallCountsView {
    pub this_period: u64,
    pub all_time: u64,
}

/// What a platform's end users paid, in the smallest currency unit (cents).
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueView {
    pub this_period_cents: u64,
    pub all_time_cents: u64,
    /// Payments counted (each Checkout once).
    pub payments: u64,
}

/// `GET /api/developer/dashboard`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardView {
    pub platform_id: String,
    pub period: CallPeriodView,
    pub end_users: EndUserCountsView,
    pub calls: CallCountsView,
    pub revenue: RevenueView,
    pub tiers: Vec<Tier>,
}

/// A `POST /api/create-checkout` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUserCheckoutBody {
    /// The tier to subscribe to: one of the platform's tiers with a Stripe price.
    pub tier: String,
    /// Where Stripe sends the end user after paying: an http(s) URL on an allowed origin
    /// (`STRIPE_SUCCESS_URL` when left out).
    #[serde(default)]
    pub success_url: Option<String>,
    /// Where Stripe sends the end user who gives up (`STRIPE_CANCEL_URL` when left out).
    #[serde(default)]
    pub cancel_url: Option<String>,
    /// The client's idempotency key (or send `Idempotency-Key`): 1 to 128 of
    /// `[A-Za-z0-9._:-]`.
    #[serde(default)]
    #[schema(pattern = r"^\s*[A-Za-z0-9._:-]{1,128}\s*$")]
    pub request_id: Option<String>,
}

/// A Checkout Session for an end user's tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndUserCheckoutView {
    /// Where to send the end user to pay.
    #[schema(required = true)]
    pub url: Option<String>,
    pub session_id: String,
    /// The tier being bought.
    pub tier: String,
}

/// A `POST /api/customer-portal` body (it may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUserPortalBody {
    /// Where the portal sends the end user back: an http(s) URL on an allowed origin
    /// (`STRIPE_PORTAL_RETURN_URL` when left out).
    #[serde(default)]
    pub return_url: Option<String>,
}

/// A Billing Portal session for an end user.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndUserPortalView {
    #[schema(required = true)]
    pub url: Option<String>,
    pub session_id: String,
}
