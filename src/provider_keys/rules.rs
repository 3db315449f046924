//! The credit flow for OpenRouter keys, as pure rules.
//!
//! A user holds one provider key with a small USD limit and a balance of credits (1 credit =
//! 1 USD). Each `POST /api/key` looks at the key: the key's spend since the last look is
//! deducted from the credits, a key close to its limit is replaced by a fresh one, and a user
//! whose credits have run down is reset to the initial allotment with a fresh key.
//!
//! Amounts are integer micro-USD everywhere here; USD decimals exist only on the wire.

/// Micro-USD in one USD (and in one credit).
pub const MICROS_PER_USD: i64 = 1_000_000;

/// The largest amount accepted anywhere (one billion USD): far past any real balance, small
/// enough that sums of a few never overflow.
pub const MAX_MICROS: i64 = 1_000_000_000 * MICROS_PER_USD;

/// Parses a non-negative USD decimal with at most six fraction digits (`"10"`, `"0.5"`,
/// `"0.000001"`) exactly, without going through floating point.
pub fn parse_usd(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut scaled: i64 = 0;
    for (i, b) in fraction.bytes().enumerate() {
        scaled += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    let micros = whole.checked_mul(MICROS_PER_USD)?.checked_add(scaled)?;
    (micros <= MAX_MICROS).then_some(micros)
}

/// A USD amount from a JSON number (OpenRouter's wire format, or a request body), rounded
/// to the nearest micro-USD. `None` for NaN, infinities and amounts past [`MAX_MICROS`].
pub fn micros_from_usd(usd: f64) -> Option<i64> {
    let micros = (usd * MICROS_PER_USD as f64).round();
    (micros.is_finite() && micros.abs() <= MAX_MICROS as f64).then_some(micros as i64)
}

/// A micro-USD amount as a USD decimal for the wire.
pub fn usd(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_USD as f64
}

/// The amounts that drive the flow (all configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditPolicy {
    /// Credits a new (or reset) user starts with. `CREDITS_INITIAL`, default 10.
    pub initial_credits: i64,
    /// The USD limit each provider key is created with. `OPENROUTER_KEY_LIMIT`, default 1.
    pub key_limit: i64,
    /// A user whose credits are at or below this is reset. `CREDITS_RESET_AT`, default 0.1.
    pub reset_at_or_below: i64,
    /// A key with this much or less of its limit left is rotated. `OPENROUTER_ROTATE_AT`,
    /// default 0.5.
    pub rotate_at_or_below: i64,
}

impl Default for CreditPolicy {
    fn default() -> Self {
        Self {
            initial_credits: 10 * MICROS_PER_USD,
            key_limit: MICROS_PER_USD,
            reset_at_or_below: MICROS_PER_USD / 10,
            rotate_at_or_below: MICROS_PER_USD / 2,
        }
    }
}

/// When OpenRouter resets a key's limit (its `limit_reset`): at midnight UTC every day, every
/// Monday-to-Sunday week, or every month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    /// Parses `daily`, `weekly`, `monthly`, or `none` (never reset: `None`).
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "daily" => Ok(Some(Self::Daily)),
            "weekly" => Ok(Some(Self::Weekly)),
            "monthly" => Ok(Some(Self::Monthly)),
            "none" => Ok(None),
            _ => Err(format!(
                "`{}` is not daily, weekly, monthly or none",
                text.trim()
            )),
        }
    }

    /// The value OpenRouter expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
}

crate::stored_enum! {
    /// What a credit ledger line is (`credit_ledger.kind`): the initial credits of a user's
    /// first key (`grant`) or of a replacement after their credits ran down (`reset`), what
    /// the key spent (`usage`), or an admin's change (`adjustment`).
    pub enum CreditKind ("credit ledger kind") {
        Grant = "grant",
        Usage = "usage",
        Reset = "reset",
        Adjustment = "adjustment",
    }
}

/// What is stored about a user's current key and credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// The credit balance.
    pub credits: i64,
    /// The key's cumulative spend when it was last looked at.
    pub key_usage: i64,
}

/// The first thing to do for a `POST /api/key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The user has no key yet: create one and grant the initial credits.
    Create,
    /// The credits have run down: a fresh key, and credits back to the initial amount.
    Reset,
    /// Read the key's usage at the provider, then [`settle`].
    Read,
}

/// Decides the first step from what is stored (`None`: the user has no key).
pub fn first_step(policy: &CreditPolicy, holding: Option<&Holding>) -> Step {
    match holding {
        None => Step::Create,
        Some(h) if h.credits <= policy.reset_at_or_below => Step::Reset,
        Some(_) => Step::Read,
    }
}

/// What the provider says about the key now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyReading {
    /// The key exists.
    Live {
        /// Cumulative spend.
        usage: i64,
        /// What is left of its limit.
        remaining: i64,
        /// Whether it has been disabled.
        disabled: bool,
    },
    /// The provider no longer knows the key (deleted outside Tollgate).
    Gone,
}

/// What reading the key leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// Spend since the last look, deducted from the credits (never negative).
    pub consumed: i64,
    /// The balance after the deduction (never below zero).
    pub credits_after: i64,
    /// The key must be replaced by a fresh one.
    pub rotate: bool,
}

/// Deducts the key's spend since the last look and decides whether to rotate it: when its
/// remaining limit is at or below the threshold, when it is disabled or gone, or when an
/// operator forces it. A key that is gone tells nothing about its spend, so nothing is
/// deducted for it.
pub fn settle(
    policy: &CreditPolicy,
    holding: &Holding,
    reading: KeyReading,
    force_rotate: bool,
) -> Settlement {
    let (consumed, worn_out) = match reading {
        KeyReading::Live {
            usage,
            remaining,
            disabled,
        } => (
            usage.saturating_sub(holding.key_usage).max(0),
            disabled || remaining <= policy.rotate_at_or_below,
        ),
        KeyReading::Gone => (0, true),
    };
    Settlement {
        consumed,
        credits_after: holding.credits.saturating_sub(consumed).max(0),
        rotate: force_rotate || worn_out,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credit_ledger_kinds_map_to_their_column_both_ways() {
        crate::core::stored::check::<super::CreditKind>();
    }

    use super::*;

    const USD: i64 = MICROS_PER_USD;

    fn holding(credits: i64, key_usage: i64) -> Holding {
        Holding { credits, key_usage }
    }

    fn live(usage: i64, remaining: i64) -> KeyReading {
        KeyReading::Live {
            usage,
            remaining,
            disabled: false,
        }
    }

    #[test]
    fn usd_decimals_parse_exactly() {
        assert_eq!(parse_usd("10"), Some(10 * USD));
        assert_eq!(parse_usd("0.1"), Some(100_000));
        assert_eq!(parse_usd("0.5"), Some(500_000));
        assert_eq!(parse_usd(" 1.000001 "), Some(1_000_001));
        assert_eq!(parse_usd("0"), Some(0));
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.0000001",
            "1e3",
            "ten",
            "1,5",
            "99999999999",
        ] {
            assert_eq!(parse_usd(bad), None, "{bad}");
        }
    }

    #[test]
    fn wire_amounts_round_to_micros() {
        assert_eq!(micros_from_usd(0.25), Some(250_000));
        assert_eq!(micros_from_usd(0.1 + 0.2), Some(300_000));
        assert_eq!(micros_from_usd(-0.5), Some(-500_000));
        assert_eq!(micros_from_usd(f64::NAN), None);
        assert_eq!(micros_from_usd(1e12), None);
        assert!((usd(9_750_000) - 9.75).abs() < 1e-12);
    }

    #[test]
    fn limit_resets_are_openrouters_periods_or_none() {
        assert_eq!(LimitReset::parse("daily"), Ok(Some(LimitReset::Daily)));
        assert_eq!(LimitReset::parse(" Weekly "), Ok(Some(LimitReset::Weekly)));
        assert_eq!(LimitReset::parse("monthly"), Ok(Some(LimitReset::Monthly)));
        assert_eq!(LimitReset::parse("none"), Ok(None));
        for bad in ["", "hourly", "yearly", "null"] {
            assert!(LimitReset::parse(bad).is_err(), "{bad}");
        }
        for reset in [LimitReset::Daily, LimitReset::Weekly, LimitReset::Monthly] {
            assert_eq!(LimitReset::parse(reset.as_str()), Ok(Some(reset)));
        }
    }

    #[test]
    fn the_first_step_follows_the_seed_diagram() {
        let p = CreditPolicy::default();
        assert_eq!(first_step(&p, None), Step::Create);
        assert_eq!(first_step(&p, Some(&holding(USD / 10, 0))), Step::Reset);
        assert_eq!(first_step(&p, Some(&holding(0, 0))), Step::Reset);
        assert_eq!(first_step(&p, Some(&holding(USD / 10 + 1, 0))), Step::Read);
    }

    #[test]
    fn exactly_the_spend_since_the_last_look_is_deducted() {
        let p = CreditPolicy::default();
        let s = settle(
            &p,
            &holding(10 * USD, 200_000),
            live(450_000, 550_000),
            false,
        );
        assert_eq!(
            s,
            Settlement {
                consumed: 250_000,
                credits_after: 9_750_000,
                rotate: false
            }
        );
        // Nothing spent: nothing deducted.
        let s = settle(
            &p,
            &holding(5 * USD, 300_000),
            live(300_000, 700_000),
            false,
        );
        assert_eq!((s.consumed, s.credits_after), (0, 5 * USD));
        // A usage figure below the baseline (provider-side correction) deducts nothing.
        let s = settle(
            &p,
            &holding(5 * USD, 300_000),
            live(100_000, 900_000),
            false,
        );
        assert_eq!(s.consumed, 0);
    }

    #[test]
    fn a_key_at_or_below_the_threshold_is_rotated() {
        let p = CreditPolicy::default();
        assert!(settle(&p, &holding(USD, 0), live(500_000, 500_000), false).rotate);
        assert!(!settle(&p, &holding(USD, 0), live(499_999, 500_001), false).rotate);
        let disabled = KeyReading::Live {
            usage: 0,
            remaining: USD,
            disabled: true,
        };
        assert!(settle(&p, &holding(USD, 0), disabled, false).rotate);
        assert!(settle(&p, &holding(USD, 0), live(0, USD), true).rotate);
    }

    #[test]
    fn a_gone_key_is_replaced_without_a_deduction() {
        let p = CreditPolicy::default();
        let s = settle(&p, &holding(3 * USD, 400_000), KeyReading::Gone, false);
        assert_eq!(
            s,
            Settlement {
                consumed: 0,
                credits_after: 3 * USD,
                rotate: true
            }
        );
    }

    #[test]
    fn credits_never_go_below_zero() {
        let p = CreditPolicy::default();
        let s = settle(&p, &holding(200_000, 0), live(900_000, 100_000), false);
        assert_eq!((s.consumed, s.credits_after), (900_000, 0));
    }
}
