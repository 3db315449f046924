//! When Clerk's Backend API fails: refresh answers `502 upstream_error` (nothing to hand out),
//! sign-out still ends the session here and says Clerk was not reached.
//!
//! Faults are injected into the shared fake Clerk, where they would hit whichever request
//! reaches it next, so these cases run in the serial phase.

use serde_json::json;

use super::Case;
use crate::fakes::Fault;
use crate::harness::identity::{clerk_claims, unique};
use crate::harness::World;

pub fn serial_cases() -> Vec<Case> {
    crate::cases!(clerk_faults:
        a_failing_clerk_refresh_is_an_upstream_error,
        signout_ends_the_session_even_when_clerk_fails,
    )
}

fn a_failing_clerk_refresh_is_an_upstream_error(world: &World) {
    let token = world
        .fakes
        .clerk
        .sign(&clerk_claims(&unique("user_fault_")));
    assert_eq!(
        world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .status,
        200
    );
    world.fakes.clerk.upstream().inject(&[Fault::Status(500)]);
    let error = world
        .authed("POST", "/api/auth/refresh", &token)
        .send()
        .assert_error(502, "upstream_error");
    assert!(
        !error["message"].as_str().unwrap().contains("injected"),
        "upstream detail stays in the log: {error}"
    );
    // The caller's session is untouched: the token still works, and refresh works again.
    assert_eq!(
        world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .status,
        200
    );
    assert_eq!(
        world
            .authed("POST", "/api/auth/refresh", &token)
            .send()
            .status,
        200
    );
}

fn signout_ends_the_session_even_when_clerk_fails(world: &World) {
    let claims = clerk_claims(&unique("user_fault_"));
    let sid = claims["sid"].as_str().unwrap().to_owned();
    let token = world.fakes.clerk.sign(&claims);
    assert_eq!(
        world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .status,
        200
    );
    world.fakes.clerk.upstream().inject(&[Fault::Status(503)]);
    let reply = world.authed("POST", "/api/auth/signout", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({ "signed_out": true, "session_id": sid, "revoked_at_clerk": false, "devices_signed_out": 0 })
    );
    assert!(!world.fakes.clerk.revoked_sessions().contains(&sid));
    world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .assert_error(401, "unauthorized");
}
