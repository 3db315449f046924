//! The request pipeline's own settings: CORS, body limits, dedicated hosts, and which
//! requests get a log line. An invalid CORS or body setting closes every route but health
//! (`Config::core_problem`).

use crate::core::body::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WEBHOOK_BODY_BYTES};
use crate::core::cors::CorsPolicy;
use crate::core::host_routes::HostRoutes;
use crate::core::settings::{byte_size, optional, ConfigError, Loader};
use crate::log::RequestLogging;

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins; default none.
pub(crate) fn cors(l: &mut Loader<'_>) -> CorsPolicy {
    let cors_list = optional(l.source, "CORS_ALLOWED_ORIGINS").unwrap_or_default();
    l.or(
        CorsPolicy::parse(&cors_list).map_err(|problem| ConfigError {
            setting: "CORS_ALLOWED_ORIGINS",
            problem,
        }),
        CorsPolicy::default(),
    )
}

/// `MAX_BODY_BYTES`: limit for API request bodies; default 65536 (64 KiB).
pub(crate) fn max_body_bytes(l: &mut Loader<'_>) -> usize {
    let source = l.source;
    l.or(
        byte_size(source, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        DEFAULT_MAX_BODY_BYTES,
    )
}

/// `MAX_WEBHOOK_BODY_BYTES`: limit for webhook deliveries; default 1048576 (1 MiB).
pub(crate) fn max_webhook_body_bytes(l: &mut Loader<'_>) -> usize {
    let source = l.source;
    l.or(
        byte_size(
            source,
            "MAX_WEBHOOK_BODY_BYTES",
            DEFAULT_MAX_WEBHOOK_BODY_BYTES,
        ),
        DEFAULT_MAX_WEBHOOK_BODY_BYTES,
    )
}

/// `HOST_ROUTES`: `host=/path,...`; default none; invalid: recorded, no host is mapped.
pub(crate) fn host_routes(l: &mut Loader<'_>) -> HostRoutes {
    let source = l.source;
    l.or(
        crate::core::host_routes::parse(&optional(source, "HOST_ROUTES").unwrap_or_default())
            .map_err(|problem| ConfigError {
                setting: "HOST_ROUTES",
                problem,
            }),
        Vec::new(),
    )
}

/// `REQUEST_LOG`: `all` (default) or `failures`.
pub(crate) fn request_log(l: &mut Loader<'_>) -> RequestLogging {
    let source = l.source;
    l.or(
        RequestLogging::parse(&optional(source, "REQUEST_LOG").unwrap_or_else(|| "all".into()))
            .map_err(|problem| ConfigError {
                setting: "REQUEST_LOG",
                problem,
            }),
        RequestLogging::All,
    )
}
