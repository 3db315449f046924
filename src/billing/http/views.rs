//! What the billing endpoints answer, and the query strings and bodies they read that are
//! not parsed by hand elsewhere.

use serde::{Deserialize, Serialize};

use crate::billing::service::stripe_events::Receipt;
use crate::billing::service::subscriptions::{HistoryLine, StoredSubscription};
use crate::error::AppError;
use crate::plans::rules::Plan;
use crate::upstream::stripe::Session;
use crate::webhooks::service::{Failure, RetryReport, StatusCount};

/// `?limit=&cursor=`: a page of a list (see [`crate::core::page`]).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
}

/// A Stripe Checkout Session to pay for a plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckoutView {
    /// Where to send the customer to pay.
    #[schema(required = true)]
    pub url: Option<String>,
    /// Stripe's id of the Checkout Session.
    pub session_id: String,
    /// The plan being bought.
    pub plan: String,
}

impl CheckoutView {
    pub fn new(session: Session, plan: &Plan) -> Self {
        Self {
            url: session.url,
            session_id: session.id,
            plan: plan.id.clone(),
        }
    }
}

/// A Stripe Billing Portal session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalView {
    /// Where to send the customer to manage their billing.
    #[schema(required = true)]
    pub url: Option<String>,
    /// Stripe's id of the portal session.
    pub session_id: String,
}

impl From<Session> for PortalView {
    fn from(session: Session) -> Self {
        Self {
            url: session.url,
            session_id: session.id,
        }
    }
}

/// A Stripe subscription's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
}

impl SubscriptionStatus {
    fn parse(status: &str) -> Result<Self, AppError> {
        Ok(match status {
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            other => {
                return Err(AppError::Internal(format!(
                    "unknown subscription status `{other}`"
                )))
            }
        })
    }
}

/// A subscription, as the newest change applied left it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    /// Stripe's id (`sub_...`).
    pub id: String,
    pub user_id: String,
    /// Stripe's customer id (`cus_...`).
    pub customer_id: String,
    /// The subscription item whose price sets the plan, once known.
    #[schema(required = true)]
    pub item_id: Option<String>,
    pub price_id: String,
    pub plan: String,
    pub status: SubscriptionStatus,
    pub cancel_at_period_end: bool,
    /// When the period paid for ends (RFC 3339).
    #[schema(required = true)]
    pub current_period_end: Option<String>,
    /// How new the applied state is: the Stripe event's `created` (Unix seconds).
    pub event_created: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl TryFrom<StoredSubscription> for SubscriptionView {
    type Error = AppError;

    fn try_from(s: StoredSubscription) -> Result<Self, AppError> {
        Ok(Self {
            status: SubscriptionStatus::parse(&s.status)?,
            id: s.id,
            user_id: s.user_id,
            customer_id: s.customer_id,
            item_id: s.item_id,
            price_id: s.price_id,
            plan: s.plan,
            cancel_at_period_end: s.cancel_at_period_end,
            current_period_end: s.current_period_end,
            event_created: s.event_created,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
    }
}

/// A subscription after a change asked for through the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionChangeView {
    pub subscription: SubscriptionView,
}

impl TryFrom<StoredSubscription> for SubscriptionChangeView {
    type Error = AppError;

    fn try_from(s: StoredSubscription) -> Result<Self, AppError> {
        Ok(Self {
            subscription: s.try_into()?,
        })
    }
}

/// The caller's plan and subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CurrentSubscriptionView {
    pub plan: Plan,
    /// The newest live subscription, else the newest of any status; `null` if none.
    #[schema(required = true)]
    pub subscription: Option<SubscriptionView>,
}

/// One change of a subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryLineView {
    pub id: String,
    #[schema(required = true)]
    pub subscription_id: Option<String>,
    /// The Stripe event id, or `api:<request id>` for a change made through the API.
    pub source: String,
    /// The Stripe event type, or the API action (`cancel`, `update`).
    pub kind: String,
    /// The subscription's status after the change.
    #[schema(required = true)]
    pub status: Option<SubscriptionStatus>,
    /// The user's plan before the change.
    #[schema(required = true)]
    pub from_plan: Option<String>,
    /// The user's plan after the change.
    #[schema(required = true)]
    pub to_plan: Option<String>,
    pub created_at: String,
}

impl TryFrom<HistoryLine> for HistoryLineView {
    type Error = AppError;

    fn try_from(l: HistoryLine) -> Result<Self, AppError> {
        Ok(Self {
            status: l
                .status
                .as_deref()
                .map(SubscriptionStatus::parse)
                .transpose()?,
            id: l.id,
            subscription_id: l.subscription_id,
            source: l.source,
            kind: l.kind,
            from_plan: l.from_plan,
            to_plan: l.to_plan,
            created_at: l.created_at,
        })
    }
}

/// A page of the caller's subscription history, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPageView {
    pub data: Vec<HistoryLineView>,
    /// The cursor of the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A Stripe Event as delivered to the webhook (only the parts Tollgate reads).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StripeEventBody {
    /// Stripe's event id (`evt_...`).
    #[schema(min_length = 1, max_length = 255)]
    pub id: String,
    /// The event type (`checkout.session.completed`, ...).
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 255)]
    pub kind: String,
    /// When the event happened (Unix seconds).
    pub created: i64,
    pub data: StripeEventData,
}

/// What a Stripe Event is about.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StripeEventData {
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
}

/// How a Stripe event ended.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// It changed state.
    Processed,
    /// Nothing to do (`reason` says why).
    Ignored,
    /// Applying it failed; it is stored and will be retried.
    Failed,
}

/// What became of a delivered event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptView {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// For a duplicate, the stored status.
    pub status: ReceiptStatus,
    pub duplicate: bool,
    /// Why it was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The webhook's answer: the event is stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookReceivedView {
    /// Always `true`.
    pub received: bool,
    pub event: ReceiptView,
}

impl TryFrom<Receipt> for WebhookReceivedView {
    type Error = AppError;

    fn try_from(r: Receipt) -> Result<Self, AppError> {
        let status = match r.status.as_str() {
            "processed" => ReceiptStatus::Processed,
            "ignored" => ReceiptStatus::Ignored,
            "failed" => ReceiptStatus::Failed,
            other => {
                return Err(AppError::Internal(format!(
                    "unknown webhook receipt status `{other}`"
                )))
            }
        };
        Ok(Self {
            received: true,
            event: ReceiptView {
                event_id: r.event_id,
                kind: r.kind,
                status,
                duplicate: r.duplicate,
                reason: r.reason.map(str::to_owned),
            },
        })
    }
}

/// What a retry run did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryReportView {
    /// Events tried again.
    pub retried: u32,
    pub processed: u32,
    pub ignored: u32,
    pub failed: u32,
}

/// The answer of a retry run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryView {
    pub retry: RetryReportView,
    /// When it ran (RFC 3339).
    pub at: String,
}

impl RetryView {
    pub fn new(r: RetryReport, at: String) -> Self {
        Self {
            retry: RetryReportView {
                retried: r.retried,
                processed: r.processed,
                ignored: r.ignored,
                failed: r.failed,
            },
            at,
        }
    }
}

/// Who sent a webhook delivery.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookProvider {
    Clerk,
    Stripe,
}

impl WebhookProvider {
    fn parse(provider: &str) -> Result<Self, AppError> {
        match provider {
            "clerk" => Ok(Self::Clerk),
            "stripe" => Ok(Self::Stripe),
            other => Err(AppError::Internal(format!(
                "unknown webhook provider `{other}`"
            ))),
        }
    }
}

/// Where a stored delivery stands.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Stored, not yet settled.
    Received,
    Processed,
    Ignored,
    Failed,
}

impl DeliveryStatus {
    fn parse(status: &str) -> Result<Self, AppError> {
        Ok(match status {
            "received" => Self::Received,
            "processed" => Self::Processed,
            "ignored" => Self::Ignored,
            "failed" => Self::Failed,
            other => {
                return Err(AppError::Internal(format!(
                    "unknown webhook delivery status `{other}`"
                )))
            }
        })
    }
}

/// How many deliveries of a provider are in a status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryCountView {
    pub provider: WebhookProvider,
    pub status: DeliveryStatus,
    pub count: i64,
}

/// A delivery whose processing failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailedDeliveryView {
    pub provider: WebhookProvider,
    pub event_id: String,
    pub event_type: String,
    pub attempts: i64,
    /// What went wrong (logged detail).
    #[schema(required = true)]
    pub error: Option<String>,
    pub received_at: String,
    #[schema(required = true)]
    pub processed_at: Option<String>,
}

/// Webhook deliveries by provider and status, and the latest failures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookStatusView {
    pub counts: Vec<DeliveryCountView>,
    /// The newest 20 failed deliveries.
    pub latest_failures: Vec<FailedDeliveryView>,
}

impl WebhookStatusView {
    pub fn new(counts: Vec<StatusCount>, failures: Vec<Failure>) -> Result<Self, AppError> {
        Ok(Self {
            counts: counts
                .into_iter()
                .map(|c| {
                    Ok(DeliveryCountView {
                        provider: WebhookProvider::parse(c.provider.as_str())?,
                        status: DeliveryStatus::parse(c.status.as_str())?,
                        count: c.count,
                    })
                })
                .collect::<Result<_, AppError>>()?,
            latest_failures: failures
                .into_iter()
                .map(|f| {
                    Ok(FailedDeliveryView {
                        provider: WebhookProvider::parse(f.provider.as_str())?,
                        event_id: f.event_id,
                        event_type: f.event_type,
                        attempts: f.attempts,
                        error: f.error,
                        received_at: f.received_at,
                        processed_at: f.processed_at,
                    })
                })
                .collect::<Result<_, AppError>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_receipt_leaves_out_a_missing_reason() {
        let view = WebhookReceivedView::try_from(Receipt {
            event_id: "evt_1".into(),
            kind: "invoice.paid".into(),
            status: "processed".into(),
            duplicate: true,
            reason: None,
        })
        .unwrap();
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            json!({"received": true, "event": {"event_id": "evt_1", "type": "invoice.paid",
                   "status": "processed", "duplicate": true}})
        );
    }

    #[test]
    fn stripe_statuses_keep_their_names() {
        for status in ["incomplete_expired", "past_due", "active", "canceled"] {
            let parsed = SubscriptionStatus::parse(status).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), status);
        }
        assert!(SubscriptionStatus::parse("exotic").is_err());
    }
}
