//! The token ledger's pure decisions: what an amount, a reason or a proof URL may be, the
//! pack and social task catalogs (`TOKEN_PACKS`, `SOCIAL_TASKS`), the idempotency key
//! namespaces, how much a refund debits, and the analytics date range.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::body::FieldError;

/// The most tokens one entry may move either way.
pub const MAX_AMOUNT: i64 = 1_000_000_000;

/// The longest reason or reference kept.
pub const MAX_TEXT_CHARS: usize = 200;

/// The longest proof URL accepted, in bytes.
pub const MAX_PROOF_URL_BYTES: usize = 2048;

/// The analytics range when none is asked for, and the longest one accepted.
pub const DEFAULT_RANGE_DAYS: u64 = 30;
pub const MAX_RANGE_DAYS: u64 = 366;

const DAY_MS: u64 = 86_400_000;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TokenEntryKind)]
pub enum Kind {
    /// A pack paid through Stripe.
    Purchase,
    /// Tokens spent by the user.
    Use,
    /// Tokens an admin gave.
    Grant,
    /// A social task's reward.
    SocialReward,
    /// A pack's refund, debited.
    Refund,
    /// Tokens an admin took away.
    Adjustment,
}

// Its serde derive is the API's and reads the column too: the same texts as `as_str`, which
// the tests check both ways.
crate::stored_impls!(Kind("ledger entry kind"));

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Purchase,
        Kind::Use,
        Kind::Grant,
        Kind::SocialReward,
        Kind::Refund,
        Kind::Adjustment,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Use => "use",
            Kind::Grant => "grant",
            Kind::SocialReward => "social_reward",
            Kind::Refund => "refund",
            Kind::Adjustment => "adjustment",
        }
    }

    /// The kind stored under `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        name.parse().ok()
    }
}

/// Idempotency keys, namespaced so a client's key can never collide with the system's.
pub mod keys {
    /// A user's own `use` (their `request_id` / `Idempotency-Key`).
    pub fn client(key: &str) -> String {
        format!("req:{key}")
    }
    /// An admin's `add` on a user's ledger.
    pub fn admin(key: &str) -> String {
        format!("admin:{key}")
    }
    /// A social task's reward: once per user and task.
    pub fn social(task_id: &str) -> String {
        format!("social:{task_id}")
    }
    /// A pack's purchase: once per payment intent, whichever event reports it first.
    pub fn purchase(payment_intent: &str) -> String {
        format!("stripe:pi:{payment_intent}")
    }
    /// A refund's debit: once per charge and cumulative amount refunded.
    pub fn refund(charge: &str, amount_refunded: i64) -> String {
        format!("stripe:refund:{charge}:{amount_refunded}")
    }
    /// A dispute's debit: once per dispute.
    pub fn dispute(dispute: &str) -> String {
        format!("stripe:dispute:{dispute}")
    }
}

/// A whole number of tokens from a JSON value: an integer from 1 to [`MAX_AMOUNT`].
pub fn positive_amount(field: &str, value: &Value) -> Result<i64, FieldError> {
    let amount = integer(field, value)?;
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(amount)
    } else {
        Err(FieldError::new(
            field,
            format!("must be a whole number of tokens from 1 to {MAX_AMOUNT}"),
        ))
    }
}

/// A signed whole number of tokens: not zero, at most [`MAX_AMOUNT`] either way.
pub fn signed_amount(field: &str, value: &Value) -> Result<i64, FieldError> {
    let amount = integer(field, value)?;
    if amount != 0 && amount.abs() <= MAX_AMOUNT {
        Ok(amount)
    } else {
        Err(FieldError::new(
            field,
            format!("must be a non-zero whole number of tokens, at most {MAX_AMOUNT} either way"),
        ))
    }
}

fn integer(field: &str, value: &Value) -> Result<i64, FieldError> {
    match value {
        Value::Null => Err(FieldError::new(field, "is required")),
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            FieldError::new(field, "must be a whole number (no fraction, within range)")
        }),
        _ => Err(FieldError::new(field, "must be a number")),
    }
}

/// A reason or reference: trimmed, 1 to [`MAX_TEXT_CHARS`] printable characters.
pub fn text(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    let count = value.chars().count();
    if count == 0 || count > MAX_TEXT_CHARS || value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_TEXT_CHARS} printable characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Whether `url` is an `https://` URL with a host, without spaces or control characters, of
/// at most `max_bytes`.
pub fn is_https_url(url: &str, max_bytes: usize) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    url.len() <= max_bytes
        && !host.is_empty()
        && !host.starts_with(':')
        && !host.contains('@')
        && url.chars().all(|c| c.is_ascii_graphic())
}

/// A proof URL: `https`, at most [`MAX_PROOF_URL_BYTES`].
pub fn proof_url(value: &str) -> Result<String, FieldError> {
    if is_https_url(value, MAX_PROOF_URL_BYTES) {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            "proof_url",
            format!("must be an https URL of at most {MAX_PROOF_URL_BYTES} bytes"),
        ))
    }
}

/// A token pack for sale (`TOKEN_PACKS`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    /// 1 to 64 of `[a-z0-9_-]`.
    pub id: String,
    pub name: String,
    /// Tokens credited when it is paid.
    pub tokens: i64,
    /// The price in the currency's smallest unit.
    pub price_cents: i64,
    /// ISO 4217, lower case (`usd`).
    pub currency: String,
    /// A one-time Stripe price; without one, Checkout is given the price inline.
    #[serde(default)]
    pub stripe_price_id: Option<String>,
}

/// A social task (`SOCIAL_TASKS`): done once per user for `reward` tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// 1 to 64 of `[a-z0-9_-]`.
    pub id: String,
    pub title: String,
    /// Where it is done (`twitter`, `discord`, ...).
    pub platform: String,
    /// The page to visit: an https URL.
    pub url: String,
    pub reward: i64,
}

fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_label(text: &str) -> bool {
    let count = text.trim().chars().count();
    (1..=100).contains(&count) && !text.chars().any(char::is_control)
}

fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(format!("the id `{id}` is listed twice"));
        }
    }
    Ok(())
}

/// The largest price Stripe's Checkout takes, in the smallest unit.
const MAX_PRICE_CENTS: i64 = 99_999_999;

/// Reads `TOKEN_PACKS`: a JSON list of packs; `Err` says what is wrong.
pub fn parse_packs(json: &str) -> Result<Vec<Pack>, String> {
    let mut packs: Vec<Pack> =
        serde_json::from_str(json).map_err(|e| format!("is not a JSON list of packs: {e}"))?;
    for pack in &mut packs {
        let id = pack.id.clone();
        if !is_id(&id) {
            return Err(format!("pack id `{id}` must be 1 to 64 of [a-z0-9_-]"));
        }
        if !is_label(&pack.name) {
            return Err(format!("pack `{id}`: name must be 1 to 100 characters"));
        }
        if !(1..=MAX_AMOUNT).contains(&pack.tokens) {
            return Err(format!("pack `{id}`: tokens must be 1 to {MAX_AMOUNT}"));
        }
        if !(1..=MAX_PRICE_CENTS).contains(&pack.price_cents) {
            return Err(format!(
                "pack `{id}`: price_cents must be 1 to {MAX_PRICE_CENTS}"
            ));
        }
        pack.currency = pack.currency.to_ascii_lowercase();
        if pack.currency.len() != 3 || !pack.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(format!(
                "pack `{id}`: currency must be a three-letter ISO code"
            ));
        }
        if let Some(price) = &pack.stripe_price_id {
            let plain = price.starts_with("price_")
                && price.len() <= 255
                && price
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !plain {
                return Err(format!(
                    "pack `{id}`: stripe_price_id must be a Stripe price id (price_...) or null"
                ));
            }
        }
    }
    unique_ids(packs.iter().map(|p| p.id.as_str()))?;
    Ok(packs)
}

/// Reads `SOCIAL_TASKS`: a JSON list of tasks; `Err` says what is wrong.
pub fn parse_tasks(json: &str) -> Result<Vec<Task>, String> {
    let tasks: Vec<Task> =
        serde_json::from_str(json).map_err(|e| format!("is not a JSON list of tasks: {e}"))?;
    for task in &tasks {
        let id = &task.id;
        if !is_id(id) {
            return Err(format!("task id `{id}` must be 1 to 64 of [a-z0-9_-]"));
        }
        if !is_label(&task.title) || !is_label(&task.platform) {
            return Err(format!(
                "task `{id}`: title and platform must be 1 to 100 characters"
            ));
        }
        if !is_https_url(&task.url, MAX_PROOF_URL_BYTES) {
            return Err(format!("task `{id}`: url must be an https URL"));
        }
        if !(1..=MAX_AMOUNT).contains(&task.reward) {
            return Err(format!("task `{id}`: reward must be 1 to {MAX_AMOUNT}"));
        }
    }
    unique_ids(tasks.iter().map(|t| t.id.as_str()))?;
    Ok(tasks)
}

/// How many of `credited` tokens a refund of `amount_refunded` out of `amount` (both in the
/// currency's smallest unit, cumulative as Stripe reports them) takes back: proportional,
/// rounded down, all of them for a full refund.
pub fn refund_target(credited: i64, amount_refunded: i64, amount: i64) -> i64 {
    if credited <= 0 || amount <= 0 || amount_refunded <= 0 {
        return 0;
    }
    let refunded = amount_refunded.min(amount) as i128;
    (credited as i128 * refunded / amount as i128) as i64
}

/// A user's balance and debt after one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub balance: i64,
    pub debt: i64,
}

/// What an entry of `amount` does to `before`: a credit repays the debt first (the part
/// repaid is returned beside the new standing) and the rest goes to the balance; a debit
/// takes from the balance and leaves the debt alone. `None` when a debit is more than the
/// balance. [`crate::ledger::store::append`] runs this rule in SQL, in one statement.
pub fn apply_entry(before: Standing, amount: i64) -> Option<(Standing, i64)> {
    let repaid = if amount > 0 {
        before.debt.min(amount)
    } else {
        0
    };
    let balance = before.balance + amount - repaid;
    (balance >= 0).then_some((
        Standing {
            balance,
            debt: before.debt - repaid,
        },
        repaid,
    ))
}

/// What a refund or dispute wanting `want` tokens back does to `before`: it takes what the
/// balance has, and the rest (the shortfall, returned beside the new standing) becomes debt.
/// [`crate::ledger::store::append_refund`] runs this rule in SQL.
pub fn apply_clawback(before: Standing, want: i64) -> (Standing, i64) {
    let taken = before.balance.min(want.max(0));
    let shortfall = want.max(0) - taken;
    (
        Standing {
            balance: before.balance - taken,
            debt: before.debt + shortfall,
        },
        shortfall,
    )
}

/// The date range of an analytics query, epoch millis `[from, to)`: by default the
/// [`DEFAULT_RANGE_DAYS`] before `now_ms`; `from` must be before `to` and the range at most
/// [`MAX_RANGE_DAYS`].
pub fn analytics_range(
    from: Option<u64>,
    to: Option<u64>,
    now_ms: u64,
) -> Result<(u64, u64), FieldError> {
    let to = to.unwrap_or(now_ms);
    let from = from.unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_DAYS * DAY_MS));
    if from >= to {
        return Err(FieldError::new("from", "must be before `to`"));
    }
    if to - from > MAX_RANGE_DAYS * DAY_MS {
        return Err(FieldError::new(
            "from",
            format!("the range may be at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// What earned and spent mean per entry: a credit's amount is earned, a debit's is spent.
pub fn earned_spent(amount: i64) -> (i64, i64) {
    if amount >= 0 {
        (amount, 0)
    } else {
        (0, -amount)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_kinds_map_to_their_column_both_ways() {
        crate::core::stored::check::<super::Kind>();
        assert_eq!(
            super::Kind::from_name("social_reward"),
            Some(super::Kind::SocialReward)
        );
        assert_eq!(super::Kind::from_name("Grant"), None);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_whole_positive_numbers_within_the_limit() {
        assert_eq!(positive_amount("amount", &json!(1)), Ok(1));
        assert_eq!(
            positive_amount("amount", &json!(MAX_AMOUNT)),
            Ok(MAX_AMOUNT)
        );
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(MAX_AMOUNT + 1),
            json!(1e20),
            json!("5"),
            json!(null),
            json!(true),
            json!([1]),
        ] {
            let err = positive_amount("amount", &bad).expect_err(&bad.to_string());
            assert_eq!(err.field, "amount");
        }
        assert_eq!(
            positive_amount("amount", &json!(null)).unwrap_err().message,
            "is required"
        );
    }

    #[test]
    fn signed_amounts_may_be_negative_but_never_zero_or_huge() {
        assert_eq!(signed_amount("amount", &json!(-7)), Ok(-7));
        assert_eq!(signed_amount("amount", &json!(7)), Ok(7));
        assert!(signed_amount("amount", &json!(0)).is_err());
        assert!(signed_amount("amount", &json!(-MAX_AMOUNT - 1)).is_err());
        assert!(signed_amount("amount", &json!(-2.5)).is_err());
    }

    #[test]
    fn reasons_are_trimmed_printable_and_short() {
        assert_eq!(text("reason", "  a call  "), Ok("a call".to_owned()));
        assert!(text("reason", "   ").is_err());
        assert!(text("reason", "a\nb").is_err());
        assert!(text("reason", &"x".repeat(201)).is_err());
        assert!(text("reason", &"é".repeat(200)).is_ok());
    }

    #[test]
    fn proof_urls_are_https_and_bounded() {
        assert!(proof_url("https://x.com/me/status/1").is_ok());
        assert!(proof_url("http://x.com/").is_err());
        assert!(proof_url("https://").is_err());
        assert!(proof_url("https://a b/").is_err());
        assert!(proof_url("javascript:alert(1)").is_err());
        let long = format!("https://x.com/{}", "a".repeat(2048));
        assert!(proof_url(&long).is_err());
    }

    fn standing(balance: i64, debt: i64) -> Standing {
        Standing { balance, debt }
    }

    #[test]
    fn a_credit_repays_the_debt_first_and_the_rest_is_balance() {
        assert_eq!(
            apply_entry(standing(0, 400), 1000),
            Some((standing(600, 0), 400))
        );
        assert_eq!(
            apply_entry(standing(0, 400), 300),
            Some((standing(0, 100), 300))
        );
        assert_eq!(
            apply_entry(standing(0, 400), 400),
            Some((standing(0, 0), 400))
        );
        assert_eq!(apply_entry(standing(50, 0), 10), Some((standing(60, 0), 0)));
    }

    #[test]
    fn a_debit_takes_from_the_balance_only_and_never_below_zero() {
        assert_eq!(apply_entry(standing(50, 0), -50), Some((standing(0, 0), 0)));
        assert_eq!(apply_entry(standing(50, 0), -51), None);
        assert_eq!(apply_entry(standing(0, 400), -1), None);
    }

    #[test]
    fn a_clawback_takes_what_is_there_and_owes_the_rest() {
        assert_eq!(
            apply_clawback(standing(100, 0), 500),
            (standing(0, 400), 400)
        );
        assert_eq!(apply_clawback(standing(900, 0), 500), (standing(400, 0), 0));
        assert_eq!(
            apply_clawback(standing(0, 400), 1000),
            (standing(0, 1400), 1000)
        );
        assert_eq!(apply_clawback(standing(10, 0), 0), (standing(10, 0), 0));
    }

    #[test]
    fn client_keys_never_collide_with_system_keys() {
        let client = keys::client("stripe:pi:pi_1");
        assert_ne!(client, keys::purchase("pi_1"));
        assert_ne!(keys::admin("x"), keys::client("x"));
        assert_eq!(keys::refund("ch_1", 500), "stripe:refund:ch_1:500");
        assert_eq!(keys::social("follow"), "social:follow");
        assert_eq!(keys::dispute("dp_1"), "stripe:dispute:dp_1");
    }

    #[test]
    fn a_pack_catalog_is_validated_whole() {
        let good = r#"[{"id":"small","name":"Small","tokens":100,"price_cents":500,"currency":"USD","stripe_price_id":null},
                       {"id":"big","name":"Big","tokens":1000,"price_cents":4000,"currency":"usd","stripe_price_id":"price_1Big"}]"#;
        let packs = parse_packs(good).unwrap();
        assert_eq!(packs.len(), 2);
        assert_eq!(packs[0].currency, "usd");
        assert_eq!(packs[1].stripe_price_id.as_deref(), Some("price_1Big"));
        assert_eq!(parse_packs("[]"), Ok(vec![]));
        for bad in [
            "{}",
            r#"[{"id":"Small","name":"S","tokens":1,"price_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"s","name":"S","tokens":0,"price_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"s","name":"S","tokens":1,"price_cents":0,"currency":"usd"}]"#,
            r#"[{"id":"s","name":"S","tokens":1.5,"price_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"s","name":"S","tokens":1,"price_cents":1,"currency":"dollars"}]"#,
            r#"[{"id":"s","name":"S","tokens":1,"price_cents":1,"currency":"usd","stripe_price_id":"prod_1"}]"#,
            r#"[{"id":"s","name":"S","tokens":1,"price_cents":1,"currency":"usd","extra":1}]"#,
            r#"[{"id":"s","name":"S","tokens":1,"price_cents":1,"currency":"usd"},{"id":"s","name":"T","tokens":1,"price_cents":1,"currency":"usd"}]"#,
        ] {
            assert!(parse_packs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_task_catalog_is_validated_whole() {
        let good = r#"[{"id":"follow-x","title":"Follow us","platform":"x","url":"https://x.com/t","reward":50}]"#;
        assert_eq!(parse_tasks(good).unwrap()[0].reward, 50);
        for bad in [
            r#"[{"id":"a","title":"T","platform":"x","url":"http://x.com","reward":5}]"#,
            r#"[{"id":"a","title":"T","platform":"x","url":"https://x.com","reward":0}]"#,
            r#"[{"id":"a b","title":"T","platform":"x","url":"https://x.com","reward":5}]"#,
            r#"[{"id":"a","title":"","platform":"x","url":"https://x.com","reward":5}]"#,
            r#"[{"id":"a","title":"T","platform":"x","url":"https://x.com","reward":5},{"id":"a","title":"U","platform":"x","url":"https://x.com","reward":5}]"#,
        ] {
            assert!(parse_tasks(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refunds_take_back_a_proportional_share_rounded_down() {
        assert_eq!(refund_target(1000, 500, 500), 1000);
        assert_eq!(refund_target(1000, 250, 500), 500);
        assert_eq!(refund_target(1000, 1, 3), 333);
        assert_eq!(refund_target(1000, 3, 3), 1000);
        assert_eq!(
            refund_target(1000, 900, 500),
            1000,
            "never more than credited"
        );
        assert_eq!(refund_target(1000, 0, 500), 0);
        assert_eq!(
            refund_target(MAX_AMOUNT, 99_999_998, 99_999_999),
            999_999_989
        );
    }

    #[test]
    fn the_analytics_range_defaults_to_thirty_days_and_is_bounded() {
        let now = 400 * DAY_MS;
        assert_eq!(analytics_range(None, None, now), Ok((370 * DAY_MS, now)));
        assert_eq!(
            analytics_range(Some(DAY_MS), Some(2 * DAY_MS), now),
            Ok((DAY_MS, 2 * DAY_MS))
        );
        assert!(analytics_range(Some(2 * DAY_MS), Some(DAY_MS), now).is_err());
        assert!(analytics_range(Some(0), Some(367 * DAY_MS), now).is_err());
        assert!(analytics_range(Some(0), Some(366 * DAY_MS), now).is_ok());
    }

    #[test]
    fn credits_are_earned_and_debits_spent() {
        assert_eq!(earned_spent(5), (5, 0));
        assert_eq!(earned_spent(-5), (0, 5));
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
    }
}
