//! A fake of the part of Stripe's API that billing calls, in the shapes Stripe documents (API
//! version 2024-06-20, the version its events carry):
//!
//! - `POST /v1/customers` creates a Customer (`cus_…`).
//! - `POST /v1/checkout/sessions` creates a hosted Checkout Session (`cs_test_…`,
//!   `status: "open"`, `payment_status: "unpaid"`) for prices registered with
//!   [`FakeStripe::add_price`] (recurring: `subscription` mode), or in `payment` mode for
//!   one-time prices given inline (`line_items[N][price_data][currency|unit_amount|
//!   product_data][name]]`), with `payment_intent_data[metadata]` for its PaymentIntent.
//! - `POST /v1/billing_portal/sessions` creates a Customer Portal session (`bps_…`).
//! - `GET /v1/prices/{id}` answers a registered Price (monthly, recurring, USD).
//! - `GET /v1/subscriptions/{id}` answers the Subscription.
//! - `POST /v1/subscriptions/{id}` updates it: `cancel_at_period_end`, `items[N][…]` (change
//!   an item's price or quantity, add or delete items), `proration_behavior`, `metadata[…]`.
//! - `DELETE /v1/subscriptions/{id}` cancels it at once.
//!
//! Like Stripe, the fake takes `application/x-www-form-urlencoded` bodies with bracketed keys
//! (`line_items[0][price]`, `metadata[user_id]`), rejects parameters the endpoint does not have
//! (`Received unknown parameter: …`), and needs `Authorization: Bearer <secret key>` on every
//! call. A POST with an `Idempotency-Key` that succeeded is answered again, byte for byte, when
//! the key comes back with the same parameters (with `Idempotent-Replayed: true`, as Stripe
//! marks a replay; the object in it is as it was then); the same key with other parameters or on
//! another endpoint is a 400 `idempotency_error`. As Stripe documents, only requests that ran
//! are saved: a request rejected by validation or by an injected fault may be retried with its
//! key.
//!
//! Errors are Stripe's envelope, `{"error": {"type", "code"?, "message", "param"?, "doc_url"?}}`:
//! 401 without the right bearer, 400 for parameters Stripe would reject, 404
//! `resource_missing` for an unknown price or subscription, and 404 for any other path.
//!
//! What happens outside the API is played by tests: [`FakeStripe::complete_checkout`] is the
//! customer paying, [`FakeStripe::invoice`] a renewal's invoice,
//! [`FakeStripe::set_subscription_status`] a failed charge, [`FakeStripe::refund`] a refund
//! of a one-time payment (its `charge.refunded` Event, with the cumulative `amount_refunded`),
//! [`FakeStripe::dispute`] a cardholder disputing it (its `charge.dispute.created` Event),
//! [`FakeStripe::payment_intent_succeeded`] that payment's other Event;
//! [`FakeStripe::event`] builds the
//! Event Stripe would send to the webhook and [`sign`] its `Stripe-Signature` header.
//! [`FakeStripe::fail_next`] makes one particular request fail without disturbing cases that
//! run in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand_core::RngCore;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::{FakeResponse, FakeUpstream, Fault, Recorded};

/// The API version of the Events the fake builds.
const API_VERSION: &str = "2024-06-20";

/// The currency of every price.
const CURRENCY: &str = "usd";

/// A billing period: every price is monthly, and the fake's months are 30 days.
const PERIOD_SECS: i64 = 30 * 24 * 60 * 60;

/// How long a Checkout Session stays open by default.
const CHECKOUT_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// The longest `Idempotency-Key` Stripe accepts.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The statuses a Subscription can have.
const SUBSCRIPTION_STATUSES: &[&str] = &[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];

/// Parameters `POST /v1/customers` takes (top-level names).
const CUSTOMER_PARAMS: &[&str] = &[
    "description",
    "email",
    "expand",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
];

/// Parameters `POST /v1/checkout/sessions` takes (top-level names). The ones the fake does
/// not model only change what the hosted page shows.
const CHECKOUT_PARAMS: &[&str] = &[
    "allow_promotion_codes",
    "automatic_tax",
    "billing_address_collection",
    "cancel_url",
    "client_reference_id",
    "consent_collection",
    "custom_text",
    "customer",
    "customer_email",
    "customer_update",
    "expand",
    "expires_at",
    "line_items",
    "locale",
    "metadata",
    "mode",
    "payment_intent_data",
    "payment_method_collection",
    "payment_method_types",
    "phone_number_collection",
    "subscription_data",
    "success_url",
    "tax_id_collection",
];

/// Fields of a Checkout Session's `line_items[N]`.
const LINE_ITEM_FIELDS: &[&str] = &[
    "adjustable_quantity",
    "price",
    "price_data",
    "quantity",
    "tax_rates",
];

/// Fields of a line item's `price_data` (a one-time price given inline).
const PRICE_DATA_FIELDS: &[&str] = &["currency", "product", "product_data", "unit_amount"];

/// Fields of a Checkout Session's `payment_intent_data` (payment mode).
const PAYMENT_INTENT_DATA_FIELDS: &[&str] = &[
    "capture_method",
    "description",
    "metadata",
    "receipt_email",
    "setup_future_usage",
    "statement_descriptor",
];

/// Fields of a Checkout Session's `subscription_data`.
const SUBSCRIPTION_DATA_FIELDS: &[&str] = &["description", "metadata", "trial_period_days"];

/// Parameters `POST /v1/billing_portal/sessions` takes.
const PORTAL_PARAMS: &[&str] = &[
    "configuration",
    "customer",
    "expand",
    "locale",
    "return_url",
];

/// Parameters `POST /v1/subscriptions/{id}` takes (top-level names).
const UPDATE_PARAMS: &[&str] = &[
    "cancel_at_period_end",
    "cancellation_details",
    "expand",
    "items",
    "metadata",
    "payment_behavior",
    "proration_behavior",
    "proration_date",
];

/// What a canceled subscription still lets an update change.
const CANCELED_UPDATE_PARAMS: &[&str] = &["cancellation_details", "expand", "metadata"];

/// Fields of a subscription update's `items[N]`.
const ITEM_FIELDS: &[&str] = &["deleted", "id", "metadata", "price", "quantity"];

/// Parameters `DELETE /v1/subscriptions/{id}` takes.
const CANCEL_PARAMS: &[&str] = &["cancellation_details", "expand", "invoice_now", "prorate"];

/// Fields of `cancellation_details`.
const CANCELLATION_FIELDS: &[&str] = &["comment", "feedback"];

/// Decoded form parameters, in the order they were sent.
type Form = Vec<(String, String)>;

/// An answer or the error response to send instead.
type Answer<T = Value> = Result<T, FakeResponse>;

/// A price tests registered.
struct Price {
    id: String,
    product: String,
    unit_amount: i64,
    created: i64,
}

/// A Checkout Session and what completing it needs.
struct Session {
    object: Value,
    /// `(price, quantity)` per line item.
    line_items: Vec<(String, u64)>,
    /// `subscription_data[metadata]`, for the subscription the session creates.
    subscription_metadata: Map<String, Value>,
    /// `subscription_data[trial_period_days]`.
    trial_days: Option<i64>,
    /// `payment_intent_data[metadata]`, for the payment intent a payment-mode session
    /// creates.
    payment_intent_metadata: Map<String, Value>,
}

/// A one-time payment: a payment-mode Checkout Session's PaymentIntent and its Charge.
struct Payment {
    id: String,
    charge: String,
    customer: String,
    amount: i64,
    currency: String,
    amount_refunded: i64,
    metadata: Map<String, Value>,
    created: i64,
}

/// One item of a subscription.
#[derive(Clone)]
struct Item {
    id: String,
    price: String,
    quantity: u64,
    created: i64,
}

struct Subscription {
    id: String,
    customer: String,
    status: String,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    cancellation_reason: Option<&'static str>,
    cancellation_comment: Option<String>,
    cancellation_feedback: Option<String>,
    created: i64,
    current_period_start: i64,
    current_period_end: i64,
    trial_start: Option<i64>,
    trial_end: Option<i64>,
    items: Vec<Item>,
    metadata: Map<String, Value>,
    latest_invoice: Option<String>,
}

/// A saved answer to a POST that carried an `Idempotency-Key`.
struct Saved {
    method: String,
    path: String,
    /// The parameters, sorted: Stripe compares parameters, not their order.
    params: Form,
    response: FakeResponse,
}

/// A fault waiting for the first request with its method that mentions its needle.
struct TargetedFault {
    method: String,
    needle: String,
    fault: Fault,
}

#[derive(Default)]
struct StripeState {
    prices: HashMap<String, Price>,
    /// Every customer created, in creation order.
    customers: Vec<Value>,
    sessions: HashMap<String, Session>,
    /// Payment intents of completed payment-mode sessions, by id.
    payments: HashMap<String, Payment>,
    subscriptions: HashMap<String, Subscription>,
    idempotent: HashMap<String, Saved>,
    faults: Vec<TargetedFault>,
    /// The id of the (only) portal configuration.
    portal_configuration: String,
}

/// The fake Stripe: a [`FakeUpstream`] serving the API under `/v1`.
pub struct FakeStripe {
    upstream: FakeUpstream,
    state: Arc<Mutex<StripeState>>,
}

impl FakeStripe {
    /// Starts the fake with no prices, customers or subscriptions; every call must carry
    /// `Authorization: Bearer <secret_key>`.
    pub fn start(secret_key: &str) -> Self {
        Self::start_on(secret_key, "127.0.0.1:0").expect("bind the fake stripe")
    }

    /// Like [`Self::start`], listening on `address`.
    pub fn start_on(secret_key: &str, address: &str) -> Result<Self, String> {
        let state = Arc::new(Mutex::new(StripeState {
            portal_configuration: random_id("bpc_", 24),
            ..StripeState::default()
        }));
        let upstream = {
            let state = Arc::clone(&state);
            let authorization = format!("Bearer {secret_key}");
            FakeUpstream::start_on("stripe", address, move |request| {
                respond(request, &state, &authorization)
            })?
        };
        Ok(Self { upstream, state })
    }

    /// The underlying server, for `received()`, `inject()` and `base_url()` (the API's base
    /// URL; its paths start with `/v1`).
    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// Makes `price_id` a known monthly, licensed price of `unit_amount` cents (USD), of a
    /// product of its own. Registering a price again changes its amount.
    pub fn add_price(&self, price_id: &str, unit_amount: i64) {
        let mut state = self.state.lock().unwrap();
        let product = state
            .prices
            .get(price_id)
            .map(|p| p.product.clone())
            .unwrap_or_else(|| random_id("prod_", 14));
        state.prices.insert(
            price_id.to_owned(),
            Price {
                id: price_id.to_owned(),
                product,
                unit_amount,
                created: now_secs(),
            },
        );
    }

    /// The decoded form body of every request received with this method whose path starts
    /// with `path_prefix`, in the order received (failed ones too).
    pub fn form(&self, method: &str, path_prefix: &str) -> Vec<Vec<(String, String)>> {
        self.upstream
            .received()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .map(|r| decode_form(&r.body))
            .collect()
    }

    /// The `Idempotency-Key` of every POST (the requests Stripe takes keys on) whose path
    /// starts with `path_prefix`, in the order received; `None` for a POST without one.
    pub fn idempotency_keys(&self, path_prefix: &str) -> Vec<Option<String>> {
        self.upstream
            .received()
            .iter()
            .filter(|r| r.method == "POST" && r.path.starts_with(path_prefix))
            .map(|r| r.header("idempotency-key").map(str::to_owned))
            .collect()
    }

    /// The Customer with this id.
    pub fn customer(&self, id: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state.customers.iter().find(|c| c["id"] == id).cloned()
    }

    /// Every Customer with this email, in creation order.
    pub fn customers_with_email(&self, email: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state
            .customers
            .iter()
            .filter(|c| c["email"] == email)
            .cloned()
            .collect()
    }

    /// The Checkout Session with this id.
    pub fn session(&self, id: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state.sessions.get(id).map(|s| s.object.clone())
    }

    /// The Subscription with this id, as the API shows it.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .subscriptions
            .get(id)
            .map(|s| subscription_object(&state, s))
    }

    /// The customer pays: the open Checkout Session `session_id` completes. In `subscription`
    /// mode this creates a subscription for the session's customer and line items, `active`
    /// (`trialing` with `subscription_data[trial_period_days]`), whose metadata is the
    /// session's `subscription_data[metadata]` and whose latest invoice is paid. A session
    /// without a customer gets one, with its `customer_email`. The session becomes
    /// `status: "complete"`, `payment_status: "paid"` (`"no_payment_required"` for a trial or
    /// in `setup` mode) with `subscription` set. In `payment` mode it is `paid` with a new
    /// `payment_intent` (`pi_…`, with a charge `ch_…`) whose metadata is the session's
    /// `payment_intent_data[metadata]`. Returns the `checkout.session.completed`
    /// Event. Panics when no open session has this id.
    pub fn complete_checkout(&self, session_id: &str) -> Value {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        let now = now_secs();
        let session = state
            .sessions
            .get(session_id)
            .unwrap_or_else(|| panic!("the fake Stripe has no Checkout Session {session_id}"));
        assert_eq!(
            session.object["status"], "open",
            "Checkout Session {session_id} is not open"
        );
        let customer = match session.object["customer"].as_str() {
            Some(customer) => customer.to_owned(),
            None => {
                let email = session.object["customer_email"].as_str().map(str::to_owned);
                let customer = customer_object(email, None, None, None, Map::new());
                let id = customer["id"].as_str().unwrap_or_default().to_owned();
                state.customers.push(customer);
                id
            }
        };
        let session = state.sessions.get_mut(session_id).expect("looked up above");
        let mut payment_status = "no_payment_required";
        let mut subscription = None;
        if session.object["mode"] == "subscription" {
            let trial_end = session.trial_days.map(|days| now + days * 24 * 60 * 60);
            let sub = Subscription {
                id: random_id("sub_", 24),
                customer: customer.clone(),
                status: if trial_end.is_some() {
                    "trialing"
                } else {
                    "active"
                }
                .to_owned(),
                cancel_at_period_end: false,
                cancel_at: None,
                canceled_at: None,
                ended_at: None,
                cancellation_reason: None,
                cancellation_comment: None,
                cancellation_feedback: None,
                created: now,
                current_period_start: now,
                current_period_end: trial_end.unwrap_or(now + PERIOD_SECS),
                trial_start: trial_end.map(|_| now),
                trial_end,
                items: session
                    .line_items
                    .iter()
                    .map(|(price, quantity)| Item {
                        id: random_id("si_", 14),
                        price: price.clone(),
                        quantity: *quantity,
                        created: now,
                    })
                    .collect(),
                metadata: session.subscription_metadata.clone(),
                latest_invoice: Some(random_id("in_", 24)),
            };
            if trial_end.is_none() {
                payment_status = "paid";
            }
            session.object["invoice"] = json!(sub.latest_invoice);
            subscription = Some(sub);
        }
        let mut payment = None;
        if session.object["mode"] == "payment" {
            payment_status = "paid";
            let pi = Payment {
                id: random_id("pi_", 24),
                charge: random_id("ch_", 24),
                customer: customer.clone(),
                amount: session.object["amount_total"].as_i64().unwrap_or(0),
                currency: session.object["currency"]
                    .as_str()
                    .unwrap_or(CURRENCY)
                    .to_owned(),
                amount_refunded: 0,
                metadata: session.payment_intent_metadata.clone(),
                created: now,
            };
            session.object["payment_intent"] = json!(pi.id);
            payment = Some(pi);
        }
        let object = &mut session.object;
        object["status"] = json!("complete");
        object["payment_status"] = json!(payment_status);
        object["customer"] = json!(customer);
        object["subscription"] = json!(subscription.as_ref().map(|s| s.id.clone()));
        let completed = object.clone();
        if let Some(sub) = subscription {
            state.subscriptions.insert(sub.id.clone(), sub);
        }
        if let Some(payment) = payment {
            state.payments.insert(payment.id.clone(), payment);
        }
        self.event("checkout.session.completed", completed)
    }

    /// The `payment_intent.succeeded` Event of a completed payment-mode session's payment
    /// (`pi_…`, as its `payment_intent` names it). Panics when there is no such payment.
    pub fn payment_intent_succeeded(&self, payment_intent: &str) -> Value {
        let state = self.state.lock().unwrap();
        let payment = state
            .payments
            .get(payment_intent)
            .unwrap_or_else(|| panic!("the fake Stripe has no payment {payment_intent}"));
        let object = payment_intent_object(payment);
        drop(state);
        self.event("payment_intent.succeeded", object)
    }

    /// Refunds `amount` more of the payment's charge (as the Dashboard or `POST /v1/refunds`
    /// would) and returns the `charge.refunded` Event: the Charge with its cumulative
    /// `amount_refunded`, and `refunded: true` once all of it is. Panics when there is no such
    /// payment or the refund exceeds what is left.
    pub fn refund(&self, payment_intent: &str, amount: i64) -> Value {
        let mut state = self.state.lock().unwrap();
        let payment = state
            .payments
            .get_mut(payment_intent)
            .unwrap_or_else(|| panic!("the fake Stripe has no payment {payment_intent}"));
        assert!(
            amount >= 1 && payment.amount_refunded + amount <= payment.amount,
            "a refund of {amount} exceeds what is left of {}",
            payment.amount - payment.amount_refunded
        );
        payment.amount_refunded += amount;
        let object = charge_object(payment);
        drop(state);
        self.event("charge.refunded", object)
    }

    /// The cardholder's bank disputes the payment's charge: the `charge.dispute.created` Event,
    /// whose object is a Dispute as the API shows it (`dp_…`, the charge and payment intent it
    /// is about, the amount disputed — the charge's, less nothing — its currency, `reason`, and
    /// `status: needs_response`). Panics when there is no such payment.
    pub fn dispute(&self, payment_intent: &str, reason: &str) -> Value {
        let state = self.state.lock().unwrap();
        let payment = state
            .payments
            .get(payment_intent)
            .unwrap_or_else(|| panic!("the fake Stripe has no payment {payment_intent}"));
        let object = dispute_object(payment, reason);
        drop(state);
        self.event("charge.dispute.created", object)
    }

    /// An Event of this type about `object`, created now, as Stripe sends it to a webhook
    /// endpoint.
    pub fn event(&self, event_type: &str, object: Value) -> Value {
        self.event_at(event_type, object, now_secs())
    }

    /// Like [`Self::event`], created at `created` (Unix seconds).
    pub fn event_at(&self, event_type: &str, object: Value, created: i64) -> Value {
        json!({
            "id": random_id("evt_", 24),
            "object": "event",
            "api_version": API_VERSION,
            "created": created,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": event_type,
        })
    }

    /// Sets the subscription's status (one of Stripe's: `active`, `past_due`, `unpaid`,
    /// `canceled`, …) as a charge or Stripe's own schedule would; `canceled` also ends it now.
    /// Panics when no subscription has this id or the status is not one of Stripe's.
    pub fn set_subscription_status(&self, id: &str, status: &str) {
        assert!(
            SUBSCRIPTION_STATUSES.contains(&status),
            "not a subscription status: {status}"
        );
        let mut state = self.state.lock().unwrap();
        let sub = state
            .subscriptions
            .get_mut(id)
            .unwrap_or_else(|| panic!("the fake Stripe has no subscription {id}"));
        sub.status = status.to_owned();
        if status == "canceled" {
            let now = now_secs();
            sub.canceled_at.get_or_insert(now);
            sub.ended_at.get_or_insert(now);
        }
    }

    /// A new Invoice for the subscription's current period (`billing_reason:
    /// "subscription_cycle"`), `paid` or still `open`; it becomes the subscription's
    /// `latest_invoice`. The subscription's status and period are left alone. Panics when no
    /// subscription has this id.
    pub fn invoice(&self, subscription_id: &str, paid: bool) -> Value {
        let mut state = self.state.lock().unwrap();
        let id = random_id("in_", 24);
        let sub = state
            .subscriptions
            .get(subscription_id)
            .unwrap_or_else(|| panic!("the fake Stripe has no subscription {subscription_id}"));
        let invoice = invoice_object(&state, sub, &id, paid, "subscription_cycle");
        if let Some(sub) = state.subscriptions.get_mut(subscription_id) {
            sub.latest_invoice = Some(id);
        }
        invoice
    }

    /// Makes the first request with this method whose path, raw body or decoded body contains
    /// `needle` fail with `fault`, leaving every other request alone (an empty needle matches
    /// any request with that method). `Fault::Status(s)` answers `s` with Stripe's
    /// `api_error` and changes nothing (nor saves an idempotent answer); `Fault::Delay(d)`
    /// waits `d`, then handles the request normally. Faults queue up; each is used once, and a
    /// request uses at most one. Requests to paths the API does not have take no fault.
    pub fn fail_next(&self, method: &str, needle: &str, fault: Fault) {
        self.state.lock().unwrap().faults.push(TargetedFault {
            method: method.to_ascii_uppercase(),
            needle: needle.to_owned(),
            fault,
        });
    }
}

/// The `Stripe-Signature` header Stripe sends with a webhook delivery of `payload` at
/// `timestamp`: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<payload>">`, keyed with
/// the endpoint's whole signing secret (`whsec_…`) as bytes.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={signature}")
}

/// The calls the fake answers.
enum Route<'a> {
    CreateCustomer,
    CreateCheckoutSession,
    CreatePortalSession,
    GetPrice(&'a str),
    GetSubscription(&'a str),
    UpdateSubscription(&'a str),
    CancelSubscription(&'a str),
}

fn route(request: &Recorded) -> Option<Route<'_>> {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/customers") => Some(Route::CreateCustomer),
        ("POST", "/v1/checkout/sessions") => Some(Route::CreateCheckoutSession),
        ("POST", "/v1/billing_portal/sessions") => Some(Route::CreatePortalSession),
        ("GET", path) if path.starts_with("/v1/prices/") => path
            .strip_prefix("/v1/prices/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(Route::GetPrice),
        (method, path) => {
            let id = path
                .strip_prefix("/v1/subscriptions/")
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            match method {
                "GET" => Some(Route::GetSubscription(id)),
                "POST" => Some(Route::UpdateSubscription(id)),
                "DELETE" => Some(Route::CancelSubscription(id)),
                _ => None,
            }
        }
    }
}

fn respond(request: &Recorded, state: &Mutex<StripeState>, authorization: &str) -> FakeResponse {
    let Some(route) = route(request) else {
        return error(
            404,
            "invalid_request_error",
            None,
            &format!(
                "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can \
                 help at https://support.stripe.com/.",
                request.method, request.path
            ),
            None,
        );
    };
    match take_fault(state, request) {
        Some(Fault::Status(status)) => {
            return error(status, "api_error", None, "injected fault", None)
        }
        Some(Fault::Delay(delay)) => std::thread::sleep(delay),
        None => {}
    }
    match request.header("authorization") {
        None => {
            return error(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, \
                 or we can help at https://support.stripe.com/.",
                None,
            )
        }
        Some(given) if given != authorization => {
            let key = given.strip_prefix("Bearer ").unwrap_or(given);
            return error(
                401,
                "invalid_request_error",
                None,
                &format!("Invalid API Key provided: {}", masked(key)),
                None,
            );
        }
        Some(_) => {}
    }
    let form_encoded = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !request.body.is_empty() && !form_encoded {
        return invalid(
            "Invalid request (check that your POST content type is \
             application/x-www-form-urlencoded). If you have any questions, we can help at \
             https://support.stripe.com/.",
            None,
        );
    }
    let mut params = decode_form(request.query.as_bytes());
    params.extend(decode_form(&request.body));

    let mut state = state.lock().unwrap();
    let key = match request.header("idempotency-key") {
        Some(key) if request.method == "POST" => Some(key),
        _ => None,
    };
    if let Some(key) = key {
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return invalid(
                &format!(
                    "Invalid Idempotency-Key: must be at most {MAX_IDEMPOTENCY_KEY_LEN} \
                     characters long"
                ),
                None,
            );
        }
        if let Some(saved) = state.idempotent.get(key) {
            return replay(saved, key, request, &params);
        }
    }
    let answer = match route {
        Route::CreateCustomer => create_customer(&mut state, &params),
        Route::CreateCheckoutSession => create_checkout_session(&mut state, &params),
        Route::CreatePortalSession => create_portal_session(&state, &params),
        Route::GetPrice(id) => match state.prices.get(id) {
            Some(price) => Ok(price_object(price)),
            None => Err(error(
                404,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such price: '{id}'"),
                Some("id"),
            )),
        },
        Route::GetSubscription(id) => match state.subscriptions.get(id) {
            Some(sub) => Ok(subscription_object(&state, sub)),
            None => Err(no_such_subscription(id)),
        },
        Route::UpdateSubscription(id) => update_subscription(&mut state, id, &params),
        Route::CancelSubscription(id) => cancel_subscription(&mut state, id, &params),
    };
    let response = match answer {
        Ok(object) => FakeResponse::json(200, &object),
        Err(response) => response,
    };
    if let Some(key) = key.filter(|_| (200..300).contains(&response.status)) {
        state.idempotent.insert(
            key.to_owned(),
            Saved {
                method: request.method.clone(),
                path: request.path.clone(),
                params: sorted(params),
                response: response.clone(),
            },
        );
    }
    response
}

/// The saved answer for a repeated `Idempotency-Key`, or Stripe's `idempotency_error` when the
/// key is reused for another request.
fn replay(saved: &Saved, key: &str, request: &Recorded, params: &Form) -> FakeResponse {
    if saved.method != request.method || saved.path != request.path {
        return error(
            400,
            "idempotency_error",
            None,
            &format!(
                "Keys for idempotent requests can only be used for the same endpoint they were \
                 first used for ('{} {}' vs '{} {}'). Try using a key other than '{key}' if you \
                 meant to execute a different request.",
                saved.method, saved.path, request.method, request.path
            ),
            None,
        );
    }
    if saved.params != sorted(params.clone()) {
        return error(
            400,
            "idempotency_error",
            None,
            &format!(
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with. Try using a key other than '{key}' if you meant to \
                 execute a different request."
            ),
            None,
        );
    }
    // Stripe marks an answer it saved from the key's first request.
    let mut answer = saved.response.clone();
    answer
        .headers
        .push(("Idempotent-Replayed", "true".to_owned()));
    answer
}

/// Removes and returns the first queued fault meant for this request.
fn take_fault(state: &Mutex<StripeState>, request: &Recorded) -> Option<Fault> {
    let raw = String::from_utf8_lossy(&request.body);
    let decoded = decode_form(&request.body)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut state = state.lock().unwrap();
    let index = state.faults.iter().position(|f| {
        f.method == request.method
            && [request.path.as_str(), &raw, &decoded]
                .iter()
                .any(|haystack| haystack.contains(&f.needle))
    })?;
    Some(state.faults.remove(index).fault)
}

fn create_customer(state: &mut StripeState, form: &Form) -> Answer {
    check_known(form, CUSTOMER_PARAMS)?;
    let email = value(form, "email");
    if let Some(email) = email.filter(|email| !is_email(email)) {
        return Err(invalid(
            &format!("Invalid email address: {email}"),
            Some("email"),
        ));
    }
    let mut metadata = Map::new();
    apply_metadata(&mut metadata, form, "metadata");
    let customer = customer_object(
        email.map(str::to_owned),
        value(form, "name").map(str::to_owned),
        value(form, "description").map(str::to_owned),
        value(form, "phone").map(str::to_owned),
        metadata,
    );
    state.customers.push(customer.clone());
    Ok(customer)
}

fn create_checkout_session(state: &mut StripeState, form: &Form) -> Answer {
    check_known(form, CHECKOUT_PARAMS)?;
    check_nested(form, "subscription_data", SUBSCRIPTION_DATA_FIELDS)?;
    check_nested(form, "payment_intent_data", PAYMENT_INTENT_DATA_FIELDS)?;
    let mode = match value(form, "mode") {
        None => return Err(missing("mode")),
        Some(mode @ ("payment" | "setup" | "subscription")) => mode,
        Some(_) => {
            return Err(invalid(
                "Invalid mode: must be one of payment, setup, or subscription",
                Some("mode"),
            ))
        }
    };
    let customer = value(form, "customer");
    let customer_email = value(form, "customer_email");
    if customer.is_some() && customer_email.is_some() {
        return Err(invalid(
            "You may only specify one of these parameters: customer, customer_email.",
            Some("customer_email"),
        ));
    }
    if let Some(customer) = customer {
        if !state.customers.iter().any(|c| c["id"] == customer) {
            return Err(no_such("customer", customer, "customer"));
        }
    }
    if let Some(email) = customer_email.filter(|email| !is_email(email)) {
        return Err(invalid(
            &format!("Invalid email address: {email}"),
            Some("customer_email"),
        ));
    }

    let mut line_items = Vec::new();
    let mut amount = 0;
    let mut recurring = false;
    let mut inline_currency = None;
    for (index, fields) in indexed(form, "line_items")? {
        let at = |field: &str| format!("line_items[{index}][{field}]");
        check_fields(&fields, LINE_ITEM_FIELDS, &at)?;
        let inline = fields.iter().any(|(k, _)| k.starts_with("price_data]"));
        let (price_id, unit_amount) = if inline {
            if field(&fields, "price").is_some() {
                return Err(invalid(
                    "You may only specify one of these parameters: price, price_data.",
                    Some(&at("price_data")),
                ));
            }
            for (name, _) in fields.iter().filter(|(k, _)| k.starts_with("price_data]")) {
                let sub = name["price_data][".len().min(name.len())..]
                    .split(']')
                    .next()
                    .unwrap_or("");
                if !PRICE_DATA_FIELDS.contains(&sub) {
                    return Err(unknown(&at(name)));
                }
            }
            let currency = field(&fields, "price_data][currency")
                .ok_or_else(|| missing(&at("price_data][currency")))?;
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(invalid(
                    &format!("Invalid currency: {currency}"),
                    Some(&at("price_data][currency")),
                ));
            }
            let unit = field(&fields, "price_data][unit_amount")
                .ok_or_else(|| missing(&at("price_data][unit_amount")))?;
            let unit = integer(unit, &at("price_data][unit_amount"))?;
            if unit < 0 {
                return Err(invalid(
                    "This value must be greater than or equal to 0.",
                    Some(&at("price_data][unit_amount")),
                ));
            }
            if field(&fields, "price_data][product").is_none()
                && field(&fields, "price_data][product_data][name").is_none()
            {
                return Err(missing(&at("price_data][product_data][name")));
            }
            inline_currency = Some(currency.to_owned());
            (random_id("price_", 24), unit)
        } else {
            let price = field(&fields, "price").ok_or_else(|| missing(&at("price")))?;
            let price = state
                .prices
                .get(price)
                .ok_or_else(|| no_such("price", price, &at("price")))?;
            // Every registered price is recurring.
            recurring = true;
            (price.id.clone(), price.unit_amount)
        };
        let quantity = match field(&fields, "quantity") {
            Some(quantity) => count(quantity, &at("quantity"))?,
            None => {
                return Err(error(
                    400,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    &format!("Quantity is required. Add `quantity` to `line_items[{index}]`"),
                    Some(&at("quantity")),
                ))
            }
        };
        if quantity == 0 {
            return Err(invalid(
                "This value must be greater than or equal to 1.",
                Some(&at("quantity")),
            ));
        }
        amount += unit_amount * quantity as i64;
        line_items.push((price_id, quantity));
    }
    if mode != "setup" && line_items.is_empty() {
        return Err(missing("line_items"));
    }
    if mode == "payment" && recurring {
        // Every price the fake has registered is recurring; inline prices are one-time.
        return Err(invalid(
            "You specified `payment` mode but passed a recurring price. Either switch to \
             `subscription` mode or use only one-time prices.",
            Some("mode"),
        ));
    }
    if mode != "subscription" && form.iter().any(|(k, _)| top(k) == "subscription_data") {
        return Err(invalid(
            &format!("You can not pass `subscription_data` in `{mode}` mode."),
            Some("subscription_data"),
        ));
    }
    if mode != "payment" && form.iter().any(|(k, _)| top(k) == "payment_intent_data") {
        return Err(invalid(
            &format!("You can not pass `payment_intent_data` in `{mode}` mode."),
            Some("payment_intent_data"),
        ));
    }
    let mut payment_intent_metadata = Map::new();
    apply_metadata(
        &mut payment_intent_metadata,
        form,
        "payment_intent_data[metadata]",
    );
    let trial_param = "subscription_data[trial_period_days]";
    let trial_days = match value(form, trial_param) {
        Some(days) => match integer(days, trial_param)? {
            days if days >= 1 => Some(days),
            _ => {
                return Err(invalid(
                    "This value must be greater than or equal to 1.",
                    Some(trial_param),
                ))
            }
        },
        None => None,
    };
    let created = now_secs();
    let expires_at = match value(form, "expires_at") {
        Some(at) => {
            let at = integer(at, "expires_at")?;
            if !(created + 30 * 60..=created + CHECKOUT_LIFETIME_SECS).contains(&at) {
                return Err(invalid(
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours from \
                     Checkout Session creation.",
                    Some("expires_at"),
                ));
            }
            at
        }
        None => created + CHECKOUT_LIFETIME_SECS,
    };
    let mut metadata = Map::new();
    apply_metadata(&mut metadata, form, "metadata");
    let mut subscription_metadata = Map::new();
    apply_metadata(
        &mut subscription_metadata,
        form,
        "subscription_data[metadata]",
    );

    let id = random_id("cs_test_", 58);
    let object = json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "cancel_url": value(form, "cancel_url"),
        "client_reference_id": value(form, "client_reference_id"),
        "created": created,
        "currency": match mode {
            "subscription" => Some(CURRENCY.to_owned()),
            "payment" => inline_currency.or(Some(CURRENCY.to_owned())),
            _ => None,
        },
        "customer": customer,
        "customer_email": customer_email,
        "expires_at": expires_at,
        "invoice": null,
        "livemode": false,
        "locale": value(form, "locale"),
        "metadata": metadata,
        "mode": mode,
        "payment_intent": null,
        "payment_status": if mode == "setup" { "no_payment_required" } else { "unpaid" },
        "setup_intent": null,
        "status": "open",
        "subscription": null,
        "success_url": value(form, "success_url"),
        "ui_mode": "hosted",
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    });
    state.sessions.insert(
        id,
        Session {
            object: object.clone(),
            line_items,
            subscription_metadata,
            trial_days,
            payment_intent_metadata,
        },
    );
    Ok(object)
}

fn create_portal_session(state: &StripeState, form: &Form) -> Answer {
    check_known(form, PORTAL_PARAMS)?;
    let customer = value(form, "customer").ok_or_else(|| missing("customer"))?;
    if !state.customers.iter().any(|c| c["id"] == customer) {
        return Err(no_such("customer", customer, "customer"));
    }
    if let Some(configuration) = value(form, "configuration") {
        if configuration != state.portal_configuration {
            return Err(no_such("configuration", configuration, "configuration"));
        }
    }
    Ok(json!({
        "id": random_id("bps_", 24),
        "object": "billing_portal.session",
        "configuration": state.portal_configuration,
        "created": now_secs(),
        "customer": customer,
        "flow": null,
        "livemode": false,
        "locale": value(form, "locale"),
        "on_behalf_of": null,
        "return_url": value(form, "return_url"),
        "url": format!("https://billing.stripe.com/p/session/test_{}", random_alnum(40)),
    }))
}

fn update_subscription(state: &mut StripeState, id: &str, form: &Form) -> Answer {
    let Some(sub) = state.subscriptions.get(id) else {
        return Err(no_such_subscription(id));
    };
    check_known(form, UPDATE_PARAMS)?;
    check_nested(form, "cancellation_details", CANCELLATION_FIELDS)?;
    if sub.status == "canceled"
        && form
            .iter()
            .any(|(k, _)| !CANCELED_UPDATE_PARAMS.contains(&top(k)))
    {
        return Err(invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
            None,
        ));
    }
    let cancel_at_period_end = boolean(form, "cancel_at_period_end")?;
    one_of(
        form,
        "proration_behavior",
        &["always_invoice", "create_prorations", "none"],
    )?;
    one_of(
        form,
        "payment_behavior",
        &[
            "allow_incomplete",
            "default_incomplete",
            "error_if_incomplete",
            "pending_if_incomplete",
        ],
    )?;
    if let Some(date) = value(form, "proration_date") {
        integer(date, "proration_date")?;
    }
    let (comment, feedback) = cancellation_details(form)?;

    // Everything is checked before anything changes: a rejected update changes nothing.
    let now = now_secs();
    let mut items = sub.items.clone();
    for (index, fields) in indexed(form, "items")? {
        let at = |field: &str| format!("items[{index}][{field}]");
        check_fields(&fields, ITEM_FIELDS, &at)?;
        let deleted = match field(&fields, "deleted") {
            Some(deleted) => parse_bool(deleted, &at("deleted"))?,
            None => false,
        };
        let price = match field(&fields, "price") {
            Some(price) if state.prices.contains_key(price) => Some(price.to_owned()),
            Some(price) => return Err(no_such("price", price, &at("price"))),
            None => None,
        };
        let quantity = field(&fields, "quantity")
            .map(|quantity| count(quantity, &at("quantity")))
            .transpose()?;
        match field(&fields, "id") {
            Some(item_id) => {
                let Some(position) = items.iter().position(|item| item.id == item_id) else {
                    return Err(no_such("subscription item", item_id, &at("id")));
                };
                if deleted {
                    items.remove(position);
                    continue;
                }
                let item = &mut items[position];
                if let Some(price) = price {
                    item.price = price;
                }
                if let Some(quantity) = quantity {
                    item.quantity = quantity;
                }
            }
            None if deleted => return Err(missing(&at("id"))),
            None => items.push(Item {
                id: random_id("si_", 14),
                price: price.ok_or_else(|| missing(&at("price")))?,
                quantity: quantity.unwrap_or(1),
                created: now,
            }),
        }
    }
    if items.is_empty() {
        return Err(invalid(
            "A subscription must have at least one item.",
            Some("items"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if items[..i].iter().any(|other| other.price == item.price) {
            return Err(invalid(
                &format!(
                    "Cannot add multiple subscription items with the same plan: {}",
                    item.price
                ),
                Some("items"),
            ));
        }
    }
    let mut metadata = sub.metadata.clone();
    apply_metadata(&mut metadata, form, "metadata");

    let sub = state.subscriptions.get_mut(id).expect("looked up above");
    sub.items = items;
    sub.metadata = metadata;
    if let Some(cancel) = cancel_at_period_end {
        sub.cancel_at_period_end = cancel;
        if cancel {
            sub.cancel_at = Some(sub.current_period_end);
            sub.canceled_at = Some(now);
            sub.cancellation_reason = Some("cancellation_requested");
        } else {
            sub.cancel_at = None;
            sub.canceled_at = None;
            sub.cancellation_reason = None;
        }
    }
    set_cancellation_details(sub, comment, feedback);
    Ok(subscription_object(state, &state.subscriptions[id]))
}

fn cancel_subscription(state: &mut StripeState, id: &str, form: &Form) -> Answer {
    // Stripe treats a canceled subscription as gone for a second cancel.
    if state
        .subscriptions
        .get(id)
        .is_none_or(|sub| sub.status == "canceled")
    {
        return Err(no_such_subscription(id));
    }
    check_known(form, CANCEL_PARAMS)?;
    check_nested(form, "cancellation_details", CANCELLATION_FIELDS)?;
    boolean(form, "invoice_now")?;
    boolean(form, "prorate")?;
    let (comment, feedback) = cancellation_details(form)?;
    let now = now_secs();
    let sub = state.subscriptions.get_mut(id).expect("looked up above");
    sub.status = "canceled".to_owned();
    sub.cancel_at_period_end = false;
    sub.canceled_at = Some(now);
    sub.ended_at = Some(now);
    sub.cancellation_reason = Some("cancellation_requested");
    set_cancellation_details(sub, comment, feedback);
    Ok(subscription_object(state, &state.subscriptions[id]))
}

/// `cancellation_details[comment]` and `cancellation_details[feedback]`, checked.
fn cancellation_details(form: &Form) -> Answer<(Option<String>, Option<String>)> {
    one_of(
        form,
        "cancellation_details[feedback]",
        &[
            "customer_service",
            "low_quality",
            "missing_features",
            "other",
            "switched_service",
            "too_complex",
            "too_expensive",
            "unused",
        ],
    )?;
    Ok((
        value(form, "cancellation_details[comment]").map(str::to_owned),
        value(form, "cancellation_details[feedback]").map(str::to_owned),
    ))
}

fn set_cancellation_details(
    sub: &mut Subscription,
    comment: Option<String>,
    feedback: Option<String>,
) {
    if comment.is_some() {
        sub.cancellation_comment = comment;
    }
    if feedback.is_some() {
        sub.cancellation_feedback = feedback;
    }
}

/// A Customer object.
fn customer_object(
    email: Option<String>,
    name: Option<String>,
    description: Option<String>,
    phone: Option<String>,
    metadata: Map<String, Value>,
) -> Value {
    json!({
        "id": random_id("cus_", 14),
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": now_secs(),
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": description,
        "discount": null,
        "email": email,
        "invoice_prefix": random_alnum(8).to_ascii_uppercase(),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null,
        },
        "livemode": false,
        "metadata": metadata,
        "name": name,
        "phone": phone,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    })
}

/// A Price object.
/// A PaymentIntent as the API shows it: succeeded, with its latest charge.
fn payment_intent_object(p: &Payment) -> Value {
    json!({
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount,
        "amount_capturable": 0,
        "amount_received": p.amount,
        "capture_method": "automatic",
        "created": p.created,
        "currency": p.currency,
        "customer": p.customer,
        "latest_charge": p.charge,
        "livemode": false,
        "metadata": p.metadata,
        "payment_method_types": ["card"],
        "status": "succeeded",
    })
}

/// A Dispute of the payment's charge, just opened, as the API shows it.
fn dispute_object(p: &Payment, reason: &str) -> Value {
    json!({
        "id": random_id("dp_", 24),
        "object": "dispute",
        "amount": p.amount,
        "balance_transactions": [],
        "charge": p.charge,
        "created": now_secs(),
        "currency": p.currency,
        "evidence_details": {
            "due_by": now_secs() + 7 * 86_400,
            "has_evidence": false,
            "past_due": false,
            "submission_count": 0,
        },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": p.id,
        "reason": reason,
        "status": "needs_response",
    })
}

/// A Charge as the API shows it, with what has been refunded of it so far.
fn charge_object(p: &Payment) -> Value {
    json!({
        "id": p.charge,
        "object": "charge",
        "amount": p.amount,
        "amount_captured": p.amount,
        "amount_refunded": p.amount_refunded,
        "captured": true,
        "created": p.created,
        "currency": p.currency,
        "customer": p.customer,
        "livemode": false,
        "metadata": {},
        "paid": true,
        "payment_intent": p.id,
        "refunded": p.amount_refunded == p.amount,
        "status": "succeeded",
    })
}

fn price_object(price: &Price) -> Value {
    json!({
        "id": price.id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": price.created,
        "currency": CURRENCY,
        "livemode": false,
        "lookup_key": null,
        "metadata": {},
        "nickname": null,
        "product": price.product,
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "meter": null,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "type": "recurring",
        "unit_amount": price.unit_amount,
        "unit_amount_decimal": price.unit_amount.to_string(),
    })
}

/// The price an item refers to (prices are never removed, so it is always there).
fn item_price<'a>(state: &'a StripeState, item: &Item) -> Option<&'a Price> {
    state.prices.get(&item.price)
}

/// A Subscription object.
fn subscription_object(state: &StripeState, sub: &Subscription) -> Value {
    let items: Vec<Value> = sub
        .items
        .iter()
        .map(|item| {
            json!({
                "id": item.id,
                "object": "subscription_item",
                "created": item.created,
                "current_period_start": sub.current_period_start,
                "current_period_end": sub.current_period_end,
                "metadata": {},
                "price": item_price(state, item).map(price_object),
                "quantity": item.quantity,
                "subscription": sub.id,
            })
        })
        .collect();
    json!({
        "id": sub.id,
        "object": "subscription",
        "billing_cycle_anchor": sub.created,
        "cancel_at": sub.cancel_at,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at,
        "cancellation_details": {
            "comment": sub.cancellation_comment,
            "feedback": sub.cancellation_feedback,
            "reason": sub.cancellation_reason,
        },
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": CURRENCY,
        "current_period_end": sub.current_period_end,
        "current_period_start": sub.current_period_start,
        "customer": sub.customer,
        "default_payment_method": null,
        "ended_at": sub.ended_at,
        "items": {
            "object": "list",
            "data": items,
            "has_more": false,
            "total_count": sub.items.len(),
            "url": format!("/v1/subscription_items?subscription={}", sub.id),
        },
        "latest_invoice": sub.latest_invoice,
        "livemode": false,
        "metadata": sub.metadata,
        "pause_collection": null,
        "start_date": sub.created,
        "status": sub.status,
        "trial_end": sub.trial_end,
        "trial_start": sub.trial_start,
    })
}

/// An Invoice object for the subscription's current period.
fn invoice_object(
    state: &StripeState,
    sub: &Subscription,
    id: &str,
    paid: bool,
    billing_reason: &str,
) -> Value {
    let now = now_secs();
    let period = json!({ "start": sub.current_period_start, "end": sub.current_period_end });
    let lines: Vec<Value> = sub
        .items
        .iter()
        .map(|item| {
            let price = item_price(state, item);
            let amount = price.map_or(0, |p| p.unit_amount) * item.quantity as i64;
            json!({
                "id": random_id("il_", 24),
                "object": "line_item",
                "amount": amount,
                "currency": CURRENCY,
                "description": format!("{} × {}", item.quantity, item.price),
                "invoice": id,
                "livemode": false,
                "metadata": sub.metadata,
                "parent": {
                    "type": "subscription_item_details",
                    "invoice_item_details": null,
                    "subscription_item_details": {
                        "invoice_item": null,
                        "proration": false,
                        "subscription": sub.id,
                        "subscription_item": item.id,
                    },
                },
                "period": period,
                "price": price.map(price_object),
                "pricing": {
                    "type": "price_details",
                    "price_details": {
                        "price": item.price,
                        "product": price.map(|p| p.product.clone()),
                    },
                    "unit_amount_decimal": price.map(|p| p.unit_amount.to_string()),
                },
                "proration": false,
                "quantity": item.quantity,
                "subscription": sub.id,
                "subscription_item": item.id,
                "type": "subscription",
            })
        })
        .collect();
    let total: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
    json!({
        "id": id,
        "object": "invoice",
        "amount_due": total,
        "amount_paid": if paid { total } else { 0 },
        "amount_remaining": if paid { 0 } else { total },
        "attempt_count": 1,
        "attempted": true,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": CURRENCY,
        "customer": sub.customer,
        "hosted_invoice_url": format!("https://invoice.stripe.com/i/test_{}", random_alnum(40)),
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": false,
            "total_count": sub.items.len(),
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": if paid { Value::Null } else { json!(now + 3 * 24 * 60 * 60) },
        "paid": paid,
        "parent": {
            "type": "subscription_details",
            "quote_details": null,
            "subscription_details": {
                "metadata": sub.metadata,
                "subscription": sub.id,
            },
        },
        "period_end": sub.current_period_end,
        "period_start": sub.current_period_start,
        "status": if paid { "paid" } else { "open" },
        "status_transitions": {
            "finalized_at": now,
            "marked_uncollectible_at": null,
            "paid_at": if paid { json!(now) } else { Value::Null },
            "voided_at": null,
        },
        "subscription": sub.id,
        "subtotal": total,
        "total": total,
    })
}

/// The last value sent for `name`; Stripe treats an empty value as not sent.
fn value<'f>(form: &'f Form, name: &str) -> Option<&'f str> {
    form.iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// A key's top-level name: `line_items` for `line_items[0][price]`.
fn top(key: &str) -> &str {
    key.split('[').next().unwrap_or(key)
}

/// Rejects parameters whose top-level name is not in `allowed`.
fn check_known(form: &Form, allowed: &[&str]) -> Answer<()> {
    match form.iter().find(|(key, _)| !allowed.contains(&top(key))) {
        Some((key, _)) => Err(unknown(key)),
        None => Ok(()),
    }
}

/// Rejects `{hash}[field]…` parameters whose field is not in `allowed`, and a plain `{hash}`.
fn check_nested(form: &Form, hash: &str, allowed: &[&str]) -> Answer<()> {
    for (key, _) in form.iter().filter(|(key, _)| top(key) == hash) {
        let field = key[hash.len()..]
            .strip_prefix('[')
            .and_then(|rest| rest.split(']').next());
        match field {
            Some(field) if allowed.contains(&field) => {}
            Some(_) => return Err(unknown(key)),
            None => return Err(invalid("Invalid hash", Some(key))),
        }
    }
    Ok(())
}

/// The fields of an array of hashes (`{array}[N][field]…`) by index; each field keeps what
/// follows the index without the outer brackets (`price`, `adjustable_quantity][enabled`).
fn indexed(form: &Form, array: &str) -> Answer<BTreeMap<usize, Form>> {
    let mut entries: BTreeMap<usize, Form> = BTreeMap::new();
    for (key, value) in form.iter().filter(|(key, _)| top(key) == array) {
        let parsed = key[array.len()..]
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(index, rest)| {
                let field = rest.strip_prefix('[')?.strip_suffix(']')?;
                Some((index.parse::<usize>().ok()?, field))
            });
        let Some((index, field)) = parsed else {
            return Err(invalid("Invalid array", Some(key)));
        };
        entries
            .entry(index)
            .or_default()
            .push((field.to_owned(), value.clone()));
    }
    Ok(entries)
}

/// Rejects fields of an array entry that are not in `allowed`; `at` names a field in full.
fn check_fields(fields: &Form, allowed: &[&str], at: &dyn Fn(&str) -> String) -> Answer<()> {
    for (name, _) in fields {
        let first = name.split(']').next().unwrap_or(name);
        if !allowed.contains(&first) {
            return Err(unknown(&at(name)));
        }
    }
    Ok(())
}

/// The last value of an array entry's field.
fn field<'f>(fields: &'f Form, name: &str) -> Option<&'f str> {
    value(fields, name)
}

/// Applies `{hash}[key]=value` pairs to `metadata` as Stripe does: an empty value removes the
/// key, and `{hash}=` (empty) removes every key.
fn apply_metadata(metadata: &mut Map<String, Value>, form: &Form, hash: &str) {
    for (key, value) in form {
        if key == hash && value.is_empty() {
            metadata.clear();
            continue;
        }
        let Some(name) = key
            .strip_prefix(hash)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .filter(|name| !name.contains('[') && !name.contains(']'))
        else {
            continue;
        };
        if value.is_empty() {
            metadata.remove(name);
        } else {
            metadata.insert(name.to_owned(), json!(value));
        }
    }
}

/// An optional boolean parameter.
fn boolean(form: &Form, name: &str) -> Answer<Option<bool>> {
    value(form, name).map(|v| parse_bool(v, name)).transpose()
}

fn parse_bool(value: &str, param: &str) -> Answer<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(&format!("Invalid boolean: {value}"), Some(param))),
    }
}

fn integer(value: &str, param: &str) -> Answer<i64> {
    value
        .parse()
        .map_err(|_| invalid(&format!("Invalid integer: {value}"), Some(param)))
}

/// A non-negative integer (a quantity).
fn count(value: &str, param: &str) -> Answer<u64> {
    match integer(value, param)? {
        n if n >= 0 => Ok(n as u64),
        _ => Err(invalid(
            "This value must be greater than or equal to 0.",
            Some(param),
        )),
    }
}

/// Rejects a value of `name` that is not one of `allowed`.
fn one_of(form: &Form, name: &str, allowed: &[&str]) -> Answer<()> {
    match value(form, name) {
        Some(v) if !allowed.contains(&v) => {
            let list = match allowed.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{}, or {last}", rest.join(", ")),
                _ => allowed.join(""),
            };
            Err(invalid(
                &format!("Invalid {name}: must be one of {list}"),
                Some(name),
            ))
        }
        _ => Ok(()),
    }
}

/// Roughly what Stripe accepts as an email address.
fn is_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The parameters in a canonical order, to compare two requests' parameters.
fn sorted(mut form: Form) -> Form {
    form.sort();
    form
}

/// A form-encoded body (or query string) as name-value pairs, in order.
fn decode_form(raw: &[u8]) -> Form {
    raw.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// Decodes `+` and `%XX` as `application/x-www-form-urlencoded` does; a `%` not followed by
/// two hex digits stays as it is.
fn percent_decode(bytes: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A secret key as Stripe shows it in errors: its first 8 and last 4 characters.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

/// Stripe's error envelope; `code` also gets its `doc_url`.
fn error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> FakeResponse {
    let mut body = Map::new();
    body.insert("type".to_owned(), json!(kind));
    body.insert("message".to_owned(), json!(message));
    if let Some(code) = code {
        body.insert("code".to_owned(), json!(code));
        body.insert(
            "doc_url".to_owned(),
            json!(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            )),
        );
    }
    if let Some(param) = param {
        body.insert("param".to_owned(), json!(param));
    }
    FakeResponse::json(status, &json!({ "error": body }))
}

/// A 400 `invalid_request_error` without a code.
fn invalid(message: &str, param: Option<&str>) -> FakeResponse {
    error(400, "invalid_request_error", None, message, param)
}

fn missing(param: &str) -> FakeResponse {
    error(
        400,
        "invalid_request_error",
        Some("parameter_missing"),
        &format!("Missing required param: {param}."),
        Some(param),
    )
}

fn unknown(param: &str) -> FakeResponse {
    error(
        400,
        "invalid_request_error",
        Some("parameter_unknown"),
        &format!("Received unknown parameter: {param}"),
        Some(param),
    )
}

/// A parameter names an object that does not exist: 400 `resource_missing`.
fn no_such(kind: &str, id: &str, param: &str) -> FakeResponse {
    error(
        400,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

/// The path names a subscription that does not exist: 404 `resource_missing`.
fn no_such_subscription(id: &str) -> FakeResponse {
    error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such subscription: '{id}'"),
        Some("id"),
    )
}

/// `prefix` and `len` random letters and digits, like Stripe's ids.
fn random_id(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", random_alnum(len))
}

fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = vec![0u8; len];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// Now in Unix seconds.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}
