//! CORS: the allow-list, extension origins, and preflights answered before auth.

use super::Case;
use crate::harness::{World, ALLOWED_EXTENSION_ORIGIN};

pub fn cases() -> Vec<Case> {
    crate::cases!(cors:
        preflight_from_an_allowed_extension_is_allowed,
        preflight_from_another_origin_is_refused,
        responses_carry_cors_headers_only_for_allowed_origins,
    )
}

fn preflight(world: &World, origin: &str) -> crate::harness::Reply {
    // A path that will require authentication: the preflight must not.
    world
        .call("OPTIONS", "/api/usage/report")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
}

fn preflight_from_an_allowed_extension_is_allowed(world: &World) {
    let reply = preflight(world, ALLOWED_EXTENSION_ORIGIN);
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(ALLOWED_EXTENSION_ORIGIN)
    );
    let methods = reply.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = reply
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(reply.header("x-request-id").is_some());
}

fn preflight_from_another_origin_is_refused(world: &World) {
    for origin in [
        "https://evil.example",
        "chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba",
        "http://localhost:5173.evil.example",
    ] {
        let reply = preflight(world, origin);
        reply.assert_error(403, "forbidden");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
}

fn responses_carry_cors_headers_only_for_allowed_origins(world: &World) {
    let allowed = world
        .call("GET", "/api/health/ping")
        .header("Origin", "http://localhost:5173")
        .send();
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let exposed = allowed.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("X-Request-Id"), "{exposed}");

    let other = world
        .call("GET", "/api/health/ping")
        .header("Origin", "https://evil.example")
        .send();
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}
