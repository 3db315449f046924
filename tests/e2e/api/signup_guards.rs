//! What a stranger gets from sign-up: at most `SIGNUP_PER_IP_PER_HOUR` accounts per client IP
//! (exact under a concurrent burst), nothing that costs the operator money until the account's
//! email is verified, reset requests bounded per IP and per email, and no mail route that
//! pretends to mail where no mail provider is configured.

use serde_json::{json, Value};

use super::api_keys::all_at_once;
use super::Case;
use crate::fakes::CHAT_MODEL;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases![signup_guards:
        twenty_concurrent_sign_ups_from_one_ip_make_exactly_five_accounts,
        an_unverified_account_is_refused_everything_that_costs_money_until_it_verifies,
        reset_requests_are_bounded_per_ip_and_per_email,
        without_a_mail_provider_outside_local_the_mail_routes_answer_not_configured,
    ]
}

const PASSWORD: &str = "correct horse battery staple";

/// A client IP of its own (documentation range), so cases never share a window.
fn new_ip() -> String {
    let n = unique("");
    format!(
        "2001:db8:{}:{}::1",
        &n[..4].trim_start_matches('0'),
        &n[4..8].trim_start_matches('0')
    )
}

fn register_from(world: &World, ip: &str, email: &str) -> Reply {
    world
        .call("POST", "/api/auth/register")
        .header("CF-Connecting-IP", ip)
        .json(&json!({ "email": email, "password": PASSWORD }))
}

fn twenty_concurrent_sign_ups_from_one_ip_make_exactly_five_accounts(world: &World) {
    let tag = unique("burst_");
    let ip = new_ip();
    let stored = Rows::new()
        .where_prefix("users", "email", &tag)
        .where_prefix("account_credentials", "email", &tag)
        .where_prefix("mail_outbox", "to_address", &tag);
    let replies = all_at_once(20, |i| {
        register_from(world, &ip, &format!("{tag}{i}@signup.example.test"))
    });
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 5, "{:?}", statuses(&replies));
    for refused in replies.iter().filter(|r| r.status != 201) {
        refused.assert_error(429, "rate_limited");
        let wait: u64 = refused
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&wait), "{wait}");
    }
    // Storage holds exactly the five: one user, one credential, one mail each.
    let counts = world.d1_query_all(&format!(
        "SELECT COUNT(*) AS n FROM users WHERE email LIKE '{tag}%'; \
         SELECT COUNT(*) AS n FROM account_credentials WHERE email LIKE '{tag}%'; \
         SELECT COUNT(*) AS n FROM mail_outbox WHERE to_address LIKE '{tag}%'; \
         SELECT count FROM account_throttle_windows WHERE key = 'signup-ip:{ip}'"
    ));
    for (i, rows) in counts.iter().take(3).enumerate() {
        assert_eq!(rows[0]["n"], 5, "statement {i}: {counts:?}");
    }
    assert_eq!(counts[3][0]["count"], 5, "{counts:?}");
    // A refused sign-up stores nothing, even for a fresh email.
    let before = world.snapshot(&stored);
    register_from(world, &ip, &format!("{tag}late@signup.example.test"))
        .assert_error(429, "rate_limited");
    before.assert_unchanged(world);
    // Another IP still signs up.
    let other = register_from(world, &new_ip(), &format!("{tag}other@signup.example.test"));
    assert_eq!(other.status, 201, "{}", other.body);
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

/// A request that costs the operator money: what it is, and the call.
type Costly<'w> = (&'static str, Box<dyn Fn() -> Reply + 'w>);

/// Every request that costs the operator money.
fn costly<'w>(world: &'w World, token: &str) -> Vec<Costly<'w>> {
    let token = token.to_owned();
    let call = move |method: &'static str, path: &'static str, body: Option<Value>| {
        let token = token.clone();
        Box::new(move || {
            let call = world.authed(method, path, &token);
            match &body {
                Some(body) => call.json(body),
                None => call.send(),
            }
        }) as Box<dyn Fn() -> Reply + 'w>
    };
    vec![
        ("an OpenRouter key", call("POST", "/api/key", None)),
        (
            "a pool key",
            call("GET", "/api/user/provider-keys?provider=openai", None),
        ),
        (
            "a model call",
            call(
                "POST",
                "/v1/chat/completions",
                Some(json!({
                    "model": CHAT_MODEL,
                    "messages": [{"role": "user", "content": format!("{} [reply:3]", unique("verified-"))}],
                    "max_tokens": 10,
                })),
            ),
        ),
        ("the model list", call("GET", "/v1/models", None)),
        (
            "a social reward",
            call(
                "POST",
                "/api/tokens/social",
                Some(json!({ "task_id": "follow-x" })),
            ),
        ),
        (
            "token use",
            call(
                "POST",
                "/api/tokens/use",
                Some(json!({ "amount": 1, "reason": "a call", "request_id": unique("use-") })),
            ),
        ),
        (
            "a token purchase",
            call(
                "POST",
                "/api/tokens/purchase",
                Some(json!({ "pack": "starter" })),
            ),
        ),
        (
            "an API key",
            call("POST", "/api/user/api-keys", Some(json!({ "name": "cli" }))),
        ),
        (
            "the default API key",
            call("GET", "/api/user/api-key", None),
        ),
    ]
}

fn an_unverified_account_is_refused_everything_that_costs_money_until_it_verifies(world: &World) {
    let email = format!("{}@signup.example.test", unique("unverified_"));
    let registered = register_from(world, &new_ip(), &email);
    assert_eq!(registered.status, 201, "{}", registered.body);
    let session = registered.json();
    let user_id = session["user"]["id"].as_str().unwrap().to_owned();
    let token = session["access_token"].as_str().unwrap().to_owned();
    // Tokens to spend, from the admin (a grant costs the operator nothing it did not choose).
    let granted = world
        .authed(
            "POST",
            "/api/tokens/add",
            &world.hmac_token(crate::harness::identity::ADMIN_HMAC_UID),
        )
        .json(&json!({
            "user_id": user_id, "amount": 100, "reason": "test grant",
            "request_id": unique("grant-"),
        }));
    assert_eq!(granted.status, 200, "{}", granted.body);

    let stored = Rows::of_user(
        &user_id,
        &[
            "api_keys",
            "credit_accounts",
            "credit_ledger",
            "provider_key_assignments",
            "token_ledger",
            "billing_customers",
            "meter_counters",
            "usage_reservations",
            "usage_records",
        ],
    );
    let before = world.snapshot(&stored);
    for (what, request) in costly(world, &token) {
        let error = request().assert_error(403, "email_not_verified");
        assert!(
            error["message"].as_str().unwrap().contains("verify"),
            "{what}: {error}"
        );
    }
    before.assert_unchanged(world);
    assert!(
        world.fakes.openrouter.keys_named(&user_id).is_empty(),
        "no OpenRouter key was made"
    );
    // Reading and editing one's own account is still allowed.
    let profile = world.authed("GET", "/api/auth/profile", &token).send();
    assert_eq!(profile.status, 200, "{}", profile.body);
    assert_eq!(profile.json()["email_verified"], false);
    let balance = world.authed("GET", "/api/tokens/balance", &token).send();
    assert_eq!(balance.json()["balance"], 100, "{}", balance.body);

    // Verified: each of them works.
    let link = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .expect("a verification link");
    let verified = world
        .call("POST", "/api/auth/verify-email")
        .json(&json!({ "token": link }));
    assert_eq!(verified.status, 200, "{}", verified.body);
    for (what, request) in costly(world, &token) {
        let reply = request();
        if what == "a pool key" {
            // The pool holds no key for this plan: what matters is who was refused.
            assert_ne!(reply.status, 403, "{what}: {}", reply.body);
            continue;
        }
        assert!(
            reply.status == 200 || reply.status == 201,
            "{what}: {} {}",
            reply.status,
            reply.body
        );
    }
    assert_eq!(world.fakes.openrouter.keys_named(&user_id).len(), 1);
}

fn reset_requests_are_bounded_per_ip_and_per_email(world: &World) {
    let ask = |ip: &str, email: &str| {
        world
            .call("POST", "/api/auth/request-password-reset")
            .header("CF-Connecting-IP", ip)
            .json(&json!({ "email": email }))
    };
    // One email, from many IPs: three an hour (known or not, the answers are alike).
    let email = format!("{}@signup.example.test", unique("resets_"));
    for _ in 0..3 {
        assert_eq!(ask(&new_ip(), &email).status, 202);
    }
    let refused = ask(&new_ip(), &email);
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // One IP, many emails: ten an hour.
    let ip = new_ip();
    for i in 0..10 {
        let reply = ask(&ip, &format!("{}{i}@signup.example.test", unique("ip_")));
        assert_eq!(reply.status, 202, "{i}: {}", reply.body);
    }
    let other = format!("{}@signup.example.test", unique("ip_late_"));
    ask(&ip, &other).assert_error(429, "rate_limited");
    // The refused request for a new email counted nothing against it.
    assert_eq!(
        world.d1_query(&format!(
            "SELECT COUNT(*) AS n FROM account_throttle_windows WHERE key = 'reset-email:{other}'"
        ))[0]["n"],
        0
    );
}

fn without_a_mail_provider_outside_local_the_mail_routes_answer_not_configured(_world: &World) {
    let bare = World::start_without(&["MAIL_API_KEY"]).expect("a second worker starts");
    // A world of its own: whole tables can be snapshotted.
    let stored = Rows::new()
        .all("users")
        .all("account_credentials")
        .all("account_mailed_tokens")
        .all("account_throttle_windows")
        .all("mail_outbox");
    let before = bare.snapshot(&stored);
    let email = format!("{}@signup.example.test", unique("nomail_"));
    for reply in [
        register_from(&bare, &new_ip(), &email),
        bare.call("POST", "/api/auth/request-password-reset")
            .header("CF-Connecting-IP", &new_ip())
            .json(&json!({ "email": email })),
    ] {
        let error = reply.assert_error(503, "not_configured");
        assert!(
            error["message"].as_str().unwrap().contains("MAIL_API_KEY"),
            "{error}"
        );
    }
    before.assert_unchanged(&bare);
    assert!(bare.fakes.mail.delivered_to(&email).is_empty());
}
