//! Metering's settings: how long a reservation holds quota.

use crate::core::settings::{number, Loader};

/// `RESERVATION_TTL_SECS`: how long an unsettled usage reservation holds quota before it is
/// released; default 600 (10 minutes), 10 to 86400.
pub(crate) fn reservation_ttl_secs(l: &mut Loader<'_>) -> u64 {
    let source = l.source;
    l.or(
        number(source, "RESERVATION_TTL_SECS", 600, 10..=86_400),
        600,
    )
}
