//! Clerk's signing keys as the worker sees them: fetched once, kept warm, re-fetched exactly
//! once when Clerk rotates, and never hammered by tokens with made-up key ids.
//!
//! These cases rotate the fake Clerk's key, which every Clerk token depends on, so they run
//! after all other cases, one at a time.

use std::thread::sleep;
use std::time::{Duration, Instant};

use jwt_compact::UntrustedToken;

use super::Case;
use crate::harness::identity::{clerk_claims, unique, JWKS_MIN_REFETCH_SECS};
use crate::harness::World;

pub fn serial_cases() -> Vec<Case> {
    crate::cases!(jwks:
        a_rotated_key_is_fetched_exactly_once,
        unknown_key_ids_cannot_hammer_clerk,
    )
}

const PROFILE: &str = "/api/user/profile";

fn a_rotated_key_is_fetched_exactly_once(world: &World) {
    let clerk = &world.fakes.clerk;
    // Warm: the worker holds the current key.
    let warm = world
        .authed("GET", PROFILE, &world.clerk_token(&unique("user_warm_")))
        .send();
    assert_eq!(warm.status, 200, "{}", warm.body);
    let before = clerk.jwks_fetches();
    for _ in 0..5 {
        let token = world.clerk_token(&unique("user_warm_"));
        assert_eq!(world.authed("GET", PROFILE, &token).send().status, 200);
    }
    assert_eq!(clerk.jwks_fetches(), before, "warm keys cost no fetch");

    // Let the re-fetch throttle open, then rotate.
    sleep(Duration::from_secs(JWKS_MIN_REFETCH_SECS + 1));
    let old_kid = clerk.current_kid();
    let new_kid = clerk.rotate();
    assert_ne!(old_kid, new_kid);
    let before = clerk.jwks_fetches();
    let token = world.clerk_token(&unique("user_rotated_"));
    let header = UntrustedToken::new(&token).unwrap();
    assert_eq!(header.header().key_id.as_deref(), Some(new_kid.as_str()));
    let reply = world.authed("GET", PROFILE, &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(clerk.jwks_fetches(), before + 1, "exactly one re-fetch");
    for _ in 0..5 {
        let token = world.clerk_token(&unique("user_rotated_"));
        assert_eq!(world.authed("GET", PROFILE, &token).send().status, 200);
    }
    assert_eq!(clerk.jwks_fetches(), before + 1, "the new key is now warm");

    // A kid the JWKS no longer has is refused.
    let stale = clerk.sign_with_kid(&clerk_claims(&unique("user_stale_")), &old_kid);
    let error = world
        .authed("GET", PROFILE, &stale)
        .send()
        .assert_error(401, "unauthorized");
    assert!(
        error["message"].as_str().unwrap().contains("key"),
        "{error}"
    );
}

fn unknown_key_ids_cannot_hammer_clerk(world: &World) {
    let clerk = &world.fakes.clerk;
    // Open the throttle first, so the flood's first unknown kid may fetch.
    sleep(Duration::from_secs(JWKS_MIN_REFETCH_SECS + 1));
    let before = clerk.jwks_fetches();
    let started = Instant::now();
    for _ in 0..100 {
        let token = clerk.sign_with_kid(&clerk_claims(&unique("user_flood_")), &unique("kid_"));
        world
            .authed("GET", PROFILE, &token)
            .send()
            .assert_error(401, "unauthorized");
    }
    let fetched = clerk.jwks_fetches() - before;
    // One fetch may happen per throttle interval; the flood spans a few of them at most.
    let intervals = started.elapsed().as_secs() / JWKS_MIN_REFETCH_SECS + 1;
    eprintln!(
        "100 unknown kids in {:?} caused {fetched} JWKS fetches",
        started.elapsed()
    );
    assert!(
        fetched >= 1,
        "an unknown kid may re-fetch once the throttle is open"
    );
    assert!(
        fetched as u64 <= intervals && fetched <= 5,
        "{fetched} fetches for 100 unknown kids"
    );
}
