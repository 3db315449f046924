//! The plan catalog the worker runs with in the tests (`PLAN_CATALOG`).
//!
//! It is the default catalog's limits (voice characters a hundredth of the tokens) with rates
//! chosen for testing: `free` keeps the shipped 100 requests per minute (the `RATE_LIMIT_100`
//! binding in wrangler.dev.toml), the paid plans are unlimited so concurrency cases can send
//! hundreds of requests for one user, and `legacy` asks for a rate no binding enforces.

use serde_json::{json, Value};

/// The requests per minute of `free`, enforced by `RATE_LIMIT_100`.
pub const FREE_REQUESTS_PER_MINUTE: usize = 100;
/// The rate of `legacy`; wrangler.dev.toml has no `RATE_LIMIT_7`.
pub const UNBOUND_REQUESTS_PER_MINUTE: u32 = 7;

/// The Stripe price of the basic plan (the fake Stripe knows it).
pub const BASIC_PRICE: &str = "price_e2e_basic";
/// The Stripe price of the premium plan.
pub const PREMIUM_PRICE: &str = "price_e2e_premium";

/// The Stripe price the platform tests' `pro` tier sells through (monthly, USD), and its
/// amount in cents: `PUT /api/developer/tiers` checks it at the fake Stripe.
pub const TIER_PRICE: (&str, i64) = ("price_e2e_pro", 1900);

/// Every Stripe price of the catalog, with its amount in cents.
pub fn stripe_prices() -> [(&'static str, i64); 2] {
    [(BASIC_PRICE, 999), (PREMIUM_PRICE, 2999)]
}

/// The catalog, as the worker is given it.
pub fn catalog() -> Value {
    let plan = |id: &str,
                name: &str,
                tokens: Value,
                calls: Value,
                keys: Value,
                rate: Value,
                price: Value,
                stripe_price: Value| {
        json!({
            "id": id,
            "name": name,
            "voice_chars_per_month": tokens.as_u64().map_or(Value::Null, |t| json!(t / 100)),
            "tokens_per_month": tokens,
            "calls_per_month": calls,
            "api_keys": keys,
            "concurrent_sessions": keys,
            "requests_per_minute": rate,
            "price_cents": price,
            "stripe_price_id": stripe_price,
        })
    };
    json!([
        plan(
            "free",
            "Free",
            json!(1_000_000),
            json!(5),
            json!(1),
            json!(FREE_REQUESTS_PER_MINUTE),
            json!(0),
            Value::Null
        ),
        plan(
            "basic",
            "Basic",
            json!(10_000_000),
            json!(500),
            json!(3),
            Value::Null,
            json!(stripe_prices()[0].1),
            json!(BASIC_PRICE)
        ),
        plan(
            "premium",
            "Premium",
            json!(50_000_000),
            json!(500),
            json!(10),
            Value::Null,
            json!(stripe_prices()[1].1),
            json!(PREMIUM_PRICE)
        ),
        plan(
            "enterprise",
            "Enterprise",
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ),
        plan(
            "legacy",
            "Legacy",
            json!(1_000_000),
            json!(5),
            json!(1),
            json!(UNBOUND_REQUESTS_PER_MINUTE),
            Value::Null,
            Value::Null
        ),
    ])
}

/// The settings that give the worker this catalog.
pub fn worker_vars() -> Vec<(&'static str, String)> {
    vec![("PLAN_CATALOG", catalog().to_string())]
}
