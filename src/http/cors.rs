//! CORS on the wire: preflight answers and the headers added to every response.

use worker::{Headers, Method, Request, Response, ResponseBuilder};

use super::response;
use crate::core::cors::{
    CorsPolicy, ALLOWED_HEADERS, ALLOWED_METHODS, EXPOSED_HEADERS, PREFLIGHT_MAX_AGE_SECS,
};
use crate::error::AppError;

/// Whether `req` is a CORS preflight (an `OPTIONS` asking permission for another method).
pub fn is_preflight(req: &Request) -> bool {
    req.method() == Method::Options
        && req.headers().has("Origin").unwrap_or(false)
        && req
            .headers()
            .has("Access-Control-Request-Method")
            .unwrap_or(false)
}

/// The answer to a preflight: `204` with the allowed methods and headers when the origin is
/// on the list (or `site_allows` it: a site-key route's preflight from an active site's
/// origin), `403 forbidden` (and no `Access-Control-Allow-Origin`) when it is not.
pub fn preflight(
    policy: &CorsPolicy,
    origin: Option<&str>,
    site_allows: bool,
    request_id: &str,
) -> Response {
    let Some(origin) = origin.filter(|o| site_allows || policy.allows(o)) else {
        let err = AppError::Forbidden("this origin is not allowed to call the API".to_owned());
        return response::error(&err, request_id);
    };
    let mut resp = ResponseBuilder::new().with_status(204).empty();
    let headers = resp.headers_mut();
    response::set(headers, "Access-Control-Allow-Origin", origin);
    response::set(headers, "Access-Control-Allow-Methods", ALLOWED_METHODS);
    response::set(headers, "Access-Control-Allow-Headers", ALLOWED_HEADERS);
    response::set(
        headers,
        "Access-Control-Max-Age",
        &PREFLIGHT_MAX_AGE_SECS.to_string(),
    );
    response::set(headers, "Vary", "Origin");
    resp
}

/// Adds CORS headers to an ordinary response for a request that carried `Origin`.
pub fn decorate(headers: &mut Headers, policy: &CorsPolicy, origin: &str) {
    response::set(headers, "Vary", "Origin");
    if policy.allows(origin) {
        response::set(headers, "Access-Control-Allow-Origin", origin);
        response::set(headers, "Access-Control-Expose-Headers", EXPOSED_HEADERS);
    }
}
