//! Stripe's events, read once into what Tollgate acts on. Nothing else reads a Stripe event's
//! payload: the operator's billing, the token ledger and platforms all receive these values.
//!
//! Reading is lenient past the envelope, as Stripe's objects gain fields and API versions
//! move them: a field that is missing or of another type is `None`, and whoever acts on the
//! event decides whether it can do without it (and says why it ignored the event if not).

use serde_json::Value;

use crate::upstream::stripe::Subscription;

/// A Stripe Event: its envelope, who it is about, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_...`.
    pub id: String,
    /// `type`, as Stripe names it: stored with the delivery and recorded as the cause of what
    /// it changed. What it means is [`Self::data`].
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    /// The platform end user the object's metadata names, if it names one: such an event is
    /// about a platform's end user, whatever its type.
    pub end_user: Option<PlatformEndUser>,
    /// What happened, by the event's type.
    pub data: StripeEvent,
}

/// What an event says happened, by its type, with the fields of its object Tollgate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeEvent {
    /// `checkout.session.completed`.
    CheckoutCompleted(CheckoutSession),
    /// `checkout.session.async_payment_succeeded`: a completed checkout's delayed payment
    /// succeeded.
    CheckoutAsyncPaymentSucceeded(CheckoutSession),
    /// `customer.subscription.created`, `.updated` or `.deleted`.
    SubscriptionChanged {
        change: SubscriptionChange,
        subscription: SubscriptionObject,
    },
    /// `invoice.paid`, `invoice.payment_succeeded` or `invoice.payment_failed`.
    InvoicePayment {
        outcome: InvoiceOutcome,
        invoice: Invoice,
    },
    /// `payment_intent.succeeded`.
    PaymentIntentSucceeded(PaymentIntent),
    /// `charge.refunded`.
    ChargeRefunded(Charge),
    /// `charge.dispute.created`.
    DisputeCreated(Dispute),
    /// Any other type (its name is the event's [`Event::kind`]).
    Other,
}

/// Which `customer.subscription.*` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionChange {
    Created,
    Updated,
    Deleted,
}

/// Which `invoice.*` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceOutcome {
    /// `invoice.paid`.
    Paid,
    /// `invoice.payment_succeeded`.
    PaymentSucceeded,
    /// `invoice.payment_failed`.
    PaymentFailed,
}

/// A platform's end user, as the metadata Tollgate's end-user checkout writes names them:
/// on a Checkout Session or Subscription its own `metadata`; on an Invoice its
/// subscription's (`parent.subscription_details.metadata`, or `subscription_details.metadata`
/// in API versions before 2025). The first of these that has both ids is the one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEndUser {
    /// `platform_id`.
    pub platform_id: String,
    /// `end_user_id`.
    pub end_user_id: String,
    /// `tier`, from the same metadata.
    pub tier: Option<String>,
}

/// The metadata keys Tollgate reads back from the objects its checkouts make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `user_id`: the Tollgate user (set by Tollgate's own checkouts).
    pub user_id: Option<String>,
    /// `userId`: the user as an app's own checkout names them (a Tollgate or Clerk user id).
    pub app_user_id: Option<String>,
    /// `token_pack`: the pack a payment buys.
    pub token_pack: Option<String>,
    /// `tokens`: how many tokens it buys, as a decimal string.
    pub tokens: Option<String>,
}

/// A Checkout Session's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    Payment,
    Subscription,
    Setup,
}

/// A Checkout Session's `payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Paid,
    Unpaid,
    NoPaymentRequired,
}

/// The parts of a Checkout Session Tollgate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_...`.
    pub id: Option<String>,
    /// `None` when missing or not one Tollgate knows.
    pub mode: Option<CheckoutMode>,
    /// `None` when missing or not one Tollgate knows.
    pub payment_status: Option<PaymentStatus>,
    /// `customer`, when it is an id.
    pub customer: Option<String>,
    /// `subscription`, when it is an id.
    pub subscription: Option<String>,
    /// `payment_intent`: its id, or an expanded object's `id`.
    pub payment_intent: Option<String>,
    pub client_reference_id: Option<String>,
    /// `amount_total`, in the currency's smallest unit.
    pub amount_total: Option<u64>,
    pub currency: Option<String>,
    pub metadata: Metadata,
}

/// A subscription event's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionObject {
    /// `sub_...`, even when the rest does not read as a subscription.
    pub id: Option<String>,
    /// `status`, even when the rest does not read as a subscription.
    pub status: Option<String>,
    pub metadata: Metadata,
    /// The subscription, when the object reads as one ([`Subscription::from_object`]).
    pub subscription: Option<Subscription>,
}

/// The parts of an Invoice Tollgate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invoice {
    /// `in_...`.
    pub id: Option<String>,
    /// Its subscription's id: `subscription`, or `parent.subscription_details.subscription`
    /// in API versions from 2025.
    pub subscription: Option<String>,
    /// `billing_reason`: `subscription_create` for a subscription's first invoice.
    pub billing_reason: Option<String>,
    /// `amount_paid`, in the currency's smallest unit.
    pub amount_paid: Option<u64>,
    pub currency: Option<String>,
}

/// The parts of a PaymentIntent Tollgate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentIntent {
    /// `pi_...`.
    pub id: Option<String>,
    pub status: Option<String>,
    pub metadata: Metadata,
}

/// The parts of a Charge Tollgate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charge {
    /// `ch_...`.
    pub id: Option<String>,
    /// `payment_intent`: its id, or an expanded object's `id`.
    pub payment_intent: Option<String>,
    /// What was charged, in the currency's smallest unit.
    pub amount: Option<i64>,
    /// What has been refunded of it so far (cumulative).
    pub amount_refunded: Option<i64>,
}

/// The parts of a Dispute Tollgate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispute {
    /// `dp_...` (`du_...` in older accounts).
    pub id: Option<String>,
    /// `charge`: its id, or an expanded object's `id`.
    pub charge: Option<String>,
    /// `payment_intent`: its id, or an expanded object's `id`.
    pub payment_intent: Option<String>,
    /// What is disputed, in the currency's smallest unit.
    pub amount: Option<i64>,
    /// `reason`: `fraudulent`, `general`, ...
    pub reason: Option<String>,
}

impl Event {
    /// Reads an Event; `Err` names what is missing from its envelope (`id`, `type`,
    /// `created`, `data.object`). What the object lacks does not fail it.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("not a JSON event: {e}"))?;
        let text = |field: &str| {
            value
                .get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 255)
                .map(str::to_owned)
                .ok_or_else(|| format!("`{field}` is missing or not a string"))
        };
        let id = text("id")?;
        let kind = text("type")?;
        let created = value
            .get("created")
            .and_then(Value::as_i64)
            .ok_or("`created` is missing or not an integer")?;
        let object = value
            .pointer("/data/object")
            .filter(|o| o.is_object())
            .ok_or("`data.object` is missing")?;
        Ok(Self {
            end_user: end_user(object),
            data: StripeEvent::read(&kind, object),
            id,
            kind,
            created,
        })
    }
}

impl StripeEvent {
    /// What an event of type `kind` about `object` says.
    fn read(kind: &str, object: &Value) -> Self {
        match kind {
            "checkout.session.completed" => Self::CheckoutCompleted(CheckoutSession::read(object)),
            "checkout.session.async_payment_succeeded" => {
                Self::CheckoutAsyncPaymentSucceeded(CheckoutSession::read(object))
            }
            "customer.subscription.created" => {
                Self::subscription(SubscriptionChange::Created, object)
            }
            "customer.subscription.updated" => {
                Self::subscription(SubscriptionChange::Updated, object)
            }
            "customer.subscription.deleted" => {
                Self::subscription(SubscriptionChange::Deleted, object)
            }
            "invoice.paid" => Self::invoice(InvoiceOutcome::Paid, object),
            "invoice.payment_succeeded" => Self::invoice(InvoiceOutcome::PaymentSucceeded, object),
            "invoice.payment_failed" => Self::invoice(InvoiceOutcome::PaymentFailed, object),
            "payment_intent.succeeded" => Self::PaymentIntentSucceeded(PaymentIntent {
                id: text(object, "id"),
                status: text(object, "status"),
                metadata: Metadata::read(object),
            }),
            "charge.refunded" => Self::ChargeRefunded(Charge {
                id: text(object, "id"),
                payment_intent: id_of(object, "payment_intent"),
                amount: object.get("amount").and_then(Value::as_i64),
                amount_refunded: object.get("amount_refunded").and_then(Value::as_i64),
            }),
            "charge.dispute.created" => Self::DisputeCreated(Dispute {
                id: text(object, "id"),
                charge: id_of(object, "charge"),
                payment_intent: id_of(object, "payment_intent"),
                amount: object.get("amount").and_then(Value::as_i64),
                reason: text(object, "reason"),
            }),
            _ => Self::Other,
        }
    }

    fn subscription(change: SubscriptionChange, object: &Value) -> Self {
        Self::SubscriptionChanged {
            change,
            subscription: SubscriptionObject {
                id: text(object, "id"),
                status: text(object, "status"),
                metadata: Metadata::read(object),
                subscription: Subscription::from_object(object),
            },
        }
    }

    fn invoice(outcome: InvoiceOutcome, object: &Value) -> Self {
        Self::InvoicePayment {
            outcome,
            invoice: Invoice {
                id: text(object, "id"),
                subscription: text(object, "subscription").or_else(|| {
                    object
                        .get("parent")
                        .and_then(|p| p.get("subscription_details"))
                        .and_then(|d| text(d, "subscription"))
                }),
                billing_reason: text(object, "billing_reason"),
                amount_paid: object.get("amount_paid").and_then(Value::as_u64),
                currency: text(object, "currency"),
            },
        }
    }

    /// Whether the event is about a one-time payment (a token pack, its refund or dispute)
    /// rather than a subscription: a payment-mode checkout, a delayed checkout payment, a
    /// payment intent, a refunded or disputed charge.
    pub fn is_one_time_payment(&self) -> bool {
        match self {
            Self::CheckoutCompleted(session) => session.mode == Some(CheckoutMode::Payment),
            Self::CheckoutAsyncPaymentSucceeded(_)
            | Self::PaymentIntentSucceeded(_)
            | Self::ChargeRefunded(_)
            | Self::DisputeCreated(_) => true,
            Self::SubscriptionChanged { .. } | Self::InvoicePayment { .. } | Self::Other => false,
        }
    }
}

impl CheckoutSession {
    fn read(object: &Value) -> Self {
        Self {
            id: text(object, "id"),
            mode: match object.get("mode").and_then(Value::as_str) {
                Some("payment") => Some(CheckoutMode::Payment),
                Some("subscription") => Some(CheckoutMode::Subscription),
                Some("setup") => Some(CheckoutMode::Setup),
                _ => None,
            },
            payment_status: match object.get("payment_status").and_then(Value::as_str) {
                Some("paid") => Some(PaymentStatus::Paid),
                Some("unpaid") => Some(PaymentStatus::Unpaid),
                Some("no_payment_required") => Some(PaymentStatus::NoPaymentRequired),
                _ => None,
            },
            customer: text(object, "customer"),
            subscription: text(object, "subscription"),
            payment_intent: id_of(object, "payment_intent"),
            client_reference_id: text(object, "client_reference_id"),
            amount_total: object.get("amount_total").and_then(Value::as_u64),
            currency: text(object, "currency"),
            metadata: Metadata::read(object),
        }
    }

    /// Paid, or needing no payment (a trial, a free price).
    pub fn is_settled(&self) -> bool {
        matches!(
            self.payment_status,
            Some(PaymentStatus::Paid | PaymentStatus::NoPaymentRequired)
        )
    }
}

impl Metadata {
    /// The object's own `metadata`.
    fn read(object: &Value) -> Self {
        let Some(metadata) = object.get("metadata") else {
            return Self::default();
        };
        Self {
            user_id: text(metadata, "user_id"),
            app_user_id: text(metadata, "userId"),
            token_pack: text(metadata, "token_pack"),
            tokens: text(metadata, "tokens"),
        }
    }
}

/// Where an object carries the metadata of Tollgate's end-user checkout, in the order read.
const END_USER_METADATA_AT: [&str; 3] = [
    "/metadata",
    "/parent/subscription_details/metadata",
    "/subscription_details/metadata",
];

/// The end user the object's metadata names, if it names one.
fn end_user(object: &Value) -> Option<PlatformEndUser> {
    END_USER_METADATA_AT.iter().find_map(|at| {
        let metadata = object.pointer(at)?;
        Some(PlatformEndUser {
            platform_id: text(metadata, "platform_id")?,
            end_user_id: text(metadata, "end_user_id")?,
            tier: text(metadata, "tier"),
        })
    })
}

/// A string field.
fn text(object: &Value, field: &str) -> Option<String> {
    object.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// An id that is a string, or an expanded object's `id`.
fn id_of(object: &Value, field: &str) -> Option<String> {
    let value = object.get(field)?;
    value
        .as_str()
        .or_else(|| value.get("id").and_then(Value::as_str))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::stripe::SubscriptionItem;
    use serde_json::json;

    /// An Event as Stripe sends it to a webhook endpoint.
    fn envelope(kind: &str, object: Value) -> Value {
        json!({
            "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": 1_686_089_970,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
        })
    }

    fn parse(value: &Value) -> Result<Event, String> {
        Event::parse(value.to_string().as_bytes())
    }

    fn data(kind: &str, object: Value) -> StripeEvent {
        parse(&envelope(kind, object)).expect("an event").data
    }

    fn checkout_session() -> Value {
        json!({
            "id": "cs_test_a1b2",
            "object": "checkout.session",
            "amount_subtotal": 1500,
            "amount_total": 1500,
            "client_reference_id": "usr_abc",
            "currency": "usd",
            "customer": "cus_NffrFeUfNV2Hib",
            "invoice": null,
            "metadata": { "user_id": "usr_abc", "token_pack": "starter", "tokens": "50000" },
            "mode": "payment",
            "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "payment_status": "paid",
            "status": "complete",
            "subscription": null,
        })
    }

    fn subscription_object() -> Value {
        json!({
            "id": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
            "object": "subscription",
            "cancel_at_period_end": false,
            "customer": "cus_Na6dX7aXxi11N4",
            "items": {
                "object": "list",
                "data": [{
                    "id": "si_Na6dzxczY5fwHx",
                    "object": "subscription_item",
                    "current_period_end": 1_682_370_520,
                    "price": { "id": "price_pro", "object": "price" },
                    "quantity": 1,
                }],
                "has_more": false,
            },
            "metadata": { "user_id": "usr_abc", "plan": "pro" },
            "status": "active",
        })
    }

    #[test]
    fn the_envelope_is_read_and_kept() {
        let event = parse(&envelope("checkout.session.completed", checkout_session())).unwrap();
        assert_eq!(event.id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(event.kind, "checkout.session.completed");
        assert_eq!(event.created, 1_686_089_970);
        assert_eq!(event.end_user, None);
    }

    #[test]
    fn a_completed_checkout_carries_its_session() {
        let StripeEvent::CheckoutCompleted(session) =
            data("checkout.session.completed", checkout_session())
        else {
            panic!("not a completed checkout")
        };
        assert_eq!(
            session,
            CheckoutSession {
                id: Some("cs_test_a1b2".into()),
                mode: Some(CheckoutMode::Payment),
                payment_status: Some(PaymentStatus::Paid),
                customer: Some("cus_NffrFeUfNV2Hib".into()),
                subscription: None,
                payment_intent: Some("pi_3MtwBwLkdIwHu7ix28a3tqPa".into()),
                client_reference_id: Some("usr_abc".into()),
                amount_total: Some(1500),
                currency: Some("usd".into()),
                metadata: Metadata {
                    user_id: Some("usr_abc".into()),
                    app_user_id: None,
                    token_pack: Some("starter".into()),
                    tokens: Some("50000".into()),
                },
            }
        );
        assert!(session.is_settled());
    }

    #[test]
    fn a_subscription_checkout_names_its_subscription_and_app_user() {
        let mut object = checkout_session();
        object["mode"] = json!("subscription");
        object["payment_status"] = json!("no_payment_required");
        object["subscription"] = json!("sub_1MowQVLkdIwHu7ixeRlqHVzs");
        object["payment_intent"] = json!(null);
        object["metadata"] = json!({ "userId": "user_2abc" });
        let StripeEvent::CheckoutCompleted(session) = data("checkout.session.completed", object)
        else {
            panic!("not a completed checkout")
        };
        assert_eq!(session.mode, Some(CheckoutMode::Subscription));
        assert_eq!(
            session.subscription.as_deref(),
            Some("sub_1MowQVLkdIwHu7ixeRlqHVzs")
        );
        assert_eq!(session.payment_intent, None);
        assert_eq!(session.metadata.app_user_id.as_deref(), Some("user_2abc"));
        assert_eq!(session.metadata.user_id, None);
        assert!(session.is_settled());
    }

    #[test]
    fn a_delayed_checkout_payment_carries_its_session() {
        let mut object = checkout_session();
        // An expanded payment intent is read by its id.
        object["payment_intent"] = json!({ "id": "pi_expanded", "object": "payment_intent" });
        let StripeEvent::CheckoutAsyncPaymentSucceeded(session) =
            data("checkout.session.async_payment_succeeded", object)
        else {
            panic!("not a delayed payment")
        };
        assert_eq!(session.payment_intent.as_deref(), Some("pi_expanded"));
    }

    #[test]
    fn an_unpaid_or_odd_checkout_is_not_settled() {
        let mut object = checkout_session();
        object["payment_status"] = json!("unpaid");
        object["mode"] = json!("setup");
        let StripeEvent::CheckoutCompleted(session) = data("checkout.session.completed", object)
        else {
            panic!("not a completed checkout")
        };
        assert_eq!(session.payment_status, Some(PaymentStatus::Unpaid));
        assert_eq!(session.mode, Some(CheckoutMode::Setup));
        assert!(!session.is_settled());
        let StripeEvent::CheckoutCompleted(session) = data(
            "checkout.session.completed",
            json!({ "mode": "bulk", "payment_status": "maybe", "customer": { "id": "cus_x" } }),
        ) else {
            panic!("not a completed checkout")
        };
        assert_eq!(session.mode, None);
        assert_eq!(session.payment_status, None);
        assert!(!session.is_settled());
        // An expanded customer is not read as an id.
        assert_eq!(session.customer, None);
    }

    #[test]
    fn subscription_events_carry_the_subscription() {
        for (kind, change) in [
            ("customer.subscription.created", SubscriptionChange::Created),
            ("customer.subscription.updated", SubscriptionChange::Updated),
            ("customer.subscription.deleted", SubscriptionChange::Deleted),
        ] {
            let StripeEvent::SubscriptionChanged {
                change: read,
                subscription,
            } = data(kind, subscription_object())
            else {
                panic!("{kind}: not a subscription change")
            };
            assert_eq!(read, change);
            assert_eq!(
                subscription,
                SubscriptionObject {
                    id: Some("sub_1MowQVLkdIwHu7ixeRlqHVzs".into()),
                    status: Some("active".into()),
                    metadata: Metadata {
                        user_id: Some("usr_abc".into()),
                        ..Metadata::default()
                    },
                    subscription: Some(Subscription {
                        id: "sub_1MowQVLkdIwHu7ixeRlqHVzs".into(),
                        customer: "cus_Na6dX7aXxi11N4".into(),
                        status: "active".into(),
                        cancel_at_period_end: false,
                        current_period_end: Some(1_682_370_520),
                        items: vec![SubscriptionItem {
                            id: "si_Na6dzxczY5fwHx".into(),
                            price_id: "price_pro".into(),
                        }],
                        user_id: Some("usr_abc".into()),
                    }),
                }
            );
        }
    }

    #[test]
    fn a_subscription_object_that_does_not_read_keeps_its_id_and_status() {
        let StripeEvent::SubscriptionChanged { subscription, .. } = data(
            "customer.subscription.deleted",
            json!({ "id": "sub_1", "object": "subscription", "status": "canceled" }),
        ) else {
            panic!("not a subscription change")
        };
        assert_eq!(subscription.id.as_deref(), Some("sub_1"));
        assert_eq!(subscription.status.as_deref(), Some("canceled"));
        assert_eq!(subscription.subscription, None, "it has no customer");
    }

    fn invoice_object() -> Value {
        json!({
            "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
            "object": "invoice",
            "amount_due": 999,
            "amount_paid": 999,
            "billing_reason": "subscription_cycle",
            "currency": "usd",
            "customer": "cus_NeZwdNtLEOXuvB",
            "parent": {
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {
                    "metadata": { "platform_id": "plt_1", "end_user_id": "eu_1", "tier": "pro" },
                    "subscription": "sub_from_parent",
                },
            },
            "status": "paid",
        })
    }

    #[test]
    fn invoice_events_carry_the_invoice() {
        for (kind, outcome) in [
            ("invoice.paid", InvoiceOutcome::Paid),
            (
                "invoice.payment_succeeded",
                InvoiceOutcome::PaymentSucceeded,
            ),
            ("invoice.payment_failed", InvoiceOutcome::PaymentFailed),
        ] {
            let StripeEvent::InvoicePayment {
                outcome: read,
                invoice,
            } = data(kind, invoice_object())
            else {
                panic!("{kind}: not an invoice payment")
            };
            assert_eq!(read, outcome);
            assert_eq!(
                invoice,
                Invoice {
                    id: Some("in_1MtHbELkdIwHu7ixl4OzzPMv".into()),
                    subscription: Some("sub_from_parent".into()),
                    billing_reason: Some("subscription_cycle".into()),
                    amount_paid: Some(999),
                    currency: Some("usd".into()),
                }
            );
        }
    }

    #[test]
    fn an_invoices_own_subscription_comes_before_its_parents() {
        let mut object = invoice_object();
        object["subscription"] = json!("sub_own");
        object["amount_paid"] = json!(-1);
        let StripeEvent::InvoicePayment { invoice, .. } = data("invoice.paid", object) else {
            panic!("not an invoice payment")
        };
        assert_eq!(invoice.subscription.as_deref(), Some("sub_own"));
        assert_eq!(invoice.amount_paid, None, "not a count of cents");
    }

    #[test]
    fn a_succeeded_payment_intent_carries_its_metadata() {
        let object = json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "object": "payment_intent",
            "amount": 1500,
            "currency": "usd",
            "customer": "cus_NffrFeUfNV2Hib",
            "latest_charge": "ch_3MtwBwLkdIwHu7ix0snN0B15",
            "metadata": { "user_id": "usr_abc", "token_pack": "starter", "tokens": "50000" },
            "status": "succeeded",
        });
        assert_eq!(
            data("payment_intent.succeeded", object),
            StripeEvent::PaymentIntentSucceeded(PaymentIntent {
                id: Some("pi_3MtwBwLkdIwHu7ix28a3tqPa".into()),
                status: Some("succeeded".into()),
                metadata: Metadata {
                    user_id: Some("usr_abc".into()),
                    app_user_id: None,
                    token_pack: Some("starter".into()),
                    tokens: Some("50000".into()),
                },
            })
        );
    }

    #[test]
    fn a_refunded_charge_carries_its_amounts() {
        let object = json!({
            "id": "ch_3MtwBwLkdIwHu7ix0snN0B15",
            "object": "charge",
            "amount": 1500,
            "amount_captured": 1500,
            "amount_refunded": 500,
            "currency": "usd",
            "metadata": {},
            "paid": true,
            "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "refunded": false,
            "status": "succeeded",
        });
        assert_eq!(
            data("charge.refunded", object),
            StripeEvent::ChargeRefunded(Charge {
                id: Some("ch_3MtwBwLkdIwHu7ix0snN0B15".into()),
                payment_intent: Some("pi_3MtwBwLkdIwHu7ix28a3tqPa".into()),
                amount: Some(1500),
                amount_refunded: Some(500),
            })
        );
    }

    #[test]
    fn a_dispute_carries_its_charge_payment_and_reason() {
        let object = json!({
            "id": "dp_1MtJUT2eZvKYlo2CNaw2HvEv",
            "object": "dispute",
            "amount": 1500,
            "balance_transactions": [],
            "charge": { "id": "ch_expanded", "object": "charge" },
            "currency": "usd",
            "is_charge_refundable": false,
            "metadata": {},
            "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "reason": "fraudulent",
            "status": "needs_response",
        });
        assert_eq!(
            data("charge.dispute.created", object),
            StripeEvent::DisputeCreated(Dispute {
                id: Some("dp_1MtJUT2eZvKYlo2CNaw2HvEv".into()),
                charge: Some("ch_expanded".into()),
                payment_intent: Some("pi_3MtwBwLkdIwHu7ix28a3tqPa".into()),
                amount: Some(1500),
                reason: Some("fraudulent".into()),
            })
        );
    }

    #[test]
    fn other_types_are_other() {
        for kind in [
            "customer.created",
            "customer.subscription.trial_will_end",
            "invoice.finalized",
            "checkout.session.expired",
            "charge.succeeded",
        ] {
            assert_eq!(
                data(kind, json!({ "id": "x" })),
                StripeEvent::Other,
                "{kind}"
            );
        }
    }

    #[test]
    fn objects_missing_fields_read_as_nothing_rather_than_failing() {
        let object = json!({ "id": 7, "metadata": "not an object", "amount": "1500" });
        assert_eq!(
            data("charge.refunded", object.clone()),
            StripeEvent::ChargeRefunded(Charge::default())
        );
        assert_eq!(
            data("payment_intent.succeeded", object.clone()),
            StripeEvent::PaymentIntentSucceeded(PaymentIntent::default())
        );
        assert_eq!(
            data("checkout.session.completed", object.clone()),
            StripeEvent::CheckoutCompleted(CheckoutSession::default())
        );
        assert_eq!(
            data("invoice.payment_failed", object),
            StripeEvent::InvoicePayment {
                outcome: InvoiceOutcome::PaymentFailed,
                invoice: Invoice::default(),
            }
        );
    }

    #[test]
    fn a_malformed_envelope_is_refused_naming_what_is_wrong() {
        let good = envelope("charge.refunded", json!({ "id": "ch_1" }));
        assert!(parse(&good).is_ok());
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut value = good.clone();
            edit(&mut value);
            parse(&value).unwrap_err()
        };
        let missing_id = broken(&|v| {
            v.as_object_mut().unwrap().remove("id");
        });
        assert!(missing_id.contains("`id`"), "{missing_id}");
        assert!(broken(&|v| v["id"] = json!("")).contains("`id`"));
        assert!(broken(&|v| v["id"] = json!("e".repeat(256))).contains("`id`"));
        assert!(broken(&|v| v["type"] = json!(3)).contains("`type`"));
        assert!(broken(&|v| v["created"] = json!("1686089970")).contains("`created`"));
        assert!(broken(&|v| v["created"] = json!(1.5)).contains("`created`"));
        assert!(broken(&|v| v["data"] = json!({})).contains("`data.object`"));
        assert!(broken(&|v| v["data"]["object"] = json!("ch_1")).contains("`data.object`"));
        assert!(Event::parse(b"{not json")
            .unwrap_err()
            .starts_with("not a JSON event"));
        assert!(Event::parse(b"[]").unwrap_err().contains("`id`"));
    }

    #[test]
    fn the_end_user_is_read_from_the_first_metadata_naming_one() {
        let named = |platform: &str| PlatformEndUser {
            platform_id: platform.into(),
            end_user_id: "eu_1".into(),
            tier: Some("pro".into()),
        };
        let end_user = |object: Value| parse(&envelope("invoice.paid", object)).unwrap().end_user;
        // An invoice names it in its subscription's metadata, in either API version's place.
        assert_eq!(end_user(invoice_object()), Some(named("plt_1")));
        let before_2025 = json!({
            "id": "in_1",
            "subscription_details": {
                "metadata": { "platform_id": "plt_old", "end_user_id": "eu_1", "tier": "pro" },
            },
        });
        assert_eq!(end_user(before_2025), Some(named("plt_old")));
        // Its own metadata comes first, but only when it names both.
        let mut object = invoice_object();
        object["metadata"] = json!({ "platform_id": "plt_own" });
        assert_eq!(end_user(object.clone()), Some(named("plt_1")));
        object["metadata"] = json!({ "platform_id": "plt_own", "end_user_id": "eu_1" });
        assert_eq!(
            end_user(object),
            Some(PlatformEndUser {
                tier: None,
                ..named("plt_own")
            })
        );
        // Whatever the type.
        let other = parse(&envelope(
            "customer.updated",
            json!({ "metadata": { "platform_id": "plt_1", "end_user_id": "eu_1" } }),
        ))
        .unwrap();
        assert_eq!(other.data, StripeEvent::Other);
        assert!(other.end_user.is_some());
        assert_eq!(end_user(json!({ "metadata": {} })), None);
    }

    #[test]
    fn one_time_payments_are_told_from_subscription_events() {
        let mut subscription_checkout = checkout_session();
        subscription_checkout["mode"] = json!("subscription");
        let cases = [
            ("checkout.session.completed", checkout_session(), true),
            (
                "checkout.session.completed",
                subscription_checkout.clone(),
                false,
            ),
            (
                "checkout.session.async_payment_succeeded",
                subscription_checkout,
                true,
            ),
            ("payment_intent.succeeded", json!({}), true),
            ("charge.refunded", json!({}), true),
            ("charge.dispute.created", json!({}), true),
            (
                "customer.subscription.updated",
                subscription_object(),
                false,
            ),
            ("invoice.payment_succeeded", invoice_object(), false),
            ("customer.created", json!({}), false),
        ];
        for (kind, object, one_time) in cases {
            assert_eq!(data(kind, object).is_one_time_payment(), one_time, "{kind}");
        }
    }
}
