//! Tollgate's own accounts through the real worker: sign-up, email verification through the
//! fake mail API, sign-in and its throttle, sessions (rotation, reuse, logout), password
//! change and reset, the profile, bad input, and the use of the rest of the API by a
//! password user. Every case works on accounts (emails) and client IPs of its own.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api_keys::all_at_once;
use super::usage::idempotent;
use super::Case;
use crate::harness::identity::{hs256, now, unique, ACCOUNT_TOKEN_SECRET, APP_URL, JWT_SECRET};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(accounts:
        register_verify_email_login_and_profile,
        a_wrong_password_and_an_unknown_email_answer_alike,
        the_sixth_failure_for_an_email_is_refused_even_with_the_right_password,
        twenty_failures_from_one_ip_close_it_for_every_email,
        a_burst_of_concurrent_guesses_gets_no_more_checks_than_the_limit,
        storage_holds_no_plaintext_password_and_an_argon2id_hash,
        a_reset_for_an_unknown_email_answers_like_a_known_one_and_sends_nothing,
        the_mailed_reset_token_works_once_and_ends_every_session,
        refresh_rotates_and_a_reused_token_revokes_the_session,
        concurrent_refreshes_of_one_token_let_at_most_one_win,
        logout_refuses_the_access_token_at_once,
        change_password_ends_every_other_session,
        a_password_user_uses_quota_and_api_keys_like_anyone,
        bad_input_is_refused_and_changes_nothing,
        a_taken_email_is_a_conflict_in_any_letter_case,
        the_profile_changes_and_a_new_email_is_verified_again,
        a_stolen_token_cannot_change_the_email_and_a_change_voids_every_mailed_link,
        account_and_hmac_tokens_never_pass_for_each_other,
        an_account_access_token_alone_cannot_refresh,
        a_weaker_hash_is_raised_at_sign_in,
        without_its_secret_accounts_answer_not_configured,
    )
}

/// Cases that fire the scheduled event (it also runs the key sweep other cases inspect).
pub fn serial_cases() -> Vec<Case> {
    crate::cases!(accounts:
        a_failed_mail_is_kept_and_sent_by_the_scheduled_event,
    )
}

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a different horse, stapled";
const WRONG_CREDENTIALS: &str = "email or password is incorrect";

/// A fresh address; `tag` says which case it belongs to.
fn new_email(tag: &str) -> String {
    format!("{}@accounts.example.test", unique(tag))
}

/// A client IP of its own (documentation range), so cases never share the IP throttle.
fn new_ip() -> String {
    let n = u16::from_str_radix(&unique("")[12..], 16).unwrap();
    format!("2001:db8::{n:x}:{:x}", now() as u16)
}

fn post(world: &World, path: &str, body: &Value) -> Reply {
    world.call("POST", path).json(body)
}

/// `POST path` from a client IP of its own (sign-ups and reset requests are throttled per
/// client IP).
fn post_from_new_ip(world: &World, path: &str, body: &Value) -> Reply {
    world
        .call("POST", path)
        .header("CF-Connecting-IP", &new_ip())
        .json(body)
}

/// Registers `email`; the 201 answer.
/// Registers `email` from a new IP; returns the answer once the verification mail has gone
/// out (it is sent after the answer, so storage settles a moment later).
fn register(world: &World, email: &str) -> Value {
    let reply = post_from_new_ip(
        world,
        "/api/auth/register",
        &json!({ "email": email, "password": PASSWORD }),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    mail_settled(world, email);
    reply.json()
}

/// Waits (up to 15 s) until no mail to `email` is still `pending` in the outbox: the mail
/// the worker sends after answering has been handed to the mail API (or failed), so a
/// snapshot taken now does not catch the outbox row mid-send.
fn mail_settled(world: &World, email: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let pending = format!(
        "SELECT COUNT(*) AS n FROM mail_outbox WHERE to_address = '{}' AND status = 'pending'",
        email.to_lowercase().replace('\'', "''")
    );
    while world.d1_query(&pending)[0]["n"].as_i64() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the mail to {email} is still pending after 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Signs in. A request wrangler's dev proxy dropped while it restarted the runtime (it
/// answers 503 "restarted mid-request" under heavy parallel load, before the worker saw it)
/// is sent again; one the worker did count would be counted twice and fail its case.
fn login(world: &World, email: &str, password: &str, ip: &str) -> Reply {
    idempotent(|| {
        world
            .call("POST", "/api/auth/login")
            .header("CF-Connecting-IP", ip)
            .json(&json!({ "email": email, "password": password }))
    })
}

/// Signs in; the session answer.
fn signed_in(world: &World, email: &str, password: &str) -> Value {
    let reply = login(world, email, password, &new_ip());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn access(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

fn refresh_token(session: &Value) -> String {
    session["refresh_token"].as_str().unwrap().to_owned()
}

fn refresh(world: &World, token: &str) -> Reply {
    post(
        world,
        "/api/auth/refresh",
        &json!({ "refresh_token": token }),
    )
}

fn profile(world: &World, access_token: &str) -> Reply {
    world
        .authed("GET", "/api/auth/profile", access_token)
        .send()
}

/// An error body without its request id (the one part allowed to differ).
fn without_request_id(reply: &Reply) -> Value {
    let mut body = reply.json();
    body["error"].as_object_mut().unwrap().remove("request_id");
    body
}

/// Every row an account with this address could have made (the address is unique to a case).
fn rows_of_email(email: &str) -> Rows {
    Rows::new()
        .where_eq("users", "email", email)
        .where_eq("account_credentials", "email", email)
        .where_eq("account_mailed_tokens", "email", email)
        .where_eq("mail_outbox", "to_address", email)
}

/// The user id of an address.
fn user_id_of(world: &World, email: &str) -> String {
    let rows = world.d1_query(&format!(
        "SELECT user_id FROM account_credentials WHERE email = '{email}'"
    ));
    rows[0]["user_id"].as_str().unwrap().to_owned()
}

fn register_verify_email_login_and_profile(world: &World) {
    let email = new_email("flow_");
    let shown = format!("  {}  ", email.to_uppercase());
    let reply = post_from_new_ip(
        world,
        "/api/auth/register",
        &json!({ "email": shown, "password": PASSWORD, "display_name": "Ana" }),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let session = reply.json();
    assert_eq!(session["user"]["email"], email.as_str(), "normalised");
    assert_eq!(session["user"]["email_verified"], false);
    assert_eq!(session["user"]["display_name"], "Ana");
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    assert!(refresh_token(&session).starts_with("rt_"));

    let before = profile(world, &access(&session));
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.json()["email_verified"], false);

    // The verification link went through the mail API, from the configured app.
    let mails = world.fakes.mail.wait_for(&email, 1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0]
        .text
        .contains(&format!("{APP_URL}/verify-email?token=")));
    let token = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .expect("a verification link");
    let verified = post(world, "/api/auth/verify-email", &json!({ "token": token }));
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.json()["email_verified"], true);
    // A second use is refused.
    post(world, "/api/auth/verify-email", &json!({ "token": token }))
        .assert_error(400, "bad_request");

    let session = signed_in(world, &email, PASSWORD);
    assert_eq!(session["user"]["email_verified"], true);
    let after = profile(world, &access(&session));
    assert_eq!(after.status, 200, "{}", after.body);
    let body = after.json();
    assert_eq!(body["email"], email.as_str());
    assert_eq!(body["email_verified"], true);
    assert_eq!(body["display_name"], "Ana");
    assert_eq!(body["plan"], "free");
    // The user is an account like any other for the rest of the API.
    let user = world
        .authed("GET", "/api/user/profile", &access(&session))
        .send();
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.json()["auth_source"], "password");

    let audit = world.d1_query(&format!(
        "SELECT action FROM audit_log WHERE target_id = '{}' ORDER BY id",
        body["id"].as_str().unwrap()
    ));
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"account.registered"), "{actions:?}");
    assert!(actions.contains(&"account.email_verified"), "{actions:?}");
}

/// Wall time of one call.
fn timed(call: impl FnOnce() -> Reply) -> (Duration, Reply) {
    let started = Instant::now();
    let reply = call();
    (started.elapsed(), reply)
}

fn a_wrong_password_and_an_unknown_email_answer_alike(world: &World) {
    let email = new_email("alike_");
    register(world, &email);
    let ip = new_ip();
    // Interleaved, five of each (the fifth failure for the email is still answered); the
    // fastest of each is compared, as load from cases running beside this one only adds time.
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        wrong.push(timed(|| login(world, &email, "not the password!", &ip)));
        let nobody = new_email("nobody_");
        unknown.push(timed(|| login(world, &nobody, "not the password!", &ip)));
    }
    for (_, reply) in wrong.iter().chain(&unknown) {
        let error = reply.assert_error(401, "unauthorized");
        assert_eq!(error["message"], WRONG_CREDENTIALS);
    }
    let (first_wrong, first_unknown) = (&wrong[0].1, &unknown[0].1);
    assert_eq!(first_wrong.status, first_unknown.status);
    assert_eq!(
        without_request_id(first_wrong),
        without_request_id(first_unknown)
    );
    assert_eq!(
        first_wrong
            .body
            .replace(first_wrong.header("x-request-id").unwrap(), ""),
        first_unknown
            .body
            .replace(first_unknown.header("x-request-id").unwrap(), ""),
        "byte-identical apart from the request id"
    );
    // An unknown email is checked against a dummy hash: it costs about what a wrong
    // password costs (a skipped Argon2id check answers several times faster).
    let fastest = |runs: &[(Duration, Reply)]| runs.iter().map(|(t, _)| *t).min().unwrap();
    let (wrong_time, unknown_time) = (fastest(&wrong), fastest(&unknown));
    assert!(
        unknown_time * 2 >= wrong_time,
        "unknown email {unknown_time:?} vs wrong password {wrong_time:?}"
    );
}

fn the_sixth_failure_for_an_email_is_refused_even_with_the_right_password(world: &World) {
    let email = new_email("throttle_");
    register(world, &email);
    let user_id = user_id_of(world, &email);
    for attempt in 1..=5 {
        // Each from another IP: the email's own counter closes it.
        let reply = login(
            world,
            &email,
            &format!("wrong password {attempt}"),
            &new_ip(),
        );
        reply.assert_error(401, "unauthorized");
    }
    let sessions = Rows::new().where_eq("account_refresh_tokens", "user_id", &user_id);
    let before = world.snapshot(&sessions);
    let refused = login(world, &email, PASSWORD, &new_ip());
    refused.assert_error(429, "rate_limited");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    before.assert_unchanged(world);
    // Case does not reopen it.
    login(world, &email.to_uppercase(), PASSWORD, &new_ip()).assert_error(429, "rate_limited");
    let counter = world.d1_query(&format!(
        "SELECT failures FROM account_login_failures WHERE key = 'email:{email}'"
    ));
    assert_eq!(counter[0]["failures"], 5);
}

fn a_burst_of_concurrent_guesses_gets_no_more_checks_than_the_limit(world: &World) {
    let email = new_email("burst_");
    register(world, &email);
    // Twenty wrong guesses at once, each from its own IP: the email's counter admits five.
    let replies = all_at_once(20, |n| {
        login(world, &email, &format!("guess number {n}"), &new_ip())
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
    for reply in replies.iter().filter(|r| r.status == 429) {
        reply.assert_error(429, "rate_limited");
        assert!(reply.header("retry-after").is_some());
    }
    // Refused attempts counted nothing; the right password is refused too.
    let counter = world.d1_query(&format!(
        "SELECT failures FROM account_login_failures WHERE key = 'email:{email}'"
    ));
    assert_eq!(counter[0]["failures"], 5);
    login(world, &email, PASSWORD, &new_ip()).assert_error(429, "rate_limited");
    // A right password gives back the count it took: four failures and a sign-in leave four.
    let other = new_email("burst_ok_");
    register(world, &other);
    for n in 0..4 {
        login(world, &other, &format!("wrong {n} guess"), &new_ip())
            .assert_error(401, "unauthorized");
    }
    assert_eq!(login(world, &other, PASSWORD, &new_ip()).status, 200);
    let counter = world.d1_query(&format!(
        "SELECT failures FROM account_login_failures WHERE key = 'email:{other}'"
    ));
    assert_eq!(counter[0]["failures"], 4);
}

fn twenty_failures_from_one_ip_close_it_for_every_email(world: &World) {
    let email = new_email("ipthrottle_");
    register(world, &email);
    let ip = new_ip();
    for _ in 0..20 {
        // Unknown emails, each failing once: only the IP's counter reaches its limit.
        login(world, &new_email("spray_"), "some password!", &ip).assert_error(401, "unauthorized");
    }
    let refused = login(world, &email, PASSWORD, &ip);
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Another IP still signs in.
    assert_eq!(login(world, &email, PASSWORD, &new_ip()).status, 200);
}

fn storage_holds_no_plaintext_password_and_an_argon2id_hash(world: &World) {
    let email = new_email("plain_");
    register(world, &email);
    signed_in(world, &email, PASSWORD);
    let user_id = user_id_of(world, &email);
    let credential = world.d1_query(&format!(
        "SELECT password_hash FROM account_credentials WHERE user_id = '{user_id}'"
    ));
    let hash = credential[0]["password_hash"].as_str().unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    // No row of any table this account touched holds the password.
    for sql in [
        format!("SELECT * FROM users WHERE id = '{user_id}'"),
        format!("SELECT * FROM account_credentials WHERE user_id = '{user_id}'"),
        format!("SELECT * FROM account_refresh_tokens WHERE user_id = '{user_id}'"),
        format!("SELECT * FROM account_mailed_tokens WHERE user_id = '{user_id}'"),
        format!("SELECT * FROM mail_outbox WHERE to_address = '{email}'"),
        format!("SELECT * FROM audit_log WHERE actor_id = '{user_id}' OR target_id = '{user_id}'"),
        format!("SELECT * FROM account_login_failures WHERE key = 'email:{email}'"),
    ] {
        let rows = world.d1_query(&sql);
        let text = serde_json::to_string(&rows).unwrap();
        assert!(!text.contains(PASSWORD), "{sql}: {text}");
    }
    // Sent mail keeps no body (its link is a secret).
    let outbox = world.d1_query(&format!(
        "SELECT status, text_body, html_body FROM mail_outbox WHERE to_address = '{email}'"
    ));
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["status"], "sent");
    assert_eq!(outbox[0]["text_body"], Value::Null);
    assert_eq!(outbox[0]["html_body"], Value::Null);
}

fn a_reset_for_an_unknown_email_answers_like_a_known_one_and_sends_nothing(world: &World) {
    let known = new_email("resetknown_");
    register(world, &known);
    let unknown = new_email("resetunknown_");
    let untouched = world.snapshot(&rows_of_email(&unknown));
    let ask = |email: &str| {
        post_from_new_ip(
            world,
            "/api/auth/request-password-reset",
            &json!({ "email": email }),
        )
    };
    let for_known = ask(&known);
    let for_unknown = ask(&unknown);
    assert_eq!(for_known.status, 202, "{}", for_known.body);
    assert_eq!(for_unknown.status, for_known.status);
    assert_eq!(for_unknown.body, for_known.body, "byte-identical");
    assert!(world.fakes.mail.delivered_to(&unknown).is_empty());
    untouched.assert_unchanged(world);
    assert!(world
        .fakes
        .mail
        .token_in_link(&known, "/reset-password")
        .is_some());
    // Only the known email is audited.
    let audited = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'account.password_reset_requested' \
         AND target_id = '{}'",
        user_id_of(world, &known)
    ));
    assert_eq!(audited[0]["n"], 1);
}

fn the_mailed_reset_token_works_once_and_ends_every_session(world: &World) {
    let email = new_email("reset_");
    let first = register(world, &email);
    let second = signed_in(world, &email, PASSWORD);
    let reply = post_from_new_ip(
        world,
        "/api/auth/request-password-reset",
        &json!({ "email": email }),
    );
    assert_eq!(reply.status, 202);
    let token = world
        .fakes
        .mail
        .token_in_link(&email, "/reset-password")
        .expect("a reset link");
    let reset = post(
        world,
        "/api/auth/reset-password",
        &json!({ "token": token, "new_password": NEW_PASSWORD }),
    );
    assert_eq!(reset.status, 200, "{}", reset.body);
    // Once only.
    let credentials = Rows::new().where_eq("account_credentials", "email", &email);
    let after_reset = world.snapshot(&credentials);
    post(
        world,
        "/api/auth/reset-password",
        &json!({ "token": token, "new_password": "yet another password" }),
    )
    .assert_error(400, "bad_request");
    after_reset.assert_unchanged(world);
    // The old password is refused, the new one works.
    login(world, &email, PASSWORD, &new_ip()).assert_error(401, "unauthorized");
    signed_in(world, &email, NEW_PASSWORD);
    // Every old session, access and refresh, is over.
    for old in [&first, &second] {
        profile(world, &access(old)).assert_error(401, "unauthorized");
        refresh(world, &refresh_token(old)).assert_error(401, "unauthorized");
    }
}

fn refresh_rotates_and_a_reused_token_revokes_the_session(world: &World) {
    let email = new_email("rotate_");
    let session = register(world, &email);
    let first = refresh_token(&session);
    let rotated = refresh(world, &first);
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let pair = rotated.json();
    let second = refresh_token(&pair);
    assert_ne!(second, first);
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(profile(world, &access(&pair)).status, 200);
    // The first token is spent: presenting it again revokes the whole family.
    refresh(world, &first).assert_error(401, "unauthorized");
    refresh(world, &second).assert_error(401, "unauthorized");
    profile(world, &access(&pair)).assert_error(401, "unauthorized");
    profile(world, &access(&session)).assert_error(401, "unauthorized");
    let user_id = user_id_of(world, &email);
    let live = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM account_refresh_tokens \
         WHERE user_id = '{user_id}' AND revoked_at IS NULL"
    ));
    assert_eq!(live[0]["n"], 0);
    let ended = world.d1_query(&format!(
        "SELECT s.status, s.ended_reason FROM auth_sessions s JOIN users u \
         ON s.auth_source = 'password' AND s.external_user_id = u.external_id \
         WHERE u.id = '{user_id}'"
    ));
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["status"], "ended");
    assert_eq!(ended[0]["ended_reason"], "refresh_reuse");
    // Signing in again starts a new, working session.
    let again = signed_in(world, &email, PASSWORD);
    assert_eq!(refresh(world, &refresh_token(&again)).status, 200);
}

fn concurrent_refreshes_of_one_token_let_at_most_one_win(world: &World) {
    let email = new_email("race_");
    let session = register(world, &email);
    let token = refresh_token(&session);
    let replies = all_at_once(8, |_| refresh(world, &token));
    let won = replies.iter().filter(|r| r.status == 200).count();
    assert!(won <= 1, "{won} refreshes of one token succeeded");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(401, "unauthorized");
    }
    // Storage: the token has at most one successor.
    let user_id = user_id_of(world, &email);
    let tokens = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM account_refresh_tokens WHERE user_id = '{user_id}'"
    ));
    assert!(tokens[0]["n"].as_u64().unwrap() <= 2, "{tokens:?}");
}

fn logout_refuses_the_access_token_at_once(world: &World) {
    let email = new_email("logout_");
    register(world, &email);
    let session = signed_in(world, &email, PASSWORD);
    assert_eq!(profile(world, &access(&session)).status, 200);
    let out = world
        .authed("POST", "/api/auth/logout", &access(&session))
        .send();
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["logged_out"], true);
    let error = profile(world, &access(&session)).assert_error(401, "unauthorized");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("session has ended"));
    world
        .authed("GET", "/api/usage/quota", &access(&session))
        .send()
        .assert_error(401, "unauthorized");
    refresh(world, &refresh_token(&session)).assert_error(401, "unauthorized");
}

fn change_password_ends_every_other_session(world: &World) {
    let email = new_email("change_");
    let mine = register(world, &email);
    let other = signed_in(world, &email, PASSWORD);
    let change = |current: &str| {
        world
            .authed("POST", "/api/auth/change-password", &access(&mine))
            .json(&json!({ "current_password": current, "new_password": NEW_PASSWORD }))
    };
    // A wrong current password changes nothing.
    let credentials = Rows::new().where_eq("account_credentials", "email", &email);
    let before = world.snapshot(&credentials);
    change("not my password!").assert_error(400, "validation_failed");
    before.assert_unchanged(world);
    assert_eq!(profile(world, &access(&other)).status, 200);

    let changed = change(PASSWORD);
    assert_eq!(changed.status, 200, "{}", changed.body);
    // The calling session goes on; the other one is over, access and refresh.
    assert_eq!(profile(world, &access(&mine)).status, 200);
    assert_eq!(refresh(world, &refresh_token(&mine)).status, 200);
    profile(world, &access(&other)).assert_error(401, "unauthorized");
    refresh(world, &refresh_token(&other)).assert_error(401, "unauthorized");
    login(world, &email, PASSWORD, &new_ip()).assert_error(401, "unauthorized");
    signed_in(world, &email, NEW_PASSWORD);
}

fn a_password_user_uses_quota_and_api_keys_like_anyone(world: &World) {
    let email = new_email("user_");
    let session = register(world, &email);
    let token = access(&session);
    // An API key costs nothing itself, but it opens what does: it waits for the email.
    let link = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .expect("a verification link");
    assert_eq!(
        post(world, "/api/auth/verify-email", &json!({ "token": link })).status,
        200
    );
    let quota = world.authed("GET", "/api/usage/quota", &token).send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    assert_eq!(quota.json()["plan"], "free");
    let created = world
        .authed("POST", "/api/user/api-keys", &token)
        .json(&json!({ "name": "cli" }));
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.json()["api_key"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_key = world.authed("GET", "/api/usage/quota", &key).send();
    assert_eq!(by_key.status, 200, "{}", by_key.body);
    let report = world
        .authed("POST", "/api/usage/report", &token)
        .json(&json!({ "provider": "openai", "model": "gpt-4o-mini",
                       "input_tokens": 10, "output_tokens": 5 }));
    assert_eq!(report.status, 200, "{}", report.body);
}

fn bad_input_is_refused_and_changes_nothing(world: &World) {
    let tag = unique("bad_");
    let good = format!("{tag}@accounts.example.test");
    let rows = Rows::new()
        .where_prefix("users", "email", &tag)
        .where_prefix("account_credentials", "email", &tag)
        .where_prefix("account_mailed_tokens", "email", &tag)
        .where_prefix("mail_outbox", "to_address", &tag)
        .where_prefix("account_login_failures", "key", &format!("email:{tag}"));
    let before = world.snapshot(&rows);
    let long = "x".repeat(257);
    let register_bodies = [
        json!({ "email": format!("{tag}"), "password": PASSWORD }),
        json!({ "email": format!("{tag}@nodot"), "password": PASSWORD }),
        json!({ "email": format!("{tag} x@accounts.example.test"), "password": PASSWORD }),
        json!({ "email": format!("{tag}@@accounts.example.test"), "password": PASSWORD }),
        json!({ "email": format!("{tag}{}@accounts.example.test", "a".repeat(250)), "password": PASSWORD }),
        json!({ "email": good, "password": "short" }),
        json!({ "email": good, "password": long }),
        json!({ "email": good, "password": "Password123" }),
        json!({ "email": good, "password": "qwertyuiop" }),
        json!({ "email": good }),
        json!({ "password": PASSWORD }),
        json!({ "email": 42, "password": PASSWORD }),
        json!({ "email": good, "password": ["correct horse battery"] }),
        json!({ "email": good, "password": PASSWORD, "display_name": "" }),
        json!([]),
    ];
    for body in &register_bodies {
        let reply = post(world, "/api/auth/register", body);
        reply.assert_error(400, "validation_failed");
    }
    for body in [
        json!({ "email": good }),
        json!({ "email": format!("{tag}@nodot"), "password": PASSWORD }),
        json!({ "email": good, "password": long }),
        json!({ "email": good, "password": 12345678901u64 }),
    ] {
        let reply = world
            .call("POST", "/api/auth/login")
            .header("CF-Connecting-IP", &new_ip())
            .json(&body);
        reply.assert_error(400, "validation_failed");
    }
    for body in [json!({}), json!({ "email": format!("{tag}@") })] {
        post(world, "/api/auth/request-password-reset", &body)
            .assert_error(400, "validation_failed");
    }
    post(
        world,
        "/api/auth/reset-password",
        &json!({ "token": "mt_x", "new_password": "short" }),
    )
    .assert_error(400, "validation_failed");
    post(
        world,
        "/api/auth/reset-password",
        &json!({ "token": "mt_unknown", "new_password": NEW_PASSWORD }),
    )
    .assert_error(400, "bad_request");
    post(world, "/api/auth/verify-email", &json!({ "token": 7 }))
        .assert_error(400, "validation_failed");
    post(
        world,
        "/api/auth/verify-email",
        &json!({ "token": "mt_unknown" }),
    )
    .assert_error(400, "bad_request");
    before.assert_unchanged(world);
    // A malformed email with the right shape elsewhere never reached storage either.
    assert!(world.fakes.mail.delivered_to(&good).is_empty());
}

fn a_taken_email_is_a_conflict_in_any_letter_case(world: &World) {
    let email = new_email("taken_");
    register(world, &email);
    let rows = rows_of_email(&email);
    let before = world.snapshot(&rows);
    let again = post_from_new_ip(
        world,
        "/api/auth/register",
        &json!({ "email": format!(" {} ", email.to_uppercase()), "password": NEW_PASSWORD }),
    );
    again.assert_error(409, "conflict");
    before.assert_unchanged(world);
    // The first password still signs in; the second never did.
    signed_in(world, &email, PASSWORD);
    login(world, &email, NEW_PASSWORD, &new_ip()).assert_error(401, "unauthorized");
}

fn the_profile_changes_and_a_new_email_is_verified_again(world: &World) {
    let email = new_email("prof_");
    let session = register(world, &email);
    let token = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .unwrap();
    assert_eq!(
        post(world, "/api/auth/verify-email", &json!({ "token": token })).status,
        200
    );
    let put = |body: Value| {
        world
            .authed("PUT", "/api/auth/profile", &access(&session))
            .json(&body)
    };
    let named =
        put(json!({ "display_name": "  Bea ", "avatar_url": "https://img.example.test/b.png" }));
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(named.json()["display_name"], "Bea");
    assert_eq!(named.json()["email_verified"], true);
    assert_eq!(named.json()["pending_email"], Value::Null);
    // Another account's email is taken.
    let other = new_email("prof_other_");
    register(world, &other);
    let rows = rows_of_email(&email);
    let before = world.snapshot(&rows);
    put(json!({ "email": other.to_uppercase(), "current_password": PASSWORD }))
        .assert_error(409, "conflict");
    put(json!({ "email": "not-an-email", "current_password": PASSWORD }))
        .assert_error(400, "validation_failed");
    put(json!({ "avatar_url": "javascript:alert(1)" })).assert_error(400, "validation_failed");
    before.assert_unchanged(world);
    // A new email: it takes over only once its own link is used.
    let moved = new_email("prof_new_");
    let changed = put(json!({ "email": moved, "current_password": PASSWORD }));
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.json()["email"], email.as_str());
    assert_eq!(changed.json()["email_verified"], true);
    assert_eq!(changed.json()["pending_email"], moved.as_str());
    // Until then the old address signs in and the new one does not.
    login(world, &moved, PASSWORD, &new_ip()).assert_error(401, "unauthorized");
    signed_in(world, &email, PASSWORD);
    let link = world
        .fakes
        .mail
        .token_in_link(&moved, "/verify-email")
        .expect("a new link");
    assert_eq!(
        post(world, "/api/auth/verify-email", &json!({ "token": link })).status,
        200
    );
    let now = profile(world, &access(&session)).json();
    assert_eq!(now["email"], moved.as_str());
    assert_eq!(now["email_verified"], true);
    assert_eq!(now["pending_email"], Value::Null);
    // The old address no longer signs in; the new one does.
    login(world, &email, PASSWORD, &new_ip()).assert_error(401, "unauthorized");
    signed_in(world, &moved, PASSWORD);
}

fn a_stolen_token_cannot_change_the_email_and_a_change_voids_every_mailed_link(world: &World) {
    let email = new_email("takeover_");
    let session = register(world, &email);
    let token = access(&session);
    let put = |body: Value| world.authed("PUT", "/api/auth/profile", &token).json(&body);
    let attacker = new_email("attacker_");
    // Without the current password, or with a wrong one, nothing changes.
    let rows = rows_of_email(&email).where_eq("account_mailed_tokens", "email", &attacker);
    let before = world.snapshot(&rows);
    let error = put(json!({ "email": attacker })).assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "current_password", "{error}");
    let error = put(json!({ "email": attacker, "current_password": "not the password!" }))
        .assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "current_password", "{error}");
    before.assert_unchanged(world);
    assert!(world.fakes.mail.delivered_to(&attacker).is_empty());

    // A reset link mailed before the change ...
    let asked = post_from_new_ip(
        world,
        "/api/auth/request-password-reset",
        &json!({ "email": email }),
    );
    assert_eq!(asked.status, 202, "{}", asked.body);
    let reset = world
        .fakes
        .mail
        .token_in_link(&email, "/reset-password")
        .expect("a reset link");
    let verify = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .expect("the first verification link");
    // ... with the password, the change goes through (pending) and the old address is told.
    let moved = new_email("takeover_new_");
    let changed = put(json!({ "email": moved, "current_password": PASSWORD }));
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.json()["pending_email"], moved.as_str());
    let notices = world.fakes.mail.wait_for(&email, 3);
    let notice = notices
        .iter()
        .find(|m| m.text.contains(&moved))
        .unwrap_or_else(|| panic!("a notice to the old address: {notices:?}"));
    assert!(notice.text.contains("/reset-password"), "{}", notice.text);
    // ... and every link mailed before it is refused: the reset, and the first verification.
    let credentials =
        Rows::new().where_eq("account_credentials", "user_id", &user_id_of(world, &email));
    let kept = world.snapshot(&credentials);
    post(
        world,
        "/api/auth/reset-password",
        &json!({ "token": reset, "new_password": NEW_PASSWORD }),
    )
    .assert_error(400, "bad_request");
    post(world, "/api/auth/verify-email", &json!({ "token": verify }))
        .assert_error(400, "bad_request");
    kept.assert_unchanged(world);
    signed_in(world, &email, PASSWORD);
    // A reset asked for the pending address does nothing: it is not the account's yet.
    let asked = post_from_new_ip(
        world,
        "/api/auth/request-password-reset",
        &json!({ "email": moved }),
    );
    assert_eq!(asked.status, 202, "{}", asked.body);
    let confirm = world
        .fakes
        .mail
        .token_in_link(&moved, "/verify-email")
        .expect("the new address's link");
    assert_eq!(
        world.d1_query(&format!(
            "SELECT COUNT(*) AS n FROM account_mailed_tokens \
             WHERE email = '{moved}' AND purpose = 'reset_password'"
        ))[0]["n"],
        0
    );
    assert_eq!(
        post(
            world,
            "/api/auth/verify-email",
            &json!({ "token": confirm })
        )
        .status,
        200
    );
    signed_in(world, &moved, PASSWORD);
}

fn account_and_hmac_tokens_never_pass_for_each_other(world: &World) {
    let email = new_email("kinds_");
    let session = register(world, &email);
    let claims: Value = {
        let payload = access(&session).split('.').nth(1).unwrap().to_owned();
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["iss"], "tollgate-accounts");
    // The same claims signed with the HMAC secret: refused (wrong issuer for HMAC tokens,
    // bad signature for account tokens).
    let forged = hs256(&claims, JWT_SECRET.as_bytes());
    profile(world, &forged).assert_error(401, "unauthorized");
    // An HMAC-shaped token signed with the accounts secret is no HMAC token either.
    let plain = hs256(
        &json!({ "uid": unique("mixed_"), "sid": "s1", "exp": now() + 600 }),
        ACCOUNT_TOKEN_SECRET.as_bytes(),
    );
    world
        .authed("GET", "/api/user/profile", &plain)
        .send()
        .assert_error(401, "unauthorized");
}

fn an_account_access_token_alone_cannot_refresh(world: &World) {
    let email = new_email("bearer_");
    let session = register(world, &email);
    let reply = world
        .authed("POST", "/api/auth/refresh", &access(&session))
        .send();
    let error = reply.assert_error(400, "validation_failed");
    assert!(error["message"].as_str().unwrap().contains("refresh_token"));
    // No body and no bearer is what it always was: unauthorized.
    world
        .call("POST", "/api/auth/refresh")
        .send()
        .assert_error(401, "unauthorized");
    refresh(world, "rt_not-a-real-token").assert_error(401, "unauthorized");
}

fn a_failed_mail_is_kept_and_sent_by_the_scheduled_event(world: &World) {
    let email = new_email("retry_");
    world.fakes.mail.fail_for(&email);
    register(world, &email);
    let outbox = format!(
        "SELECT status, attempts, text_body IS NOT NULL AS has_body FROM mail_outbox \
         WHERE to_address = '{email}'"
    );
    // Sent after the answer: wait for the attempt to be recorded.
    let deadline = Instant::now() + Duration::from_secs(15);
    let failed = loop {
        let rows = world.d1_query(&outbox);
        if rows.first().is_some_and(|r| r["status"] != "pending") || Instant::now() >= deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(world.fakes.mail.delivered_to(&email).is_empty());
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["has_body"], 1);
    // A reset request for it still answers as for any address.
    let reply = post_from_new_ip(
        world,
        "/api/auth/request-password-reset",
        &json!({ "email": email }),
    );
    assert_eq!(reply.status, 202);

    world.fakes.mail.recover(&email);
    let fired = world.get("/cdn-cgi/handler/scheduled?cron=*%2F10+*+*+*+*");
    assert_eq!(fired.status, 200, "{}", fired.body);
    let mails = world.fakes.mail.wait_for(&email, 2);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let sent = loop {
        let rows = world.d1_query(&outbox);
        if rows.iter().all(|r| r["status"] == "sent") || Instant::now() >= deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        sent.iter()
            .all(|r| r["status"] == "sent" && r["has_body"] == 0),
        "{sent:?}"
    );
    // The retried verification link works.
    let token = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .unwrap();
    assert_eq!(
        post(world, "/api/auth/verify-email", &json!({ "token": token })).status,
        200
    );
}

fn a_weaker_hash_is_raised_at_sign_in(world: &World) {
    use tollgate::accounts::rules::password::{hash, HashCost};
    let email = new_email("rehash_");
    register(world, &email);
    let weak = hash(
        PASSWORD,
        &[9; 16],
        HashCost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap();
    world.d1_query(&format!(
        "UPDATE account_credentials SET password_hash = '{weak}' WHERE email = '{email}'"
    ));
    let stored = format!("SELECT password_hash FROM account_credentials WHERE email = '{email}'");
    assert_eq!(world.d1_query(&stored)[0]["password_hash"], weak.as_str());
    // A wrong password leaves it as it is; the right one rehashes at the configured cost.
    login(world, &email, "not the password!", &new_ip()).assert_error(401, "unauthorized");
    assert_eq!(world.d1_query(&stored)[0]["password_hash"], weak.as_str());
    signed_in(world, &email, PASSWORD);
    let raised = world.d1_query(&stored)[0]["password_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        raised.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{raised}"
    );
    signed_in(world, &email, PASSWORD);
}

fn without_its_secret_accounts_answer_not_configured(world: &World) {
    let bare = World::start_without(&["ACCOUNT_TOKEN_SECRET"]).expect("a second worker starts");
    // A world of its own: whole tables can be snapshotted.
    let stored = Rows::new()
        .all("users")
        .all("account_credentials")
        .all("account_refresh_tokens")
        .all("account_mailed_tokens")
        .all("mail_outbox")
        .all("auth_sessions");
    let before = bare.snapshot(&stored);
    let email = new_email("bare_");
    let token = format!("mt_{}", "A".repeat(43));
    for (path, body) in [
        (
            "/api/auth/register",
            json!({ "email": email, "password": PASSWORD }),
        ),
        (
            "/api/auth/login",
            json!({ "email": email, "password": PASSWORD }),
        ),
        (
            "/api/auth/request-password-reset",
            json!({ "email": email }),
        ),
        (
            "/api/auth/reset-password",
            json!({ "token": token, "new_password": NEW_PASSWORD }),
        ),
        ("/api/auth/verify-email", json!({ "token": token })),
        (
            "/api/auth/refresh",
            json!({ "refresh_token": format!("rt_{}", "A".repeat(43)) }),
        ),
    ] {
        let error = post(&bare, path, &body).assert_error(503, "not_configured");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("ACCOUNT_TOKEN_SECRET"),
            "{path}: {error}"
        );
    }
    before.assert_unchanged(&bare);
    // An account token from a worker that has the secret is refused by one that has none.
    let session = register(world, &new_email("elsewhere_"));
    profile(&bare, &access(&session)).assert_error(401, "unauthorized");
}
