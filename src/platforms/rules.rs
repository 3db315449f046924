//! Platforms' rules: platform keys, tier lists and their validation, end-user ids and the
//! metered subject they name, and which tier applies to a call.

use serde::{Deserialize, Serialize};

use crate::core::body::FieldError;
use crate::core::secret_key::KeyFormat;
use crate::upstream::stripe::Price;

/// Platform keys: `pk_live_<32 base62>`, stored as SHA-256, masked elsewhere.
pub const KEY: KeyFormat = KeyFormat { prefix: "pk_live_" };

/// Every platform id starts with this.
pub const ID_PREFIX: &str = "plt_";

/// The most tiers a platform may have.
pub const MAX_TIERS: usize = 20;

/// The longest end-user id accepted, in bytes.
pub const MAX_END_USER_ID: usize = 128;

/// The most calls one `POST /api/data` may count.
pub const MAX_AMOUNT: u64 = 1_000_000;

/// How many public registrations one client IP may make per window, and the window.
pub const SIGNUPS_PER_WINDOW: u64 = 5;
pub const SIGNUP_WINDOW_MS: u64 = 3_600_000;

/// Requests per minute per end user per platform.
pub const END_USER_REQUESTS_PER_MINUTE: u32 = 100;

/// One tier of a platform's pricing: what its end users on it may call per month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Stable id (`free`, `pro`): 1–32 of `[a-z0-9_-]`.
    pub id: String,
    /// Name shown to people: 1–64 characters.
    pub name: String,
    /// Calls per calendar month (UTC); `null` is unlimited.
    #[serde(default)]
    #[schema(required = true)]
    pub calls_per_month: Option<u64>,
    /// Monthly price in the currency's smallest unit (cents).
    pub price_cents: u64,
    /// ISO 4217 code, lower case (`usd`).
    pub currency: String,
    /// The Stripe price that sells this tier, if any (`price_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_price_id: Option<String>,
}

/// The tiers a new platform starts with: free (5 calls a month) and paid (500, $29).
pub fn default_tiers() -> Vec<Tier> {
    vec![
        Tier {
            id: "free".to_owned(),
            name: "Free".to_owned(),
            calls_per_month: Some(5),
            price_cents: 0,
            currency: "usd".to_owned(),
            stripe_price_id: None,
        },
        Tier {
            id: "paid".to_owned(),
            name: "Paid".to_owned(),
            calls_per_month: Some(500),
            price_cents: 2900,
            currency: "usd".to_owned(),
            stripe_price_id: None,
        },
    ]
}

fn is_tier_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The tier list, checked: 1–[`MAX_TIERS`] tiers with unique well-formed ids, names of 1–64
/// characters, a three-letter currency (lower-cased), prices and limits in range, and Stripe
/// price ids that look like Stripe's. Every problem is reported, each under its field
/// (`tiers[1].id`).
pub fn validate_tiers(mut tiers: Vec<Tier>) -> Result<Vec<Tier>, Vec<FieldError>> {
    let mut problems = Vec::new();
    if tiers.is_empty() || tiers.len() > MAX_TIERS {
        problems.push(FieldError::new(
            "tiers",
            format!("must hold 1 to {MAX_TIERS} tiers"),
        ));
    }
    for i in 0..tiers.len() {
        let field = |name: &str| format!("tiers[{i}].{name}");
        let tier = &mut tiers[i];
        tier.currency = tier.currency.to_ascii_lowercase();
        if !is_tier_id(&tier.id) {
            problems.push(FieldError::new(field("id"), "must be 1-32 of [a-z0-9_-]"));
        }
        let name_len = tier.name.trim().chars().count();
        if name_len == 0
            || tier.name.chars().count() > 64
            || tier.name.chars().any(char::is_control)
        {
            problems.push(FieldError::new(field("name"), "must be 1-64 characters"));
        }
        if tier.calls_per_month.is_some_and(|n| n > 1_000_000_000_000) {
            problems.push(FieldError::new(
                field("calls_per_month"),
                "must be at most 10^12 (or null for unlimited)",
            ));
        }
        if tier.price_cents > 100_000_000 {
            problems.push(FieldError::new(
                field("price_cents"),
                "must be at most 100000000",
            ));
        }
        if tier.currency.len() != 3 || !tier.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            problems.push(FieldError::new(
                field("currency"),
                "must be a three-letter ISO 4217 code such as usd",
            ));
        }
        if let Some(price) = &tier.stripe_price_id {
            let ok = price.len() <= 255
                && price.strip_prefix("price_").is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            if !ok {
                problems.push(FieldError::new(
                    field("stripe_price_id"),
                    "must be a Stripe price id (price_...)",
                ));
            }
        }
        let tier = &tiers[i];
        if tiers[..i].iter().any(|t| t.id == tier.id) {
            problems.push(FieldError::new(
                field("id"),
                format!("`{}` is repeated", tier.id),
            ));
        }
    }
    if problems.is_empty() {
        Ok(tiers)
    } else {
        Err(problems)
    }
}

/// What is wrong with selling `tier` through `price`, the Stripe price its `stripe_price_id`
/// names (`None`: Stripe has no such price); `None` when nothing is. A tier's price must
/// exist, be active, bill monthly, and charge the tier's `price_cents` in its `currency`,
/// so the list end users see is what Stripe charges them.
pub fn price_problem(tier: &Tier, price: Option<&Price>) -> Option<String> {
    let Some(price) = price else {
        return Some("Stripe has no such price".to_owned());
    };
    if !price.active {
        return Some("the Stripe price is archived (not active)".to_owned());
    }
    if price
        .recurring
        .as_ref()
        .map(|(every, n)| (every.as_str(), *n))
        != Some(("month", 1))
    {
        return Some("the Stripe price must be recurring every month".to_owned());
    }
    let amount = price.unit_amount.map_or("no fixed amount".to_owned(), |a| {
        format!("{a} {}", price.currency)
    });
    let matches = price.unit_amount == i64::try_from(tier.price_cents).ok()
        && price.currency == tier.currency;
    if !matches {
        return Some(format!(
            "the Stripe price charges {amount}, the tier says {} {}",
            tier.price_cents, tier.currency
        ));
    }
    None
}

/// The stored tier list (written by [`validate_tiers`]); an unreadable one reads as the
/// defaults, never as no tiers.
pub fn tiers_from_stored(json: &str) -> Vec<Tier> {
    serde_json::from_str::<Vec<Tier>>(json)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(default_tiers)
}

/// An end-user id as a platform sends it (`X-User-Id`) or as an end-user token's subject:
/// 1–[`MAX_END_USER_ID`] bytes of visible ASCII.
pub fn end_user_id(raw: &str) -> Result<&str, &'static str> {
    if raw.is_empty() {
        return Err("is required");
    }
    if raw.len() > MAX_END_USER_ID {
        return Err("must be at most 128 bytes");
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII characters, without spaces");
    }
    Ok(raw)
}

/// The metered subject id of an end user: the platform's id and theirs. Platform ids never
/// hold `:`, so the pair is unambiguous, and the same end-user id on two platforms is two
/// subjects.
pub fn subject_id(platform_id: &str, end_user_id: &str) -> String {
    format!("{platform_id}:{end_user_id}")
}

/// Whether `text` has the shape of a platform id (`plt_` and 1–64 of `[A-Za-z0-9]`).
pub fn looks_like_platform_id(text: &str) -> bool {
    text.strip_prefix(ID_PREFIX).is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Why no tier applies to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierRefusal {
    /// The stated tier is not one of the platform's (`400` on the field that stated it).
    Unknown(String),
    /// The stated tier has a price and the end user has not paid for it (`400` on the field).
    NotPaid(String),
    /// The end user has not paid and the platform has no tier without a price (`402`).
    NoUnpaidTier,
}

/// Which tier applies to a call. Once the end user has paid, Tollgate's record decides: the
/// stored tier (set by a paid Checkout, cleared when the subscription ends) applies whatever
/// the call states, so a stated tier can neither lift nor lower it. Before that, the platform
/// may state a tier (`X-User-Plan`, or the end-user token's `plan`) only among its unpaid
/// tiers (`price_cents` 0); without one the platform's first unpaid tier applies. A stated
/// tier the platform does not have is refused either way.
pub fn applicable_tier<'a>(
    tiers: &'a [Tier],
    stated: Option<&str>,
    stored: Option<&str>,
) -> Result<&'a Tier, TierRefusal> {
    let find = |id: &str| tiers.iter().find(|t| t.id == id);
    let stated = match stated {
        Some(id) => Some(find(id).ok_or_else(|| {
            let ids: Vec<&str> = tiers.iter().map(|t| t.id.as_str()).collect();
            TierRefusal::Unknown(format!(
                "`{id}` is not one of this platform's tiers: {}",
                ids.join(", ")
            ))
        })?),
        None => None,
    };
    if let Some(paid) = stored.and_then(find) {
        return Ok(paid);
    }
    match stated {
        Some(tier) if tier.price_cents > 0 => Err(TierRefusal::NotPaid(format!(
            "`{}` is a paid tier: an end user is on it once they have paid for it \
             (POST /api/create-checkout), not because a call says so",
            tier.id
        ))),
        Some(tier) => Ok(tier),
        None => tiers
            .iter()
            .find(|t| t.price_cents == 0)
            .ok_or(TierRefusal::NoUnpaidTier),
    }
}

/// Why a platform key sent by a browser (a request with an `Origin` header) is refused, or
/// `None` for a request from a server. A platform key is a server secret: one a browser holds
/// is one every visitor of the page can read.
pub fn key_from_browser(origin: Option<&str>) -> Option<&'static str> {
    origin.map(|_| {
        "platform keys (pk_live_...) are server secrets: call this from your server, never \
         from a browser (this request carried an Origin header); rotate a key a browser has \
         held with POST /generate-credentials"
    })
}

/// The start of the signup window that admits a registration at `now_ms`, given the window
/// as stored (`None`: no registration from this IP yet), and whether it is admitted.
pub fn signup_admitted(window: Option<(u64, u64)>, now_ms: u64) -> bool {
    match window {
        Some((start, count)) if now_ms < start + SIGNUP_WINDOW_MS => count < SIGNUPS_PER_WINDOW,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(id: &str) -> Tier {
        Tier {
            id: id.to_owned(),
            name: id.to_uppercase(),
            calls_per_month: Some(10),
            price_cents: 0,
            currency: "USD".to_owned(),
            stripe_price_id: None,
        }
    }

    fn monthly(amount: i64, currency: &str) -> Price {
        Price {
            id: "price_x".to_owned(),
            active: true,
            currency: currency.to_owned(),
            unit_amount: Some(amount),
            recurring: Some(("month".to_owned(), 1)),
        }
    }

    #[test]
    fn a_tier_sells_only_through_an_active_monthly_price_of_its_own_amount() {
        let mut pro = tier("pro");
        pro.price_cents = 1900;
        pro.currency = "usd".to_owned();
        assert_eq!(price_problem(&pro, Some(&monthly(1900, "usd"))), None);
        let wrong = |price: Price| price_problem(&pro, Some(&price)).unwrap();
        assert!(price_problem(&pro, None).unwrap().contains("no such price"));
        assert!(wrong(monthly(2900, "usd")).contains("charges 2900 usd, the tier says 1900 usd"));
        assert!(wrong(monthly(1900, "eur")).contains("charges 1900 eur"));
        let archived = Price {
            active: false,
            ..monthly(1900, "usd")
        };
        assert!(wrong(archived).contains("archived"));
        for recurring in [None, Some(("year", 1)), Some(("month", 3))] {
            let price = Price {
                recurring: recurring.map(|(every, n)| (every.to_owned(), n)),
                ..monthly(1900, "usd")
            };
            assert!(wrong(price).contains("every month"));
        }
        let tiered = Price {
            unit_amount: None,
            ..monthly(1900, "usd")
        };
        assert!(wrong(tiered).contains("no fixed amount"));
    }

    #[test]
    fn a_platform_key_from_a_browser_is_refused() {
        assert!(key_from_browser(Some("https://app.example.com")).is_some());
        assert!(key_from_browser(Some("null")).is_some());
        assert_eq!(key_from_browser(None), None);
    }

    #[test]
    fn a_valid_list_is_kept_with_currencies_lower_cased() {
        let tiers = validate_tiers(vec![tier("free"), tier("pro")]).unwrap();
        assert_eq!(tiers[0].currency, "usd");
        assert_eq!(tiers.len(), 2);
    }

    #[test]
    fn every_problem_is_reported_under_its_field() {
        let mut bad = tier("Pro!");
        bad.currency = "dollars".to_owned();
        bad.stripe_price_id = Some("prod_1".to_owned());
        bad.name = String::new();
        let fields: Vec<String> = validate_tiers(vec![tier("free"), bad, tier("free")])
            .unwrap_err()
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(
            fields,
            [
                "tiers[1].id",
                "tiers[1].name",
                "tiers[1].currency",
                "tiers[1].stripe_price_id",
                "tiers[2].id"
            ]
        );
    }

    #[test]
    fn a_list_holds_one_to_twenty_tiers() {
        assert!(validate_tiers(Vec::new()).is_err());
        let many: Vec<Tier> = (0..21).map(|i| tier(&format!("t{i}"))).collect();
        assert!(validate_tiers(many).is_err());
        let twenty: Vec<Tier> = (0..20).map(|i| tier(&format!("t{i}"))).collect();
        assert!(validate_tiers(twenty).is_ok());
    }

    #[test]
    fn a_stated_tier_chooses_only_among_unpaid_tiers_until_the_end_user_has_paid() {
        let pro = Tier {
            price_cents: 1900,
            ..tier("pro")
        };
        let tiers = vec![tier("free"), tier("lite"), pro.clone()];
        let applies = |stated, stored| applicable_tier(&tiers, stated, stored).map(|t| &t.id[..]);
        // Unpaid: the first unpaid tier, or an unpaid one the call states; never a paid one.
        assert_eq!(applies(None, None), Ok("free"));
        assert_eq!(applies(Some("lite"), None), Ok("lite"));
        assert!(matches!(
            applies(Some("pro"), None),
            Err(TierRefusal::NotPaid(_))
        ));
        assert!(matches!(
            applies(Some("gold"), None),
            Err(TierRefusal::Unknown(_))
        ));
        // Paid: the record decides; a stated tier neither lifts nor lowers it.
        assert_eq!(applies(None, Some("pro")), Ok("pro"));
        assert_eq!(applies(Some("free"), Some("pro")), Ok("pro"));
        assert!(matches!(
            applies(Some("gold"), Some("pro")),
            Err(TierRefusal::Unknown(_))
        ));
        // A paid tier the platform no longer has: as if unpaid.
        assert_eq!(applies(Some("lite"), Some("gone")), Ok("lite"));
        // No unpaid tier and no payment: nothing applies.
        assert_eq!(
            applicable_tier(&[pro], None, None),
            Err(TierRefusal::NoUnpaidTier)
        );
    }

    #[test]
    fn end_user_ids_are_visible_ascii_and_scoped_by_platform() {
        assert_eq!(
            end_user_id("user-42@example.com"),
            Ok("user-42@example.com")
        );
        assert!(end_user_id("").is_err());
        assert!(end_user_id("two words").is_err());
        assert!(end_user_id(&"x".repeat(129)).is_err());
        assert_ne!(subject_id("plt_a", "u1"), subject_id("plt_b", "u1"));
        assert_eq!(subject_id("plt_a", "u:1"), "plt_a:u:1");
    }

    #[test]
    fn platform_keys_and_ids_have_their_shapes() {
        let key = KEY.generate();
        assert!(key.starts_with("pk_live_") && KEY.looks_like(&key));
        assert!(looks_like_platform_id("plt_abc123"));
        assert!(!looks_like_platform_id("plt_"));
        assert!(!looks_like_platform_id("plt_a:b"));
    }

    #[test]
    fn the_default_tiers_are_free_5_and_paid_500_at_29_dollars() {
        let tiers = default_tiers();
        assert_eq!(validate_tiers(tiers.clone()).unwrap(), tiers);
        assert_eq!(tiers[0].calls_per_month, Some(5));
        assert_eq!(
            (tiers[1].calls_per_month, tiers[1].price_cents),
            (Some(500), 2900)
        );
        assert_eq!(tiers_from_stored("not json"), tiers);
    }

    #[test]
    fn an_ip_may_register_five_times_an_hour() {
        assert!(signup_admitted(None, 0));
        assert!(signup_admitted(Some((1000, 4)), 2000));
        assert!(!signup_admitted(Some((1000, 5)), 2000));
        assert!(signup_admitted(Some((1000, 5)), 1000 + SIGNUP_WINDOW_MS));
    }
}
