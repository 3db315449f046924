//! What the portal's org endpoints take and answer.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::core::time::rfc3339_from_millis;
use crate::metering::rules::QuotaState;
use crate::metering::service::Quota;
use crate::orgs::rules::{OrgConfig, OrgStatus};
use crate::orgs::service::{ClientRow, DayRow, Org, PortalRole};
use crate::plans::rules::Plan;
use crate::upstream::clerk::Membership;

/// Every portal route's query: staff name the org to act on.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
pub struct PortalQuery {
    /// Staff only: the org to act on (Tollgate's `org_...` id or its Clerk organisation id).
    /// Anyone else may pass only their own org's; another is `403`.
    pub orgId: Option<String>,
}

/// A paged portal read's query.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
pub struct PortalPageQuery {
    /// Staff only: the org to act on (see every portal route).
    pub orgId: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /portal/insights`'s query.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
pub struct InsightsQuery {
    /// Staff only: the org to act on (see every portal route).
    pub orgId: Option<String>,
    /// The first day, `YYYY-MM-DD` (UTC); default 29 days before `to`.
    pub from: Option<String>,
    /// The last day, `YYYY-MM-DD` (UTC); default today. At most 366 days after `from`.
    pub to: Option<String>,
    /// Only this site of the org (`site_...`).
    pub site_id: Option<String>,
}

/// An org.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    /// `org_...` (Tollgate's).
    pub id: String,
    /// The Clerk organisation its members sign in with.
    #[schema(required = true)]
    pub clerk_org_id: Option<String>,
    pub name: String,
    /// The `{client}` of its site keys.
    pub slug: String,
    /// Its plan id.
    pub plan: String,
    pub status: OrgStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Org> for OrgView {
    fn from(org: &Org) -> Self {
        Self {
            id: org.id.clone(),
            clerk_org_id: org.clerk_org_id.clone(),
            name: org.name.clone(),
            slug: org.slug.clone(),
            plan: org.plan.clone(),
            status: org.status,
            created_at: org.created_at.clone(),
            updated_at: org.updated_at.clone(),
        }
    }
}

/// The org's plan, as its limits apply to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgPlanView {
    pub id: String,
    pub name: String,
    /// Chat tokens per month; `null` is unlimited.
    #[schema(required = true)]
    pub tokens_per_month: Option<u64>,
    /// Voice characters per month; `null` is unlimited.
    #[schema(required = true)]
    pub voice_chars_per_month: Option<u64>,
}

impl From<&Plan> for OrgPlanView {
    fn from(plan: &Plan) -> Self {
        Self {
            id: plan.id.clone(),
            name: plan.name.clone(),
            tokens_per_month: plan.tokens_per_month,
            voice_chars_per_month: plan.voice_chars_per_month,
        }
    }
}

/// One meter this month.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeterView {
    /// Counted this month.
    pub used: u64,
    /// Held by calls in flight.
    pub reserved: u64,
    /// `null` is unlimited.
    #[schema(required = true)]
    pub limit: Option<u64>,
    /// `null` is unlimited.
    #[schema(required = true)]
    pub remaining: Option<u64>,
}

impl From<&QuotaState> for MeterView {
    fn from(q: &QuotaState) -> Self {
        Self {
            used: q.used,
            reserved: q.reserved,
            limit: q.limit,
            remaining: q.remaining(),
        }
    }
}

/// The org's usage this month (UTC calendar month).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgUsageView {
    /// `YYYY-MM`.
    pub period: String,
    /// When usage resets (RFC 3339).
    pub resets_at: String,
    pub tokens: MeterView,
    pub voice_chars: MeterView,
}

impl OrgUsageView {
    pub fn new(tokens: &Quota, voice: &Quota) -> Self {
        Self {
            period: tokens.period.key(),
            resets_at: rfc3339_from_millis(tokens.period.end_ms()),
            tokens: MeterView::from(&tokens.quota),
            voice_chars: MeterView::from(&voice.quota),
        }
    }
}

/// Chat activity over a span of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsView {
    /// The first day counted, `YYYY-MM-DD`.
    pub from: String,
    /// The last day counted.
    pub to: String,
    pub sessions: u64,
    pub messages: u64,
    /// Mean answer latency, weighted by messages; `null` without answered messages.
    #[schema(required = true)]
    pub avg_latency_ms: Option<u64>,
    /// The largest daily 95th percentile of answer latency (an upper bound of the span's).
    #[schema(required = true)]
    pub p95_latency_ms: Option<u64>,
}

impl TotalsView {
    pub fn new(from: String, to: String, days: &[DayRow]) -> Self {
        let messages: i64 = days.iter().map(|d| d.messages).sum();
        let timed: i64 = days
            .iter()
            .filter(|d| d.latency_avg_ms.is_some())
            .map(|d| d.messages)
            .sum();
        let weighted: f64 = days
            .iter()
            .filter_map(|d| d.latency_avg_ms.map(|avg| avg * d.messages as f64))
            .sum();
        Self {
            from,
            to,
            sessions: days.iter().map(|d| d.sessions.max(0) as u64).sum(),
            messages: messages.max(0) as u64,
            avg_latency_ms: (timed > 0).then(|| (weighted / timed as f64).round() as u64),
            p95_latency_ms: days
                .iter()
                .filter_map(|d| d.latency_p95_ms)
                .max()
                .map(|p| p.max(0) as u64),
        }
    }
}

/// `GET /portal/overview`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewView {
    pub org: OrgView,
    /// How the caller acts on it.
    pub role: PortalRole,
    pub plan: OrgPlanView,
    pub usage: OrgUsageView,
    /// The last 30 days, today included.
    pub last_30_days: TotalsView,
}

/// One day of the series.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub sessions: u64,
    pub messages: u64,
    #[schema(required = true)]
    pub avg_latency_ms: Option<u64>,
    #[schema(required = true)]
    pub p95_latency_ms: Option<u64>,
    pub tokens: u64,
    pub voice_chars: u64,
}

impl DayView {
    /// A day with no activity.
    pub fn empty(day: String) -> Self {
        Self {
            day,
            sessions: 0,
            messages: 0,
            avg_latency_ms: None,
            p95_latency_ms: None,
            tokens: 0,
            voice_chars: 0,
        }
    }
}

impl From<&DayRow> for DayView {
    fn from(d: &DayRow) -> Self {
        let whole = |n: i64| n.max(0) as u64;
        Self {
            day: d.day.clone(),
            sessions: whole(d.sessions),
            messages: whole(d.messages),
            avg_latency_ms: d.latency_avg_ms.map(|a| a.round().max(0.0) as u64),
            p95_latency_ms: d.latency_p95_ms.map(whole),
            tokens: whole(d.tokens),
            voice_chars: whole(d.voice_chars),
        }
    }
}

/// `GET /portal/insights`: every day of the span, in order (a day without activity is zeros).
#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsView {
    pub org_id: String,
    pub from: String,
    pub to: String,
    /// The site the series is for; `null`: all the org's sites.
    #[schema(required = true)]
    pub site_id: Option<String>,
    pub days: Vec<DayView>,
    pub totals: TotalsView,
}

/// One member of the org's team.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// Clerk's user id.
    #[schema(required = true)]
    pub user_id: Option<String>,
    /// First and last name, when Clerk has them.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Their email or other sign-in identifier.
    #[schema(required = true)]
    pub identifier: Option<String>,
    #[schema(required = true)]
    pub image_url: Option<String>,
    /// `admin`, `member`, or the organisation's own role key.
    pub role: String,
    /// When they joined (RFC 3339).
    #[schema(required = true)]
    pub joined_at: Option<String>,
}

impl From<&Membership> for MemberView {
    fn from(m: &Membership) -> Self {
        let user = m.public_user_data.clone().unwrap_or_default();
        let name = [user.first_name, user.last_name]
            .into_iter()
            .flatten()
            .filter(|n| !n.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            user_id: user.user_id,
            name: (!name.is_empty()).then_some(name),
            identifier: user.identifier,
            image_url: user.image_url,
            role: m.role.strip_prefix("org:").unwrap_or(&m.role).to_owned(),
            joined_at: m
                .created_at
                .filter(|at| *at >= 0)
                .map(|at| rfc3339_from_millis(at as u64)),
        }
    }
}

/// `GET /portal/team`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub org_id: String,
    pub members: Vec<MemberView>,
}

/// `GET|PATCH /portal/config`: the org's configuration (absent fields take the defaults).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    pub org_id: String,
    pub config: OrgConfig,
}

/// One org in the staff client list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    #[serde(flatten)]
    pub org: OrgView,
    /// Its sites.
    pub sites: u64,
    /// Chat messages in the last 30 days.
    pub messages_30d: u64,
}

impl ClientView {
    pub fn new(row: ClientRow) -> Self {
        let org = crate::orgs::service::from_row(row.org);
        Self {
            org: OrgView::from(&org),
            sites: row.sites.max(0) as u64,
            messages_30d: row.messages_30d.max(0) as u64,
        }
    }
}

/// `GET /portal/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientsView {
    pub clients: Vec<ClientView>,
}
