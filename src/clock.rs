//! The clock every capability reads: the worker's `Date::now`.

use worker::Date;

use crate::core::time::rfc3339_from_millis;

/// Now, as stored and shown: RFC 3339 UTC.
pub fn now() -> String {
    rfc3339_from_millis(Date::now().as_millis())
}
