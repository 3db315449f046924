//! Signed routes (`Signed(provider)` in the route table): the webhook receivers take only a
//! delivery their provider signed, checked by the pipeline before the handler, and no bearer
//! credential opens them; their bodies are held to the webhook limit, declared in the table.

use serde_json::json;

use super::Case;
use crate::harness::identity::{unique, ADMIN_HMAC_UID};
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(signed_access:
        no_bearer_credential_opens_a_signed_route,
        every_signed_route_takes_a_webhook_sized_body_and_an_unknown_path_does_not,
    )
}

/// The receivers, with the header their provider's signature travels in.
const SIGNED: [(&str, &str); 3] = [
    ("/api/auth/webhook/clerk", "svix-"),
    ("/api/webhooks/stripe", "Stripe-Signature"),
    ("/webhook/stripe", "Stripe-Signature"),
];

fn no_bearer_credential_opens_a_signed_route(world: &World) {
    // Even an admin's token is no signature. The delivery is well-formed (an id, a user to
    // create) so that only the missing signature can refuse it; nothing of it is stored.
    let admin = world.hmac_token(ADMIN_HMAC_UID);
    let event_id = unique("evt_bearer_");
    let clerk_user = unique("user_bearer_");
    let event = json!({
        "id": event_id,
        "type": "user.created",
        "data": { "id": clerk_user, "email_addresses": [], "public_metadata": {} },
    });
    let untouched = Rows::new()
        .where_eq("webhook_events", "event_id", &event_id)
        .where_eq("users", "external_id", &clerk_user);
    let before = world.snapshot(&untouched);
    for (path, header) in SIGNED {
        let reply = world
            .authed("POST", path, &admin)
            .header("svix-id", &event_id)
            .json(&event);
        let error = reply.assert_error(401, "unauthorized");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(header), "{path}: {error}");
    }
    before.assert_unchanged(world);
    assert_eq!(world.count(&untouched), 0, "no delivery and no user stored");
}

/// 200 KiB passes the body check on every signed route (which then refuses it unsigned, 401)
/// but not on a path the table does not serve, even one under a signed route's path.
fn every_signed_route_takes_a_webhook_sized_body_and_an_unknown_path_does_not(world: &World) {
    let body = vec![b' '; 200 * 1024];
    for (path, _) in SIGNED {
        let reply = world.call("POST", path).body("text/plain", &body);
        reply.assert_error(401, "unauthorized");
    }
    let reply = world
        .call("POST", "/api/webhooks/stripe/extra")
        .body("text/plain", &body);
    reply.assert_error(413, "payload_too_large");
}
