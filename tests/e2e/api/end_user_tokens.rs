//! Tokens of the platforms' end-user Clerk instance (`END_USER_CLERK_*`) beside the
//! operator's: told apart by `iss`, refused on every operator route before any JWKS is
//! fetched, and never made into a Tollgate user. The end-user routes that accept them are
//! the platforms capability's; here, what the identity capability owns.

use std::thread::sleep;
use std::time::Duration;

use serde_json::{json, Value};

use super::Case;
use crate::harness::identity::{end_user_claims, unique, JWKS_MIN_REFETCH_SECS};
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(end_user_tokens:
        an_end_user_token_is_refused_on_operator_routes_and_makes_no_user,
        an_end_user_token_is_refused_whatever_its_key_or_claims,
        operator_tokens_still_work_beside_the_end_user_instance,
    )
}

pub fn serial_cases() -> Vec<Case> {
    crate::cases!(end_user_tokens:
        end_user_tokens_on_operator_routes_fetch_no_jwks,
    )
}

const PROFILE: &str = "/api/user/profile";
const RESERVE: &str = "/api/usage/reserve";
const REFUSAL: &str = "an end-user token is accepted only on end-user routes";

/// What a refused end-user token could have written: a users row for its subject, a
/// reservation under its request id.
fn touched(sub: &str, request_id: &str) -> Rows {
    Rows::new().where_eq("users", "external_id", sub).where_eq(
        "usage_reservations",
        "request_id",
        request_id,
    )
}

/// Sends the end-user `token` to the profile and to a reservation; both are refused with the
/// clear message, and nothing is written.
fn assert_refused_everywhere(world: &World, token: &str, sub: &str) {
    let request_id = unique("rsv-end-user-");
    let rows = touched(sub, &request_id);
    let before = world.snapshot(&rows);
    let error = world
        .authed("GET", PROFILE, token)
        .send()
        .assert_error(401, "unauthorized");
    assert_eq!(error["message"], REFUSAL, "{error}");
    let error = world
        .authed("POST", RESERVE, token)
        .json(&json!({ "estimate_tokens": 100, "request_id": request_id }))
        .assert_error(401, "unauthorized");
    assert_eq!(error["message"], REFUSAL, "{error}");
    before.assert_unchanged(world);
    assert_eq!(world.count(&rows), 0, "end users are not Tollgate users");
}

fn an_end_user_token_is_refused_on_operator_routes_and_makes_no_user(world: &World) {
    let sub = unique("user_end_");
    let token = world.end_user_token(&sub, &unique("plt_"), Some("pro"));
    assert_refused_everywhere(world, &token, &sub);
    // A second time (a cached verification must not change the answer).
    assert_refused_everywhere(world, &token, &sub);
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn an_end_user_token_is_refused_whatever_its_key_or_claims(world: &World) {
    let end_users = &world.fakes.end_user_clerk;
    // Refused by its issuer alone: an unknown kid, an expired token, a wrong azp, no
    // platform at all, or a token of the end-user issuer signed by the operator's instance.
    let sub = unique("user_end_");
    let claims = end_user_claims(&sub, &unique("plt_"), None);
    for token in [
        end_users.sign_with_kid(&claims, &unique("kid_")),
        end_users.sign(&with(claims.clone(), "exp", json!(0))),
        end_users.sign(&with(claims.clone(), "azp", json!("https://evil.test"))),
        end_users.sign(&with(claims.clone(), "publicMetadata", json!({}))),
        world.fakes.clerk.sign(&claims),
    ] {
        assert_refused_everywhere(world, &token, &sub);
    }
}

fn operator_tokens_still_work_beside_the_end_user_instance(world: &World) {
    let sub = unique("user_op_");
    let reply = world
        .authed("GET", PROFILE, &world.clerk_token(&sub))
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let users = Rows::new()
        .where_eq("users", "external_id", &sub)
        .and_eq("auth_source", "clerk");
    assert_eq!(world.count(&users), 1, "the operator's user is made");
    let reserved = world
        .authed("POST", RESERVE, &world.clerk_token(&sub))
        .json(&json!({ "estimate_tokens": 100, "request_id": unique("rsv-op-") }));
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    let uid = unique("hmac_op_");
    let reply = world.authed("GET", PROFILE, &world.hmac_token(&uid)).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The same subject at the end-user instance is still refused, and is not that user.
    let token = world.end_user_token(&sub, &unique("plt_"), None);
    let error = world
        .authed("GET", PROFILE, &token)
        .send()
        .assert_error(401, "unauthorized");
    assert_eq!(error["message"], REFUSAL, "{error}");
    assert_eq!(world.count(&users), 1);
}

fn end_user_tokens_on_operator_routes_fetch_no_jwks(world: &World) {
    let (operator, end_users) = (&world.fakes.clerk, &world.fakes.end_user_clerk);
    // Open both re-fetch throttles: were an end-user token verified as an operator's, its
    // kid (unknown to the operator's JWKS) would fetch that JWKS now.
    sleep(Duration::from_secs(JWKS_MIN_REFETCH_SECS + 1));
    let before = (operator.jwks_fetches(), end_users.jwks_fetches());
    for _ in 0..3 {
        let sub = unique("user_end_");
        let token = world.end_user_token(&sub, &unique("plt_"), Some("free"));
        assert_refused_everywhere(world, &token, &sub);
        let unknown = end_users.sign_with_kid(
            &end_user_claims(&sub, &unique("plt_"), None),
            &unique("kid_"),
        );
        assert_refused_everywhere(world, &unknown, &sub);
    }
    assert_eq!(
        (operator.jwks_fetches(), end_users.jwks_fetches()),
        before,
        "neither instance's JWKS is fetched for a token the route refuses by its issuer"
    );
}
