//! Stripe's API over the Fetch API: customers, Checkout Sessions, Billing Portal sessions and
//! subscriptions. Bodies are form-encoded with bracketed keys; every POST carries an
//! `Idempotency-Key`, so a retried call never creates a second object. Failures are
//! `upstream_error` whose detail (status, Stripe's error type and message) is logged only.
//!
//! When Stripe answers a POST with `Idempotent-Replayed: true`, the body is the answer it saved
//! for the key's first request: the object as it was then, which may be stale. Calls whose
//! answer becomes stored state (a subscription update) fetch the current object instead.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use worker::{Headers, Method, Request, RequestInit};

use crate::core::form::Form;
use crate::error::AppError;

const SERVICE: &str = "stripe";

/// A client of Stripe's API.
pub struct Stripe<'a> {
    /// `STRIPE_API_URL`, e.g. `https://api.stripe.com`.
    pub base_url: &'a str,
    /// `STRIPE_SECRET_KEY`.
    pub secret_key: &'a str,
    pub timeout: Duration,
}

/// A Checkout Session or Billing Portal session: where to send the customer.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub id: String,
    pub url: Option<String>,
}

/// The parts of a Subscription Tollgate keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: String,
    pub cancel_at_period_end: bool,
    /// Unix seconds (on the subscription in older API versions, on its item in newer ones).
    pub current_period_end: Option<i64>,
    /// Every item (`items.data`), in order.
    pub items: Vec<SubscriptionItem>,
    /// `metadata.user_id`, set by Tollgate's checkout.
    pub user_id: Option<String>,
}

/// One item of a subscription: which price it bills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionItem {
    /// `si_...`.
    pub id: String,
    /// `price.id` (or `price` when not expanded).
    pub price_id: String,
}

impl Subscription {
    /// Reads a Subscription object (from the API or from an event's `data.object`).
    pub fn from_object(object: &Value) -> Option<Self> {
        let item = object.pointer("/items/data/0");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let items = object
            .pointer("/items/data")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        Some(SubscriptionItem {
                            id: text(i.get("id"))?,
                            price_id: text(i.pointer("/price/id"))
                                .or_else(|| text(i.get("price")))?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            id: text(object.get("id"))?,
            // `customer` is an id, or the expanded object.
            customer: text(object.get("customer"))
                .or_else(|| text(object.pointer("/customer/id")))?,
            status: text(object.get("status"))?,
            cancel_at_period_end: object
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            current_period_end: object
                .get("current_period_end")
                .and_then(Value::as_i64)
                .or_else(|| item.and_then(|i| i.get("current_period_end")?.as_i64())),
            items,
            user_id: text(object.pointer("/metadata/user_id")),
        })
    }
}

impl Stripe<'_> {
    /// Creates a customer (`POST /v1/customers`); returns its id.
    pub async fn create_customer(
        &self,
        form: &Form,
        idempotency_key: &str,
    ) -> Result<String, AppError> {
        let object = self
            .call(
                Method::Post,
                "/v1/customers",
                Some(form),
                Some(idempotency_key),
            )
            .await?;
        object
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| malformed("POST /v1/customers", "no id"))
    }

    /// Creates a Checkout Session (`POST /v1/checkout/sessions`).
    pub async fn create_checkout_session(
        &self,
        form: &Form,
        idempotency_key: &str,
    ) -> Result<Session, AppError> {
        self.create_session("/v1/checkout/sessions", form, idempotency_key)
            .await
    }

    /// Creates a Billing Portal session (`POST /v1/billing_portal/sessions`).
    pub async fn create_portal_session(
        &self,
        form: &Form,
        idempotency_key: &str,
    ) -> Result<Session, AppError> {
        self.create_session("/v1/billing_portal/sessions", form, idempotency_key)
            .await
    }

    async fn create_session(
        &self,
        path: &str,
        form: &Form,
        idempotency_key: &str,
    ) -> Result<Session, AppError> {
        let object = self
            .call(Method::Post, path, Some(form), Some(idempotency_key))
            .await?;
        serde_json::from_value::<Session>(object)
            .map_err(|e| malformed(&format!("POST {path}"), &format!("unexpected answer: {e}")))
    }

    /// Retrieves a subscription (`GET /v1/subscriptions/{id}`).
    pub async fn subscription(&self, id: &str) -> Result<Subscription, AppError> {
        let path = subscription_path(id)?;
        let object = self.call(Method::Get, &path, None, None).await?;
        Subscription::from_object(&object)
            .ok_or_else(|| malformed("GET /v1/subscriptions/{id}", "not a subscription"))
    }

    /// Updates a subscription (`POST /v1/subscriptions/{id}`): a new price for its item,
    /// or `cancel_at_period_end`. When Stripe replays the key's earlier answer, the
    /// subscription is fetched again, so what is returned is always current.
    pub async fn update_subscription(
        &self,
        id: &str,
        form: &Form,
        idempotency_key: &str,
    ) -> Result<Updated, AppError> {
        let path = subscription_path(id)?;
        let answer = self
            .send(Method::Post, &path, Some(form), Some(idempotency_key))
            .await?;
        if answer.replayed {
            return Ok(Updated {
                subscription: self.subscription(id).await?,
                replayed: true,
            });
        }
        let subscription = Subscription::from_object(&answer.body)
            .ok_or_else(|| malformed("POST /v1/subscriptions/{id}", "not a subscription"))?;
        Ok(Updated {
            subscription,
            replayed: false,
        })
    }

    /// Cancels a subscription now (`DELETE /v1/subscriptions/{id}`).
    pub async fn cancel_subscription(&self, id: &str) -> Result<Subscription, AppError> {
        let path = subscription_path(id)?;
        let object = self.call(Method::Delete, &path, None, None).await?;
        Subscription::from_object(&object)
            .ok_or_else(|| malformed("DELETE /v1/subscriptions/{id}", "not a subscription"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        form: Option<&Form>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, AppError> {
        Ok(self.send(method, path, form, idempotency_key).await?.body)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        form: Option<&Form>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, AppError> {
        let what = format!("{} {}", method.as_ref(), path_shape(path));
        let headers = Headers::new();
        headers.set("Authorization", &format!("Bearer {}", self.secret_key))?;
        if let Some(key) = idempotency_key {
            headers.set("Idempotency-Key", key)?;
        }
        let mut init = RequestInit::new();
        if let Some(form) = form {
            headers.set("Content-Type", "application/x-www-form-urlencoded")?;
            init.with_body(Some(form.encode().into()));
        }
        init.with_method(method).with_headers(headers);
        let req = Request::new_with_init(&format!("{}{path}", self.base_url), &init)?;
        let resp = super::send_within(SERVICE, req, self.timeout).await?;
        let status = resp.status_code();
        let replayed = resp
            .headers()
            .get("Idempotent-Replayed")
            .ok()
            .flatten()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let text = super::text(SERVICE, resp).await?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| malformed(&what, &format!("not JSON ({e})")))?;
        if (200..=299).contains(&status) {
            return Ok(Answer { body, replayed });
        }
        let error = |field: &str| {
            body.pointer(&format!("/error/{field}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        };
        Err(AppError::Upstream {
            service: SERVICE,
            detail: format!(
                "{what} answered {status}: {} {}",
                error("type"),
                error("message")
            ),
        })
    }
}

/// A successful answer.
struct Answer {
    body: Value,
    /// Stripe answered with what it saved for an earlier request with the same key.
    replayed: bool,
}

/// What a subscription update left: the subscription as it is now.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The current subscription.
    pub subscription: Subscription,
    /// Stripe replayed an earlier request with the same key instead of running this one, so
    /// the change asked for may not have been made (the subscription was fetched again).
    pub replayed: bool,
}

/// Ids go into paths: only plain Stripe ids are accepted.
fn subscription_path(id: &str) -> Result<String, AppError> {
    let plain = !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain {
        return Err(malformed("a subscription id", "is not a Stripe id"));
    }
    Ok(format!("/v1/subscriptions/{id}"))
}

/// A path with ids replaced, for log lines.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.contains('_') && !part.starts_with("billing") && !part.starts_with("checkout") {
                "{id}"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn malformed(what: &str, problem: &str) -> AppError {
    AppError::Upstream {
        service: SERVICE,
        detail: format!("{what}: {problem}"),
    }
}
