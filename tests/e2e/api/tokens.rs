//! The token ledger through the real worker, local D1 and the fake Stripe: exact spending
//! under concurrency, idempotent retries, packs bought through Checkout and credited exactly
//! once whichever of Stripe's events arrives first, refunds and disputes (with a shortfall,
//! owed as debt that later credits repay first, when the tokens were spent), social rewards
//! once per task, admin grants, listing and analytics, and bad
//! input that changes nothing.

use serde_json::{json, Value};

use super::api_keys::{all_at_once, clerk_user_on_plan};
use super::usage::idempotent;
use super::Case;
use crate::fakes::{stripe_signature, STRIPE_WEBHOOK_SECRET};
use crate::harness::identity::{now, unique, ADMIN_HMAC_UID};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World, BILLING_RETURN_URL};

pub fn cases() -> Vec<Case> {
    crate::cases!(tokens:
        a_hundred_concurrent_uses_of_fifty_tokens_admit_exactly_fifty,
        a_retried_use_returns_the_first_answer_and_records_nothing,
        a_pack_is_credited_exactly_once_whichever_event_arrives_first,
        a_refund_debits_the_pack_and_records_what_was_already_spent_as_shortfall,
        a_disputed_pack_is_taken_back_once_and_what_was_spent_is_a_debt_the_next_purchase_repays,
        payments_that_are_not_token_packs_are_ignored,
        twenty_concurrent_claims_of_a_social_task_reward_once,
        bad_input_is_refused_and_changes_nothing,
        adding_tokens_is_for_admins_and_needs_a_known_user,
        transactions_are_paginated_and_filtered_by_kind_and_date,
        analytics_sums_earned_and_spent_per_day_and_kind,
    )
}

/// Cases that start a worker of their own.
pub fn serial_cases() -> Vec<Case> {
    crate::cases!(tokens:
        a_deployment_without_stripe_or_with_a_bad_task_catalog_answers_not_configured,
    )
}

/// A fresh user on the basic plan (no rate limit in the test catalog): (token, user id).
fn user(world: &World) -> (String, String) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    (token, profile["id"].as_str().unwrap().to_owned())
}

fn admin(world: &World) -> String {
    world.hmac_token(ADMIN_HMAC_UID)
}

/// Gives `user_id` `amount` tokens as the admin; the answer must be 200.
fn grant(world: &World, user_id: &str, amount: i64) -> Value {
    let reply = world
        .authed("POST", "/api/tokens/add", &admin(world))
        .json(&json!({
            "user_id": user_id, "amount": amount, "reason": "test grant",
            "request_id": unique("grant-"),
        }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn use_tokens(world: &World, token: &str, amount: i64, request_id: &str) -> Reply {
    idempotent(|| {
        world.authed("POST", "/api/tokens/use", token).json(&json!({
            "amount": amount, "reason": "a model call", "request_id": request_id,
        }))
    })
}

fn balance(world: &World, token: &str) -> i64 {
    standing(world, token).0
}

/// The caller's (balance, debt) as `GET /api/tokens/balance` shows them.
fn standing(world: &World, token: &str) -> (i64, i64) {
    let reply = world.authed("GET", "/api/tokens/balance", token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    (
        body["balance"].as_i64().unwrap(),
        body["debt"].as_i64().unwrap(),
    )
}

/// The user's ledger rows, oldest first.
fn ledger(world: &World, user_id: &str) -> Vec<Value> {
    world.d1_query(&format!(
        "SELECT id, kind, amount, balance_after, shortfall, debt_after, repaid, \
                idempotency_key, reference \
         FROM token_ledger WHERE user_id = '{user_id}' ORDER BY id"
    ))
}

/// Asserts every entry's balance_after is the running sum of amounts less what credits
/// repaid, and its debt_after the running sum of shortfalls less repayments, neither ever
/// negative; returns the balance.
fn assert_consistent(rows: &[Value]) -> i64 {
    let (mut running, mut debt) = (0, 0);
    let int = |row: &Value, column: &str| row[column].as_i64().unwrap();
    for row in rows {
        running += int(row, "amount") - int(row, "repaid");
        debt += int(row, "shortfall") - int(row, "repaid");
        assert_eq!(int(row, "balance_after"), running, "{rows:#?}");
        assert_eq!(int(row, "debt_after"), debt, "{rows:#?}");
        assert!(running >= 0 && debt >= 0, "{rows:#?}");
        assert!(
            debt == 0 || running == 0,
            "a debt is repaid before anything is kept: {rows:#?}"
        );
    }
    running
}

/// Delivers a Stripe event as Stripe would now; the answer must be 200. Returns its `event`.
fn deliver(world: &World, event: &Value) -> Value {
    let body = event.to_string();
    let signature = stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now());
    let reply = world
        .call("POST", "/api/webhooks/stripe")
        .header("Stripe-Signature", &signature)
        .body("application/json", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["event"].clone()
}

/// Starts a purchase of `pack`; returns the Checkout Session's id.
fn purchase(world: &World, token: &str, pack: &str) -> String {
    let reply = world
        .authed("POST", "/api/tokens/purchase", token)
        .json(&json!({ "pack": pack }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/"),
        "{body}"
    );
    body["session_id"].as_str().unwrap().to_owned()
}

/// Buys `pack` and delivers `checkout.session.completed`: (session id, payment intent).
fn bought(world: &World, token: &str, pack: &str) -> (String, String) {
    let session = purchase(world, token, pack);
    let completed = world.fakes.stripe.complete_checkout(&session);
    assert_eq!(deliver(world, &completed)["status"], "processed");
    let pi = completed["data"]["object"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    (session, pi)
}

fn audit_actions(world: &World, user_id: &str, action: &str) -> Vec<Value> {
    world.rows(
        &Rows::new()
            .where_eq("audit_log", "target_id", user_id)
            .and_eq("action", action),
    )
}

fn a_hundred_concurrent_uses_of_fifty_tokens_admit_exactly_fifty(world: &World) {
    let (token, user_id) = user(world);
    grant(world, &user_id, 50);
    let replies = all_at_once(100, |i| use_tokens(world, &token, 1, &format!("race-{i}")));
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 402).collect();
    assert_eq!(
        ok,
        50,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 50);
    for reply in refused {
        reply.assert_error(402, "insufficient_credits");
    }
    assert_eq!(balance(world, &token), 0);
    let rows = ledger(world, &user_id);
    assert_eq!(rows.len(), 51, "one grant and fifty uses");
    assert_eq!(
        assert_consistent(&rows),
        0,
        "the amounts sum to the balance"
    );
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "use").count(),
        50,
        "no refused use is recorded"
    );
    // One audit row per use, written with it: each names its own entry.
    let mut audited: Vec<i64> = audit_actions(world, &user_id, "tokens.used")
        .iter()
        .map(|r| {
            let detail: Value = serde_json::from_str(r["detail"].as_str().unwrap()).unwrap();
            detail["entry_id"].as_i64().expect("the entry's id")
        })
        .collect();
    let mut used: Vec<i64> = rows
        .iter()
        .filter(|r| r["kind"] == "use")
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    audited.sort_unstable();
    used.sort_unstable();
    assert_eq!(audited, used);
}

fn a_retried_use_returns_the_first_answer_and_records_nothing(world: &World) {
    let (token, user_id) = user(world);
    grant(world, &user_id, 10);
    let first = use_tokens(world, &token, 3, "retry-1");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let answer = first.json();
    assert_eq!(answer["balance"], 7);
    assert_eq!(answer["entry"]["kind"], "use");
    assert_eq!(answer["entry"]["amount"], -3);

    let stored =
        Rows::of_user(&user_id, &["token_ledger"]).where_eq("audit_log", "target_id", &user_id);
    let before = world.snapshot(&stored);
    let again = use_tokens(world, &token, 3, "retry-1");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.json(), answer, "the first answer, repeated");
    // The same key in the header says the same.
    let header = world
        .authed("POST", "/api/tokens/use", &token)
        .header("Idempotency-Key", "retry-1")
        .json(&json!({ "amount": 3, "reason": "a model call" }));
    assert_eq!(header.status, 200, "{}", header.body);
    assert_eq!(header.json()["entry"], answer["entry"]);
    // The same key for another amount is a conflict.
    use_tokens(world, &token, 4, "retry-1").assert_error(409, "conflict");
    before.assert_unchanged(world);
    assert_eq!(balance(world, &token), 7);
}

/// The value of the form parameter `name` Stripe received.
fn param(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn a_pack_is_credited_exactly_once_whichever_event_arrives_first(world: &World) {
    let (token, user_id) = user(world);
    let session = purchase(world, &token, "starter");
    // What the worker asked Stripe for: a payment-mode session whose metadata (and its
    // payment intent's) names the user, the pack and its tokens.
    let stripe = &world.fakes.stripe;
    let sent = stripe
        .form("POST", "/v1/checkout/sessions")
        .into_iter()
        .find(|f| param(f, "client_reference_id").as_deref() == Some(user_id.as_str()))
        .expect("the session's parameters");
    assert_eq!(param(&sent, "mode").as_deref(), Some("payment"));
    assert_eq!(
        param(&sent, "line_items[0][price_data][unit_amount]").as_deref(),
        Some("500")
    );
    assert_eq!(
        param(&sent, "line_items[0][price_data][currency]").as_deref(),
        Some("usd")
    );
    assert_eq!(
        param(&sent, "success_url"),
        Some(format!("{BILLING_RETURN_URL}/success"))
    );
    for prefix in ["metadata", "payment_intent_data[metadata]"] {
        assert_eq!(
            param(&sent, &format!("{prefix}[user_id]")),
            Some(user_id.clone())
        );
        assert_eq!(
            param(&sent, &format!("{prefix}[token_pack]")).as_deref(),
            Some("starter")
        );
        assert_eq!(
            param(&sent, &format!("{prefix}[tokens]")).as_deref(),
            Some("1000")
        );
    }
    assert_eq!(
        balance(world, &token),
        0,
        "nothing until Stripe says it is paid"
    );
    assert_eq!(
        audit_actions(world, &user_id, "tokens.checkout_created").len(),
        1
    );

    let completed = stripe.complete_checkout(&session);
    let pi = completed["data"]["object"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(deliver(world, &completed)["status"], "processed");
    assert_eq!(deliver(world, &completed)["duplicate"], true);
    let succeeded = stripe.payment_intent_succeeded(&pi);
    assert_eq!(deliver(world, &succeeded)["status"], "ignored");
    // The same payment's checkout event, as a distinct event (a new id), changes nothing.
    let mut redelivered = completed.clone();
    redelivered["id"] = json!(unique("evt_"));
    assert_eq!(deliver(world, &redelivered)["status"], "ignored");
    let purchases: Vec<Value> = ledger(world, &user_id)
        .into_iter()
        .filter(|r| r["kind"] == "purchase")
        .collect();
    assert_eq!(purchases.len(), 1, "{purchases:#?}");
    assert_eq!(purchases[0]["amount"], 1000);
    assert_eq!(purchases[0]["reference"], pi.as_str());
    assert_eq!(balance(world, &token), 1000);
    let audited = audit_actions(world, &user_id, "tokens.purchased");
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["actor_kind"], "system");
    assert_eq!(audited[0]["actor_id"], "stripe");

    // The other order: the payment intent first, then the checkout.
    let session = purchase(world, &token, "pro");
    let completed = stripe.complete_checkout(&session);
    let pi = completed["data"]["object"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        deliver(world, &stripe.payment_intent_succeeded(&pi))["status"],
        "processed"
    );
    assert_eq!(deliver(world, &completed)["status"], "ignored");
    let rows = ledger(world, &user_id);
    assert_eq!(rows.iter().filter(|r| r["kind"] == "purchase").count(), 2);
    assert_eq!(assert_consistent(&rows), 13_000);

    // A delayed payment method: the session completes unpaid, and Stripe reports the payment
    // later with `checkout.session.async_payment_succeeded`.
    let session = purchase(world, &token, "starter");
    let completed = stripe.complete_checkout(&session);
    let mut object = completed["data"]["object"].clone();
    object["payment_status"] = json!("unpaid");
    let unpaid = stripe.event("checkout.session.completed", object.clone());
    assert_eq!(deliver(world, &unpaid)["status"], "ignored", "not paid yet");
    assert_eq!(balance(world, &token), 13_000);
    object["payment_status"] = json!("paid");
    let paid = stripe.event("checkout.session.async_payment_succeeded", object);
    assert_eq!(deliver(world, &paid)["status"], "processed");
    assert_eq!(balance(world, &token), 14_000);
    let pi = completed["data"]["object"]["payment_intent"]
        .as_str()
        .unwrap();
    assert_eq!(
        deliver(world, &stripe.payment_intent_succeeded(pi))["status"],
        "ignored"
    );
    assert_eq!(assert_consistent(&ledger(world, &user_id)), 14_000);
}

fn a_refund_debits_the_pack_and_records_what_was_already_spent_as_shortfall(world: &World) {
    let (token, user_id) = user(world);
    let (_, pi) = bought(world, &token, "starter"); // 1000 tokens for 500 cents
    let stripe = &world.fakes.stripe;
    // Half refunded: half the tokens taken back.
    let half = stripe.refund(&pi, 250);
    assert_eq!(deliver(world, &half)["status"], "processed");
    assert_eq!(balance(world, &token), 500);
    // The same refund again (another delivery) takes nothing more.
    let mut again = half.clone();
    again["id"] = json!(unique("evt_"));
    assert_eq!(deliver(world, &again)["status"], "ignored");
    assert_eq!(balance(world, &token), 500);
    // 400 spent; the rest refunded: 500 more are due, 100 are there.
    assert_eq!(
        use_tokens(world, &token, 400, "spend-before-refund").status,
        200
    );
    let rest = stripe.refund(&pi, 250);
    assert_eq!(deliver(world, &rest)["status"], "processed");
    assert_eq!(balance(world, &token), 0, "never below zero");
    let rows = ledger(world, &user_id);
    assert_eq!(assert_consistent(&rows), 0);
    let refunds: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "refund").collect();
    assert_eq!(refunds.len(), 2, "{rows:#?}");
    assert_eq!(refunds[0]["amount"], -500);
    assert_eq!(refunds[0]["shortfall"], 0);
    assert_eq!(refunds[1]["amount"], -100);
    assert_eq!(refunds[1]["shortfall"], 400);
    // The shortfall shows in the caller's transactions.
    let listed = world
        .authed("GET", "/api/tokens/transactions?kind=refund", &token)
        .send()
        .json();
    assert_eq!(listed["data"][0]["shortfall"], 400, "{listed}");
    assert_eq!(listed["data"][0]["amount"], -100);
    assert_eq!(audit_actions(world, &user_id, "tokens.refunded").len(), 2);
    // A full refund delivered late changes nothing more.
    let mut late = rest.clone();
    late["id"] = json!(unique("evt_"));
    assert_eq!(deliver(world, &late)["status"], "ignored");
    assert_eq!(ledger(world, &user_id).len(), rows.len());

    // The shortfall is owed: the next purchase repays the 400 first.
    assert_eq!(standing(world, &token), (0, 400));
    let (_, pi) = bought(world, &token, "starter");
    assert_eq!(standing(world, &token), (600, 0));
    // A shortfall counts as accounted for: a later refund of the same payment takes only
    // its own share, even once the balance could cover more.
    assert_eq!(use_tokens(world, &token, 500, "spend-most").status, 200);
    assert_eq!(
        deliver(world, &stripe.refund(&pi, 250))["status"],
        "processed"
    );
    assert_eq!(standing(world, &token), (0, 400));
    grant(world, &user_id, 1000);
    assert_eq!(standing(world, &token), (600, 0));
    assert_eq!(
        deliver(world, &stripe.refund(&pi, 250))["status"],
        "processed"
    );
    let rows = ledger(world, &user_id);
    let last: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "refund")
        .skip(2)
        .collect();
    assert_eq!(last.len(), 2, "{rows:#?}");
    assert_eq!(
        (last[0]["amount"].as_i64(), last[0]["shortfall"].as_i64()),
        (Some(-100), Some(400))
    );
    assert_eq!(
        (last[1]["amount"].as_i64(), last[1]["shortfall"].as_i64()),
        (Some(-500), Some(0))
    );
    assert_eq!(assert_consistent(&rows), 100);
    assert_eq!(standing(world, &token), (100, 0));
}

fn a_disputed_pack_is_taken_back_once_and_what_was_spent_is_a_debt_the_next_purchase_repays(
    world: &World,
) {
    let stripe = &world.fakes.stripe;
    // Unspent: the dispute takes the whole pack back, nothing owed.
    let (token, user_id) = user(world);
    let (_, pi) = bought(world, &token, "starter"); // 1000 tokens for 500 cents
    let disputed = stripe.dispute(&pi, "fraudulent");
    assert_eq!(disputed["type"], "charge.dispute.created");
    assert_eq!(disputed["data"]["object"]["object"], "dispute");
    assert_eq!(deliver(world, &disputed)["status"], "processed");
    assert_eq!(standing(world, &token), (0, 0));
    let rows = ledger(world, &user_id);
    assert_eq!(assert_consistent(&rows), 0);
    let last = rows.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["amount"].as_i64()),
        (Some("refund"), Some(-1000))
    );
    assert_eq!(last["reference"], pi);
    let dispute_id = disputed["data"]["object"]["id"].as_str().unwrap();
    assert_eq!(
        last["idempotency_key"],
        format!("stripe:dispute:{dispute_id}")
    );
    assert_eq!(audit_actions(world, &user_id, "tokens.refunded").len(), 1);

    // Spent: 700 of 1000 used, so the dispute takes 300 and 700 are owed.
    let (token, user_id) = user(world);
    let (_, pi) = bought(world, &token, "starter");
    assert_eq!(
        use_tokens(world, &token, 700, "spend-before-dispute").status,
        200
    );
    let disputed = stripe.dispute(&pi, "product_not_received");
    assert_eq!(deliver(world, &disputed)["status"], "processed");
    assert_eq!(standing(world, &token), (0, 700));
    let before = ledger(world, &user_id);
    let last = before.last().unwrap();
    assert_eq!(
        (
            last["amount"].as_i64(),
            last["shortfall"].as_i64(),
            last["debt_after"].as_i64()
        ),
        (Some(-300), Some(700), Some(700))
    );
    // Nothing can be spent while owing.
    assert_eq!(
        use_tokens(world, &token, 1, "spend-while-owing").status,
        402
    );

    // The same dispute delivered again (the same event, and another event about it), and a
    // refund of the disputed payment, change nothing.
    assert_eq!(deliver(world, &disputed)["duplicate"], true);
    let mut again = disputed.clone();
    again["id"] = json!(unique("evt_"));
    assert_eq!(deliver(world, &again)["status"], "ignored");
    assert_eq!(
        deliver(world, &stripe.refund(&pi, 500))["status"],
        "ignored"
    );
    assert_eq!(ledger(world, &user_id), before);
    assert_eq!(standing(world, &token), (0, 700));
    assert_eq!(audit_actions(world, &user_id, "tokens.refunded").len(), 1);

    // The next purchase repays the debt first: 700 of its 1000 go to it, 300 are kept.
    let (_, next) = bought(world, &token, "starter");
    assert_eq!(standing(world, &token), (300, 0));
    let rows = ledger(world, &user_id);
    let purchase = rows.last().unwrap();
    assert_eq!(
        (
            purchase["kind"].as_str(),
            purchase["amount"].as_i64(),
            purchase["repaid"].as_i64(),
            purchase["balance_after"].as_i64(),
            purchase["debt_after"].as_i64(),
        ),
        (Some("purchase"), Some(1000), Some(700), Some(300), Some(0))
    );
    assert_eq!(assert_consistent(&rows), 300);
    let listed = world
        .authed("GET", "/api/tokens/transactions?kind=purchase", &token)
        .send()
        .json();
    assert_eq!(listed["data"][0]["repaid"], 700, "{listed}");
    assert_eq!(listed["data"][0]["debt_after"], 0, "{listed}");

    // A debt larger than a credit: the grant goes wholly to it and the balance stays 0.
    assert_eq!(use_tokens(world, &token, 300, "spend-all").status, 200);
    assert_eq!(
        deliver(world, &stripe.dispute(&next, "fraudulent"))["status"],
        "processed"
    );
    assert_eq!(standing(world, &token), (0, 1000));
    grant(world, &user_id, 400);
    assert_eq!(standing(world, &token), (0, 600));
    // A refund after the dispute of the same payment takes nothing more.
    assert_eq!(
        deliver(world, &stripe.refund(&next, 500))["status"],
        "ignored"
    );
    // Twenty credits of 50 at once against the 600 owed: exactly 600 repay it, 400 are kept.
    let prefix = unique("repay-");
    let replies = all_at_once(20, |i| {
        let key = format!("{prefix}-{i}");
        idempotent(|| {
            world
                .authed("POST", "/api/tokens/add", &admin(world))
                .json(&json!({
                    "user_id": user_id, "amount": 50, "reason": "test grant",
                    "request_id": key,
                }))
        })
    });
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(standing(world, &token), (400, 0));
    let rows = ledger(world, &user_id);
    assert_eq!(assert_consistent(&rows), 400);
    let repaid: i64 = rows
        .iter()
        .rev()
        .take(20)
        .map(|r| r["repaid"].as_i64().unwrap())
        .sum();
    assert_eq!(repaid, 600, "{rows:#?}");
}

fn payments_that_are_not_token_packs_are_ignored(world: &World) {
    let stripe = &world.fakes.stripe;
    // A subscription's payment intent: no pack metadata.
    let pi = stripe.event(
        "payment_intent.succeeded",
        json!({"id": unique("pi_"), "object": "payment_intent", "amount": 900,
               "currency": "usd", "status": "succeeded", "metadata": {}}),
    );
    let receipt = deliver(world, &pi);
    assert_eq!(receipt["status"], "ignored", "{receipt}");
    // A refund of a charge no pack was credited for.
    let charge = stripe.event(
        "charge.refunded",
        json!({"id": unique("ch_"), "object": "charge", "amount": 900, "amount_refunded": 900,
               "payment_intent": unique("pi_"), "refunded": true, "metadata": {}}),
    );
    assert_eq!(deliver(world, &charge)["status"], "ignored");
    // Metadata naming a user that does not exist.
    let stranger = stripe.event(
        "payment_intent.succeeded",
        json!({"id": unique("pi_"), "object": "payment_intent", "amount": 500, "status": "succeeded",
               "metadata": {"user_id": "usr_nobody", "token_pack": "starter", "tokens": "1000"}}),
    );
    assert_eq!(deliver(world, &stranger)["status"], "ignored");
    assert_eq!(
        world.count(&Rows::new().where_eq("token_ledger", "user_id", "usr_nobody")),
        0
    );
}

fn twenty_concurrent_claims_of_a_social_task_reward_once(world: &World) {
    let (token, user_id) = user(world);
    let listed = world.authed("GET", "/api/tokens/social", &token).send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["completed"] == false));
    let replies = all_at_once(20, |_| {
        idempotent(|| {
            world
                .authed("POST", "/api/tokens/social", &token)
                .json(&json!({ "task_id": "follow-x", "proof_url": "https://x.com/me/status/1" }))
        })
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(409, "conflict");
    }
    let rows = ledger(world, &user_id);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["kind"], "social_reward");
    assert_eq!(rows[0]["amount"], 50);
    assert_eq!(balance(world, &token), 50);
    let tasks = world
        .authed("GET", "/api/tokens/social", &token)
        .send()
        .json();
    let task = |id: &str| {
        tasks["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(task("follow-x")["completed"], true);
    assert!(task("follow-x")["completed_at"].is_string());
    assert_eq!(task("join-discord")["completed"], false);
    let audited = audit_actions(world, &user_id, "tokens.social_reward");
    assert_eq!(audited.len(), 1);
    assert!(audited[0]["detail"]
        .as_str()
        .unwrap()
        .contains("https://x.com/me/status/1"));
}

fn bad_input_is_refused_and_changes_nothing(world: &World) {
    let (token, user_id) = user(world);
    grant(world, &user_id, 10);
    let stored = Rows::of_user(&user_id, &["token_ledger", "billing_customers"]).where_eq(
        "audit_log",
        "target_id",
        &user_id,
    );
    let before = world.snapshot(&stored);
    let admin = admin(world);
    let uses = [
        json!({"amount": -1, "reason": "r", "request_id": "b1"}),
        json!({"amount": 0, "reason": "r", "request_id": "b2"}),
        json!({"amount": 1.5, "reason": "r", "request_id": "b3"}),
        json!({"amount": 1_000_000_001i64, "reason": "r", "request_id": "b4"}),
        json!({"amount": 1e30, "reason": "r", "request_id": "b5"}),
        json!({"amount": "5", "reason": "r", "request_id": "b6"}),
        json!({"reason": "r", "request_id": "b7"}),
        json!({"amount": null, "reason": "r", "request_id": "b8"}),
        json!({"amount": 1, "request_id": "b9"}),
        json!({"amount": 1, "reason": "", "request_id": "b10"}),
        json!({"amount": 1, "reason": "x".repeat(201), "request_id": "b11"}),
        json!({"amount": 1, "reason": "r"}),
        json!({"amount": 1, "reason": "r", "request_id": "has space"}),
        json!({"amount": 1, "reason": 5, "request_id": "b12"}),
        json!({"amount": 1, "reason": "r", "request_id": "b13", "extra": true}),
        json!([1]),
    ];
    for body in &uses {
        let reply = world.authed("POST", "/api/tokens/use", &token).json(body);
        reply.assert_error(400, "validation_failed");
    }
    // More than the balance: 402, nothing recorded.
    use_tokens(world, &token, 11, "too-much").assert_error(402, "insufficient_credits");
    let adds = [
        json!({"user_id": user_id, "amount": 0, "reason": "r", "request_id": "a1"}),
        json!({"user_id": user_id, "amount": 2.5, "reason": "r", "request_id": "a2"}),
        json!({"user_id": user_id, "amount": 2_000_000_000i64, "reason": "r", "request_id": "a3"}),
        json!({"user_id": user_id, "amount": "10", "reason": "r", "request_id": "a4"}),
        json!({"user_id": user_id, "reason": "r", "request_id": "a5"}),
        json!({"amount": 10, "reason": "r", "request_id": "a6"}),
        json!({"user_id": user_id, "amount": 10, "reason": "r"}),
    ];
    for body in &adds {
        let reply = world.authed("POST", "/api/tokens/add", &admin).json(body);
        reply.assert_error(400, "validation_failed");
    }
    for body in [json!({"pack": "mega"}), json!({"pack": 1}), json!({})] {
        let reply = world
            .authed("POST", "/api/tokens/purchase", &token)
            .json(&body);
        reply.assert_error(400, "validation_failed");
    }
    for body in [
        json!({"task_id": "unknown-task"}),
        json!({"task_id": 7}),
        json!({}),
        json!({"task_id": "follow-x", "proof_url": "http://x.com/me"}),
        json!({"task_id": "follow-x", "proof_url": format!("https://x.com/{}", "a".repeat(2048))}),
    ] {
        let reply = world
            .authed("POST", "/api/tokens/social", &token)
            .json(&body);
        reply.assert_error(400, "validation_failed");
    }
    for query in ["kind=gift", "from=yesterday", "limit=0", "cursor=@@"] {
        world
            .authed("GET", &format!("/api/tokens/transactions?{query}"), &token)
            .send()
            .assert_error(400, "validation_failed");
    }
    before.assert_unchanged(world);
    assert_eq!(balance(world, &token), 10);
}

fn adding_tokens_is_for_admins_and_needs_a_known_user(world: &World) {
    let (token, user_id) = user(world);
    let stored =
        Rows::of_user(&user_id, &["token_ledger"]).where_eq("audit_log", "target_id", &user_id);
    let before = world.snapshot(&stored);
    let body = json!({"user_id": user_id, "amount": 100, "reason": "r", "request_id": "self"});
    world
        .authed("POST", "/api/tokens/add", &token)
        .json(&body)
        .assert_error(403, "forbidden");
    world
        .authed("POST", "/api/tokens/add", &admin(world))
        .json(
            &json!({"user_id": "usr_nobody_here", "amount": 5, "reason": "r", "request_id": "x1"}),
        )
        .assert_error(404, "not_found");
    // Taking more than there is: 402, nothing recorded.
    world
        .authed("POST", "/api/tokens/add", &admin(world))
        .json(&json!({"user_id": user_id, "amount": -1, "reason": "r", "request_id": "x2"}))
        .assert_error(402, "insufficient_credits");
    before.assert_unchanged(world);

    let granted = grant(world, &user_id, 100);
    assert_eq!(granted["balance"], 100);
    assert_eq!(granted["entry"]["kind"], "grant");
    let taken = world.authed("POST", "/api/tokens/add", &admin(world)).json(
        &json!({"user_id": user_id, "amount": -30, "reason": "correction", "request_id": "x3"}),
    );
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert_eq!(taken.json()["entry"]["kind"], "adjustment");
    assert_eq!(taken.json()["balance"], 70);
    assert_eq!(balance(world, &token), 70);
    let granted = audit_actions(world, &user_id, "tokens.granted");
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["actor_kind"], "user");
    assert_ne!(granted[0]["actor_id"], user_id.as_str(), "the admin acted");
    assert_eq!(audit_actions(world, &user_id, "tokens.adjusted").len(), 1);
}

fn transactions_are_paginated_and_filtered_by_kind_and_date(world: &World) {
    let (token, user_id) = user(world);
    grant(world, &user_id, 100);
    for i in 0..3 {
        assert_eq!(
            use_tokens(world, &token, 1, &format!("page-{i}")).status,
            200
        );
    }
    let claimed = world
        .authed("POST", "/api/tokens/social", &token)
        .json(&json!({ "task_id": "join-discord" }));
    assert_eq!(claimed.status, 200, "{}", claimed.body);

    // Two at a time, newest first, every entry once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/tokens/transactions?limit=2&cursor={c}"),
            None => "/api/tokens/transactions?limit=2".to_owned(),
        };
        let page = world.authed("GET", &path, &token).send();
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    let kinds = |query: &str| -> Vec<String> {
        let reply = world
            .authed("GET", &format!("/api/tokens/transactions?{query}"), &token)
            .send();
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kinds("kind=use"), ["use", "use", "use"]);
    assert_eq!(kinds("kind=social_reward"), ["social_reward"]);
    assert!(kinds("kind=purchase").is_empty());
    assert_eq!(kinds("from=2000-01-01T00:00:00Z").len(), 5);
    assert!(kinds("from=2100-01-01T00:00:00Z").is_empty());
    assert!(kinds("to=2000-01-01T00:00:00Z").is_empty());
    assert_eq!(kinds("kind=grant&to=2100-01-01T00:00:00Z"), ["grant"]);
}

fn analytics_sums_earned_and_spent_per_day_and_kind(world: &World) {
    let (token, user_id) = user(world);
    // Yesterday's grant, written as the ledger would have (the API cannot backdate).
    let yesterday_ms = (now() - 86_400) * 1000;
    let yesterday = world.d1_query(&format!(
        "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', {yesterday_ms} / 1000.0, 'unixepoch') AS at"
    ))[0]["at"]
        .as_str()
        .unwrap()
        .to_owned();
    world.d1_query(&format!(
        "INSERT INTO token_ledger (user_id, kind, amount, balance_after, reason, \
             idempotency_key, actor, created_at) \
         VALUES ('{user_id}', 'grant', 30, 30, 'yesterday', 'admin:yesterday', 'usr_admin', \
                 '{yesterday}')"
    ));
    grant(world, &user_id, 100);
    assert_eq!(use_tokens(world, &token, 5, "an-1").status, 200);
    assert_eq!(use_tokens(world, &token, 7, "an-2").status, 200);
    let claimed = world
        .authed("POST", "/api/tokens/social", &token)
        .json(&json!({ "task_id": "follow-x" }));
    assert_eq!(claimed.status, 200, "{}", claimed.body);

    let reply = world.authed("GET", "/api/tokens/analytics", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{body}");
    assert_eq!(days[0]["date"], &yesterday[..10]);
    assert_eq!(days[0]["earned"], 30);
    assert_eq!(days[0]["spent"], 0);
    assert_eq!(days[1]["earned"], 150);
    assert_eq!(days[1]["spent"], 12);
    let kind = |list: &Value, kind: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(kind(&days[1]["by_kind"], "use")["spent"], 12);
    assert_eq!(kind(&days[1]["by_kind"], "grant")["earned"], 100);
    assert_eq!(kind(&days[1]["by_kind"], "social_reward")["earned"], 50);
    assert_eq!(kind(&body["by_kind"], "grant")["earned"], 130);
    assert_eq!(body["totals"]["earned"], 180);
    assert_eq!(body["totals"]["spent"], 12);
    assert_eq!(balance(world, &token), 168);

    // Only today: yesterday's grant is out of range.
    let today = &days[1]["date"].as_str().unwrap().to_owned();
    let only_today = world
        .authed(
            "GET",
            &format!("/api/tokens/analytics?from={today}T00:00:00Z"),
            &token,
        )
        .send()
        .json();
    assert_eq!(only_today["totals"]["earned"], 150, "{only_today}");
    for query in [
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=soon",
    ] {
        world
            .authed("GET", &format!("/api/tokens/analytics?{query}"), &token)
            .send()
            .assert_error(400, "validation_failed");
    }
}

fn a_deployment_without_stripe_or_with_a_bad_task_catalog_answers_not_configured(_world: &World) {
    let bare = World::start_with(&[("SOCIAL_TASKS", "[{\"id\": 1}]"), ("STRIPE_SECRET_KEY", "")])
        .expect("a second worker starts");
    let token = bare.hmac_token(&unique("bare_"));
    let stored = Rows::new()
        .all("token_ledger")
        .all("billing_customers")
        .all("audit_log");
    // The caller's first request makes their user (and its `user.created` audit row) before
    // the snapshot: what follows must change nothing.
    let first = bare.authed("GET", "/api/tokens/balance", &token).send();
    assert_eq!(first.status, 200, "{}", first.body);
    let before = bare.snapshot(&stored);
    let expect = |reply: Reply, setting: &str| {
        let error = reply.assert_error(503, "not_configured");
        assert!(
            error["message"].as_str().unwrap().contains(setting),
            "{error}"
        );
    };
    expect(
        bare.authed("POST", "/api/tokens/purchase", &token)
            .json(&json!({"pack": "starter"})),
        "STRIPE_SECRET_KEY",
    );
    expect(
        bare.authed("GET", "/api/tokens/social", &token).send(),
        "SOCIAL_TASKS",
    );
    expect(
        bare.authed("POST", "/api/tokens/social", &token)
            .json(&json!({"task_id": "follow-x"})),
        "SOCIAL_TASKS",
    );
    // The pack catalog is still fine.
    let packs = bare.call("GET", "/api/tokens/packs").send();
    assert_eq!(packs.status, 200, "{}", packs.body);
    assert_eq!(packs.json()["data"][0]["id"], "starter");
    before.assert_unchanged(&bare);
}
