//! The one clock: every capability reads the time here (the worker's `Date::now`), never
//! from `Date` itself, so what "now" means is decided in one place. Within a request, the
//! pipeline's reading is [`crate::http::RequestCtx::now_ms`].

use worker::Date;

use crate::core::time::rfc3339_from_millis;

/// Now, epoch milliseconds.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Now, epoch seconds.
pub fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

/// Now, as stored and shown: RFC 3339 UTC.
pub fn now() -> String {
    rfc3339_from_millis(now_ms())
}
