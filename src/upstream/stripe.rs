//! Stripe's API over the Fetch API: customers, Checkout Sessions, Billing Portal sessions,
//! prices and subscriptions. Bodies are form-encoded with bracketed keys; every POST carries an
//! `Idempotency-Key`, so a retried call never creates a second object. Failures are
//! `upstream_error` whose detail (status, Stripe's error type and message) is logged only.
//!
//! The `Idempotency-Key` sent is the caller's key scoped to the request's parameters (a
//! digest of the form is appended): Stripe refuses a key it saw with other parameters
//! (`400 idempotency_error`), and a client that reuses its `request_id` for another request
//! (another plan, other return URLs) means a new one, not a retry of the first.
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

/// The parts of a Price Tollgate checks before selling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub id: String,
    /// Whether new purchases may use it.
    pub active: bool,
    /// ISO 4217, lower case.
    pub currency: String,
    /// In the currency's smallest unit; `None` for tiered or customer-chosen amounts.
    pub unit_amount: Option<i64>,
    /// `recurring.interval` (`day`, `week`, `month`, `year`) and `recurring.interval_count`;
    /// `None` for a one-time price.
    pub recurring: Option<(String, i64)>,
}

impl Price {
    /// Reads a Price object.
    pub fn from_object(object: &Value) -> Option<Self> {
        let recurring = object.get("recurring").filter(|r| !r.is_null());
        Some(Self {
            id: object.get("id")?.as_str()?.to_owned(),
            active: object.get("active")?.as_bool()?,
            currency: object.get("currency")?.as_str()?.to_ascii_lowercase(),
            unit_amount: object.get("unit_amount").and_then(Value::as_i64),
            recurring: match recurring {
                Some(r) => Some((
                    r.get("interval")?.as_str()?.to_owned(),
                    r.get("interval_count").and_then(Value::as_i64).unwrap_or(1),
                )),
                None => None,
            },
        })
    }
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

    /// Retrieves a price (`GET /v1/prices/{id}`); `None` when Stripe has no such price
    /// (`404 resource_missing`).
    pub async fn price(&self, id: &str) -> Result<Option<Price>, AppError> {
        let path = object_path("prices", id)?;
        let answer = self.exchange(Method::Get, &path, None, None).await?;
        if answer.status == 404 && error_field(&answer.body, "code") == "resource_missing" {
            return Ok(None);
        }
        let object = answer.into_result()?.body;
        Price::from_object(&object)
            .map(Some)
            .ok_or_else(|| malformed("GET /v1/prices/{id}", "not a price"))
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
        self.exchange(method, path, form, idempotency_key)
            .await?
            .into_result()
    }

    /// One request and Stripe's answer, whatever its status; only a failure to reach
    /// Stripe or an answer that is not JSON is an error here.
    async fn exchange(
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
            headers.set("Idempotency-Key", &scoped_key(key, form))?;
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
        Ok(Answer {
            what,
            status,
            body,
            replayed,
        })
    }
}

/// Stripe's answer to one request.
struct Answer {
    /// The request, with ids left out, for log lines.
    what: String,
    status: u16,
    body: Value,
    /// Stripe answered with what it saved for an earlier request with the same key.
    replayed: bool,
}

impl Answer {
    /// The answer when it is a success; otherwise `upstream_error` with Stripe's error type
    /// and message (logged, never shown to the caller).
    fn into_result(self) -> Result<Self, AppError> {
        if (200..=299).contains(&self.status) {
            return Ok(self);
        }
        Err(AppError::Upstream {
            service: SERVICE,
            detail: format!(
                "{} answered {}: {} {}",
                self.what,
                self.status,
                error_field(&self.body, "type"),
                error_field(&self.body, "message")
            ),
        })
    }
}

/// A field of Stripe's error envelope (`error.type`, `error.code`, `error.message`), at most
/// 200 characters; empty when absent.
fn error_field(body: &Value, field: &str) -> String {
    body.pointer(&format!("/error/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
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

/// The longest `Idempotency-Key` Stripe accepts.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// `key` scoped to the request's parameters: `<key>:p<16 hex of SHA-256 of the form>`, or,
/// when that would be too long for Stripe, `sha256:<hex of SHA-256 of it>`. The same call
/// with the same parameters always gets the same key, so a retry is still replayed.
fn scoped_key(key: &str, form: Option<&Form>) -> String {
    use sha2::{Digest, Sha256};
    let params = form.map(Form::encode).unwrap_or_default();
    let digest = crate::core::random::hex(&Sha256::digest(params.as_bytes()));
    let scoped = format!("{key}:p{}", &digest[..16]);
    if scoped.len() <= MAX_IDEMPOTENCY_KEY_LEN {
        return scoped;
    }
    let whole = crate::core::random::hex(&Sha256::digest(scoped.as_bytes()));
    format!("sha256:{whole}")
}

fn subscription_path(id: &str) -> Result<String, AppError> {
    object_path("subscriptions", id)
}

/// `/v1/{collection}/{id}`. Ids go into paths: only plain Stripe ids are accepted.
fn object_path(collection: &str, id: &str) -> Result<String, AppError> {
    let plain = !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain {
        return Err(malformed(
            &format!("an id in /v1/{collection}"),
            "is not a Stripe id",
        ));
    }
    Ok(format!("/v1/{collection}/{id}"))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_price_object_reads_as_stripe_documents_it() {
        let monthly = json!({
            "id": "price_1", "object": "price", "active": true, "currency": "USD",
            "unit_amount": 1900, "type": "recurring",
            "recurring": { "interval": "month", "interval_count": 1, "usage_type": "licensed" },
        });
        assert_eq!(
            Price::from_object(&monthly),
            Some(Price {
                id: "price_1".to_owned(),
                active: true,
                currency: "usd".to_owned(),
                unit_amount: Some(1900),
                recurring: Some(("month".to_owned(), 1)),
            })
        );
        let one_time = json!({
            "id": "price_2", "active": false, "currency": "eur", "unit_amount": null,
            "recurring": null, "type": "one_time",
        });
        let read = Price::from_object(&one_time).unwrap();
        assert_eq!(
            (read.active, read.unit_amount, read.recurring),
            (false, None, None)
        );
        assert_eq!(Price::from_object(&json!({ "id": "price_3" })), None);
    }

    #[test]
    fn an_idempotency_key_is_scoped_to_the_parameters_and_stays_short_enough() {
        let basic = Form::new().field("line_items[0][price]", "price_basic");
        let premium = Form::new().field("line_items[0][price]", "price_premium");
        let key = "tollgate:usr_1:checkout:0";
        assert_eq!(scoped_key(key, Some(&basic)), scoped_key(key, Some(&basic)));
        assert_ne!(
            scoped_key(key, Some(&basic)),
            scoped_key(key, Some(&premium))
        );
        assert!(scoped_key(key, Some(&basic)).starts_with("tollgate:usr_1:checkout:0:p"));
        let long = "k".repeat(250);
        let scoped = scoped_key(&long, Some(&basic));
        assert!(scoped.len() <= MAX_IDEMPOTENCY_KEY_LEN, "{}", scoped.len());
        assert_ne!(scoped, scoped_key(&long, Some(&premium)));
    }

    #[test]
    fn only_plain_ids_go_into_paths() {
        assert_eq!(
            object_path("prices", "price_1Ab").unwrap(),
            "/v1/prices/price_1Ab"
        );
        for id in ["", "price_1/../customers", "price 1", "price_1?expand=x"] {
            assert!(object_path("prices", id).is_err(), "{id:?}");
        }
    }
}
