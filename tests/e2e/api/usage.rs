//! Metering through the real worker and local D1: exact admission under concurrency,
//! idempotent reports, reservations that settle or expire, lazy monthly reset that never goes
//! backwards, the seeds' camelCase bodies and keyless reports, bad input that records
//! nothing, and the plan endpoints.

use serde_json::{json, Value};
use tollgate::core::time::millis_from_rfc3339;

use super::api_keys::{all_at_once, clerk_user_on_plan};
use super::Case;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(usage:
        two_hundred_concurrent_reservations_admit_exactly_the_limit,
        concurrent_reserve_and_report_never_pass_the_limit,
        a_retried_report_answers_the_same_and_records_once,
        a_reservation_settles_and_releases_its_unused_part,
        an_expired_reservation_holds_nothing,
        usage_of_an_earlier_month_does_not_count,
        an_old_period_request_never_resets_a_newer_counter_or_expires_its_reservations,
        old_period_requests_are_admitted_exactly_and_counted_in_the_newer_period,
        a_keyless_camel_case_report_is_recorded_once_and_says_not_idempotent,
        unknown_fields_are_ignored_on_reserve_report_and_sync,
        both_spellings_of_one_field_are_a_400_that_records_nothing,
        sync_answers_has_updates_in_both_spellings_and_takes_epoch_millis,
        a_sync_from_an_earlier_period_has_updates,
        reports_without_a_reservation_are_kept_past_the_limit,
        bad_usage_input_is_400_and_records_nothing,
        unlimited_plans_admit_anything,
        sync_says_whether_the_quota_changed,
        the_quota_reads_the_same_through_every_credential,
        plans_are_listed_and_upgrades_go_to_checkout,
        history_is_paginated_and_filtered,
        stats_total_by_provider_model_device_and_day,
    )
}

const FREE_LIMIT: u64 = 1_000_000;
/// Every table metering writes a user's rows to.
const METER_TABLES: &[&str] = &["usage_records", "usage_reservations", "meter_counters"];
const BASIC_LIMIT: u64 = 10_000_000;

/// A fresh free-plan user: (HMAC token, Tollgate user id).
fn free_user(world: &World) -> (String, String) {
    let token = world.hmac_token(&unique("meter-"));
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    (token, profile["id"].as_str().unwrap().to_owned())
}

/// A fresh basic-plan user: (Clerk token, Tollgate user id). The test catalog gives `basic`
/// no rate limit, so the concurrency cases can send hundreds of requests for one user and
/// every one of them reaches the meter.
fn basic_user(world: &World) -> (String, String) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    (token, profile["id"].as_str().unwrap().to_owned())
}

fn counter(world: &World, user_id: &str) -> Value {
    world
        .d1_query(&format!(
            "SELECT period, used, reserved FROM meter_counters \
             WHERE subject_id = '{user_id}' AND meter = 'tokens'"
        ))
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// Sends an idempotent request (it carries a `request_id`), retrying when the local dev
/// server answers that the worker restarted mid-request — what `wrangler dev` sometimes says
/// under heavy local load; a real client retries with the same key, and the key makes the
/// retry safe.
pub(super) fn idempotent(send: impl Fn() -> crate::harness::Reply) -> crate::harness::Reply {
    let mut reply = send();
    for _ in 0..5 {
        if !(reply.status == 503 && reply.body.contains("restarted mid-request")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        reply = send();
    }
    reply
}

fn report_body(request_id: &str, input: u64, output: u64) -> Value {
    json!({ "provider": "openai", "model": "gpt-4o-mini", "input_tokens": input,
            "output_tokens": output, "request_id": request_id, "device_id": "chrome-1" })
}

fn two_hundred_concurrent_reservations_admit_exactly_the_limit(world: &World) {
    let (token, user_id) = basic_user(world);
    let replies = all_at_once(200, |i| {
        let body =
            json!({ "estimate_tokens": BASIC_LIMIT / 100, "request_id": format!("rsv-{i}") });
        idempotent(|| {
            world
                .authed("POST", "/api/usage/reserve", &token)
                .json(&body)
        })
    });
    let admitted = replies.iter().filter(|r| r.status == 201).count();
    for refused in replies.iter().filter(|r| r.status != 201) {
        refused.assert_error(402, "quota_exceeded");
    }
    assert_eq!(admitted, 100, "exactly the limit is admitted");
    let row = counter(world, &user_id);
    assert_eq!(row["used"], 0);
    assert_eq!(
        row["reserved"], BASIC_LIMIT,
        "D1's counter equals the limit"
    );
    let open = Rows::of_user(&user_id, &["usage_reservations"]).and_eq("status", "reserved");
    assert_eq!(world.count(&open), 100);
}

fn concurrent_reserve_and_report_never_pass_the_limit(world: &World) {
    let (token, user_id) = basic_user(world);
    let replies = all_at_once(200, |i| {
        let body = json!({ "estimate_tokens": BASIC_LIMIT / 100, "model": "gpt-4o",
                           "request_id": format!("mix-rsv-{i}") });
        let reserved = idempotent(|| {
            world
                .authed("POST", "/api/usage/reserve", &token)
                .json(&body)
        });
        if reserved.status != 201 {
            reserved.assert_error(402, "quota_exceeded");
            return reserved;
        }
        let id = reserved.json()["reservation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut body = report_body(&format!("mix-{i}"), BASIC_LIMIT / 200, BASIC_LIMIT / 200);
        body["reservation_id"] = json!(id);
        let reported = idempotent(|| {
            world
                .authed("POST", "/api/usage/report", &token)
                .json(&body)
        });
        assert_eq!(reported.status, 200, "{}", reported.body);
        assert_eq!(reported.json()["reservation"]["status"], "settled");
        reserved
    });
    let admitted = replies.iter().filter(|r| r.status == 201).count();
    let row = counter(world, &user_id);
    assert!(
        admitted >= 100,
        "settled reservations free no room, but all 100 fit"
    );
    assert_eq!(row["reserved"], 0, "every admitted reservation was settled");
    assert_eq!(
        row["used"].as_u64().unwrap(),
        admitted as u64 * (BASIC_LIMIT / 100),
        "each settled report counted once"
    );
    assert!(
        row["used"].as_u64().unwrap() <= BASIC_LIMIT,
        "never past the limit: {row}"
    );
}

fn a_retried_report_answers_the_same_and_records_once(world: &World) {
    let (token, user_id) = free_user(world);
    let body = report_body(&unique("req-"), 1200, 300);
    let first = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.json(), first.json(), "the first answer, exactly");
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    // The same key in the Idempotency-Key header is the same request.
    let mut headerless = body.clone();
    let key = headerless
        .as_object_mut()
        .unwrap()
        .remove("request_id")
        .unwrap();
    let third = world
        .authed("POST", "/api/usage/report", &token)
        .header("Idempotency-Key", key.as_str().unwrap())
        .json(&headerless);
    assert_eq!(third.json(), first.json());
    let records = world.count(&Rows::of_user(&user_id, &["usage_records"]));
    assert_eq!(records, 1);
    assert_eq!(counter(world, &user_id)["used"], 1500);
    assert_eq!(first.json()["quota"]["tokens"]["used"], 1500);
    assert_eq!(first.json()["recorded_without_reservation"], true);
}

fn a_reservation_settles_and_releases_its_unused_part(world: &World) {
    let (token, user_id) = free_user(world);
    let reserved = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 1000, "provider": "openai" }));
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    let id = reserved.json()["reservation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reserved.json()["quota"]["tokens"]["reserved"], 1000);
    let mut body = report_body(&unique("req-"), 400, 200);
    body["reservation_id"] = json!(id);
    let reply = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(
        answer["reservation"],
        json!({ "id": id, "status": "settled", "released_tokens": 400 })
    );
    assert_eq!(answer["quota"]["tokens"]["used"], 600);
    assert_eq!(answer["quota"]["tokens"]["reserved"], 0);
    assert_eq!(answer["recorded_without_reservation"], false);
    // Settling it again from another report does not release twice.
    let mut again = report_body(&unique("req-"), 10, 0);
    again["reservation_id"] = json!(id);
    let second = world
        .authed("POST", "/api/usage/report", &token)
        .json(&again)
        .json();
    assert_eq!(second["reservation"]["status"], "already_settled");
    assert_eq!(second["recorded_without_reservation"], true);
    assert_eq!(counter(world, &user_id)["used"], 610);
    // Someone else's (or an unknown) reservation id is not theirs to settle.
    let (other, _) = free_user(world);
    let mut stolen = report_body(&unique("req-"), 1, 0);
    stolen["reservation_id"] = json!("rsv_000000000000000000000000");
    let reply = world
        .authed("POST", "/api/usage/report", &other)
        .json(&stolen)
        .json();
    assert_eq!(reply["reservation"]["status"], "not_found");
}

fn an_expired_reservation_holds_nothing(world: &World) {
    let (token, user_id) = free_user(world);
    let reserved = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": FREE_LIMIT }));
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 1 }))
        .assert_error(402, "quota_exceeded");
    // Let it expire (as the clock would after RESERVATION_TTL_SECS).
    world.d1_query(&format!(
        "UPDATE usage_reservations SET expires_at_ms = 1 WHERE subject_id = '{user_id}'"
    ));
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["tokens"]["reserved"], 0, "{quota}");
    assert_eq!(quota["tokens"]["remaining"], FREE_LIMIT);
    let again = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": FREE_LIMIT }));
    assert_eq!(again.status, 201, "{}", again.body);
    let statuses = world.d1_query(&format!(
        "SELECT status FROM usage_reservations WHERE subject_id = '{user_id}' ORDER BY created_at"
    ));
    assert_eq!(
        statuses,
        vec![
            json!({ "status": "expired" }),
            json!({ "status": "reserved" })
        ]
    );
}

fn usage_of_an_earlier_month_does_not_count(world: &World) {
    let (token, user_id) = free_user(world);
    let body = report_body(&unique("req-"), FREE_LIMIT, 0);
    assert_eq!(
        world
            .authed("POST", "/api/usage/report", &token)
            .json(&body)
            .status,
        200
    );
    world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 1 }))
        .assert_error(402, "quota_exceeded");
    // Move the counter into last year's October, as if the month had passed.
    world.d1_query(&format!(
        "UPDATE meter_counters SET period = '2025-10' WHERE subject_id = '{user_id}'"
    ));
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["tokens"]["used"], 0, "{quota}");
    let reserved = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 10 }));
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    let row = counter(world, &user_id);
    assert_ne!(
        row["period"], "2025-10",
        "the counter was reset lazily: {row}"
    );
    assert_eq!(row["used"], 0);
    assert_eq!(row["reserved"], 10);
}

/// Moves the user's counter and open reservations into a month far ahead, as if requests of
/// the next month had already reached it, so that every request sent now is stamped in an
/// older period than the counter's (what clock skew at a month boundary does). The worker's
/// clock cannot be moved, so the counter is.
fn move_counter_to_a_later_month(world: &World, user_id: &str) {
    world.d1_query(&format!(
        "UPDATE meter_counters SET period = '{LATER}' WHERE subject_id = '{user_id}'"
    ));
    world.d1_query(&format!(
        "UPDATE usage_reservations SET period = '{LATER}' WHERE subject_id = '{user_id}'"
    ));
}

const LATER: &str = "2099-01";

fn an_old_period_request_never_resets_a_newer_counter_or_expires_its_reservations(world: &World) {
    let (token, user_id) = free_user(world);
    let held = FREE_LIMIT * 9 / 10;
    let first = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": held, "request_id": unique("late-") }));
    assert_eq!(first.status, 201, "{}", first.body);
    let reservation = first.json()["reservation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    move_counter_to_a_later_month(world, &user_id);
    // Reads from now see the later counter as it is, not as an empty month.
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["period"]["key"], LATER, "{quota}");
    assert_eq!(quota["tokens"]["reserved"], held, "{quota}");
    let synced = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({}))
        .json();
    assert_eq!(synced["tokens"]["reserved"], held, "{synced}");
    // A second 90 % from the older month does not fit: the counter was not reset for it.
    world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": held }))
        .assert_error(402, "quota_exceeded");
    let row = counter(world, &user_id);
    assert_eq!(row["period"], LATER, "never moved back: {row}");
    assert_eq!(row["reserved"], held, "{row}");
    let status = world.d1_query(&format!(
        "SELECT status, period FROM usage_reservations WHERE id = '{reservation}'"
    ));
    assert_eq!(
        status,
        vec![json!({ "status": "reserved", "period": LATER })],
        "the later month's reservation still holds"
    );
    // A report from the older month settles it, in the later month.
    let mut body = report_body(&unique("late-"), 600, 0);
    body["reservation_id"] = json!(reservation);
    let settled = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(settled.status, 200, "{}", settled.body);
    assert_eq!(settled.json()["reservation"]["status"], "settled");
    let row = counter(world, &user_id);
    assert_eq!(
        row,
        json!({ "period": LATER, "used": 600, "reserved": 0 }),
        "{row}"
    );
}

fn old_period_requests_are_admitted_exactly_and_counted_in_the_newer_period(world: &World) {
    let (token, user_id) = free_user(world);
    let report = world
        .authed("POST", "/api/usage/report", &token)
        .json(&report_body(&unique("late-"), 300_000, 0));
    assert_eq!(report.status, 200, "{}", report.body);
    let reserved = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 600_000 }));
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    move_counter_to_a_later_month(world, &user_id);
    // 100 000 remain in the later month: exactly that is admitted, one more is not.
    let fits = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 100_000 }));
    assert_eq!(fits.status, 201, "{}", fits.body);
    assert_eq!(fits.json()["quota"]["period"]["key"], LATER);
    assert_eq!(fits.json()["quota"]["tokens"]["remaining"], 0);
    let id = fits.json()["reservation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 1 }))
        .assert_error(402, "quota_exceeded");
    // Usage reported from the older month is recorded, against the later month.
    let body = report_body(&unique("late-"), 7, 3);
    let recorded = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(recorded.status, 200, "{}", recorded.body);
    assert_eq!(recorded.json()["quota"]["period"]["key"], LATER);
    assert_eq!(recorded.json()["quota"]["tokens"]["used"], 300_010);
    let periods = world.d1_query(&format!(
        "SELECT period FROM usage_records WHERE subject_id = '{user_id}' AND request_id = '{}'",
        body["request_id"].as_str().unwrap()
    ));
    assert_eq!(periods, vec![json!({ "period": LATER })]);
    let rows = world.d1_query(&format!(
        "SELECT period FROM usage_reservations WHERE id = '{id}'"
    ));
    assert_eq!(rows, vec![json!({ "period": LATER })]);
    assert_eq!(
        counter(world, &user_id),
        json!({ "period": LATER, "used": 300_010, "reserved": 700_000 })
    );
}

fn a_keyless_camel_case_report_is_recorded_once_and_says_not_idempotent(world: &World) {
    let (token, user_id) = free_user(world);
    // What a client written against the seed sends: camelCase, no idempotency key.
    let body = json!({ "provider": "openai", "model": "gpt-4o-mini", "inputTokens": 12,
                       "outputTokens": 8, "deviceId": "ext-1", "timestamp": 1_795_341_600_000u64 });
    let reply = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["idempotent"], false, "{answer}");
    assert_eq!(answer["usage"]["input_tokens"], 12);
    assert_eq!(answer["usage"]["output_tokens"], 8);
    assert_eq!(answer["usage"]["device_id"], "ext-1");
    assert_eq!(answer["quota"]["tokens"]["used"], 20);
    let rows = world.d1_query(&format!(
        "SELECT id, request_id, input_tokens, output_tokens, device_id FROM usage_records \
         WHERE subject_id = '{user_id}'"
    ));
    assert_eq!(rows.len(), 1, "recorded once: {rows:?}");
    assert_eq!(rows[0]["input_tokens"], 12);
    assert_eq!(rows[0]["device_id"], "ext-1");
    assert_eq!(rows[0]["request_id"], rows[0]["id"], "the server's own key");
    assert_eq!(counter(world, &user_id)["used"], 20);
    // Another keyless report is another record (the key cannot collide), as documented: a
    // retry without a key counts again.
    let again = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), None);
    let records: std::collections::BTreeSet<String> = world
        .rows(&Rows::of_user(&user_id, &["usage_records"]))
        .iter()
        .map(|row| row["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    // With a key (camelCase too) it is idempotent, and says so on the retry as well.
    let mut keyed = body.clone();
    keyed["requestId"] = json!(unique("camel-"));
    let first = world
        .authed("POST", "/api/usage/report", &token)
        .json(&keyed);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["idempotent"], true);
    assert_eq!(first.json()["usage"]["request_id"], keyed["requestId"]);
    let retry = world
        .authed("POST", "/api/usage/report", &token)
        .json(&keyed);
    assert_eq!(retry.json(), first.json());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(counter(world, &user_id)["used"], 60);
}

fn unknown_fields_are_ignored_on_reserve_report_and_sync(world: &World) {
    let (token, user_id) = free_user(world);
    let reserved = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimateTokens": 500, "requestId": unique("u-"),
                       "priority": "high", "context": { "tab": 3 } }));
    assert_eq!(reserved.status, 201, "{}", reserved.body);
    assert_eq!(reserved.json()["reservation"]["estimate_tokens"], 500);
    let id = reserved.json()["reservation"]["id"].clone();
    let reported = world.authed("POST", "/api/usage/report", &token).json(
        &json!({ "provider": "openai", "model": "gpt-4o", "inputTokens": 100,
                       "outputTokens": 50, "reservationId": id, "requestId": unique("u-"),
                       "latencyMs": 830, "sessionId": "s-1", "plan": "enterprise" }),
    );
    assert_eq!(reported.status, 200, "{}", reported.body);
    assert_eq!(reported.json()["reservation"]["status"], "settled");
    let synced = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({ "lastSyncAt": null, "deviceName": "Chrome", "version": 2 }));
    assert_eq!(synced.status, 200, "{}", synced.body);
    assert_eq!(synced.json()["tokens"]["used"], 150);
    assert_eq!(
        counter(world, &user_id),
        json!({ "period": synced.json()["period"]["key"], "used": 150, "reserved": 0 })
    );
}

fn both_spellings_of_one_field_are_a_400_that_records_nothing(world: &World) {
    let (token, user_id) = free_user(world);
    let before = world.snapshot(&Rows::of_user(&user_id, METER_TABLES));
    let cases = [
        (
            "/api/usage/report",
            json!({ "provider": "openai", "model": "m", "input_tokens": 10, "inputTokens": 99,
                    "output_tokens": 0 }),
            "input_tokens",
        ),
        (
            "/api/usage/report",
            json!({ "provider": "openai", "model": "m", "input_tokens": 1, "output_tokens": 0,
                    "request_id": "a", "requestId": "b" }),
            "request_id",
        ),
        (
            "/api/usage/reserve",
            json!({ "estimate_tokens": 1, "estimateTokens": 2 }),
            "estimate_tokens",
        ),
        (
            "/api/usage/sync",
            json!({ "last_sync_at": 1, "lastSyncAt": "2026-11-22T10:00:00Z" }),
            "last_sync_at",
        ),
    ];
    for (path, body, field) in cases {
        let error = world
            .authed("POST", path, &token)
            .json(&body)
            .assert_error(400, "validation_failed");
        let said = error["fields"].to_string();
        assert!(
            said.contains("duplicate field") && said.contains(field),
            "{path} {body}: {said}"
        );
    }
    before.assert_unchanged(world);
}

fn sync_answers_has_updates_in_both_spellings_and_takes_epoch_millis(world: &World) {
    let (token, _) = free_user(world);
    let first = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({}))
        .json();
    assert_eq!(first["has_updates"], true, "{first}");
    assert_eq!(first["hasUpdates"], true, "{first}");
    let body = report_body(&unique("req-"), 10, 10);
    let reply = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let server_time = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({}))
        .json()["server_time"]
        .as_str()
        .unwrap()
        .to_owned();
    let now_ms = millis_from_rfc3339(&server_time).expect("server_time is RFC 3339");
    for since in [json!(now_ms), json!(now_ms.to_string())] {
        let quiet = world
            .authed("POST", "/api/usage/sync", &token)
            .json(&json!({ "lastSyncAt": since }))
            .json();
        assert_eq!(quiet["has_updates"], false, "{since}: {quiet}");
        assert_eq!(quiet["hasUpdates"], false, "{since}: {quiet}");
    }
    // A time before the report, as epoch ms: there were updates.
    let before = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({ "last_sync_at": now_ms - 60_000 }))
        .json();
    assert_eq!(before["has_updates"], true, "{before}");
    assert_eq!(before["hasUpdates"], true, "{before}");
    assert_eq!(before["tokens"]["used"], 20);
}

/// A client that last synced in an earlier month is told its quota changed: the period
/// reset since, even if nothing was counted in the new one yet.
fn a_sync_from_an_earlier_period_has_updates(world: &World) {
    let (token, _) = free_user(world);
    let sync = |since: Value| {
        world
            .authed("POST", "/api/usage/sync", &token)
            .json(&json!({ "last_sync_at": since }))
            .json()
    };
    let now = sync(json!(null));
    let period_start = now["period"]["start"].as_str().unwrap().to_owned();
    let start_ms = millis_from_rfc3339(&period_start).unwrap();
    let last_month = sync(json!(start_ms - 1));
    assert_eq!(last_month["has_updates"], true, "{last_month}");
    let this_month = sync(json!(start_ms + 1));
    assert_eq!(this_month["has_updates"], false, "{this_month}");
}

fn reports_without_a_reservation_are_kept_past_the_limit(world: &World) {
    let (token, user_id) = free_user(world);
    let body = report_body(&unique("req-"), FREE_LIMIT, 5);
    let answer = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body)
        .json();
    assert_eq!(answer["over_limit"], true, "{answer}");
    assert_eq!(answer["quota"]["tokens"]["used"], FREE_LIMIT + 5);
    assert_eq!(answer["quota"]["tokens"]["remaining"], 0);
    assert_eq!(
        counter(world, &user_id)["used"],
        FREE_LIMIT + 5,
        "nothing lost"
    );
}

fn bad_usage_input_is_400_and_records_nothing(world: &World) {
    let (token, user_id) = free_user(world);
    let before = world.snapshot(&Rows::of_user(&user_id, METER_TABLES));
    let good = report_body("ok-1", 1, 1);
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let reports = [
        (with("input_tokens", json!(-5)), "input_tokens"),
        (with("input_tokens", json!(1.5)), "input_tokens"),
        (with("output_tokens", json!("10")), "output_tokens"),
        (
            with("output_tokens", json!(100_000_001u64)),
            "output_tokens",
        ),
        (with("input_tokens", json!(1e20)), "input_tokens"),
        (with("provider", json!("")), "provider"),
        (with("model", json!(42)), "model"),
        (with("device_id", json!("has spaces")), "device_id"),
        (with("request_id", json!("bad key!")), "request_id"),
        (with("requestId", json!("ok-2")), "body"),
        (
            json!({ "provider": "openai", "model": "m", "inputTokens": -1, "outputTokens": 1 }),
            "inputTokens",
        ),
        (without("input_tokens"), "body"),
        (json!([good.clone()]), "body"),
    ];
    for (body, field) in &reports {
        let error = world
            .authed("POST", "/api/usage/report", &token)
            .json(body)
            .assert_error(400, "validation_failed");
        let fields: Vec<&str> = error["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with(field) || (*field == "body" && !f.is_empty())),
            "{body}: fields {fields:?} should name {field}"
        );
    }
    for body in [
        json!({ "estimate_tokens": 0 }),
        json!({ "estimate_tokens": -1 }),
        json!({ "estimate_tokens": "lots" }),
        json!({ "estimate_tokens": 100_000_001u64 }),
        json!({}),
    ] {
        world
            .authed("POST", "/api/usage/reserve", &token)
            .json(&body)
            .assert_error(400, "validation_failed");
    }
    for body in [
        json!({ "last_sync_at": "yesterday" }),
        json!({ "lastSyncAt": -1 }),
        json!({ "lastSyncAt": 1.5 }),
        json!({ "last_sync_at": true }),
    ] {
        world
            .authed("POST", "/api/usage/sync", &token)
            .json(&body)
            .assert_error(400, "validation_failed");
    }
    before.assert_unchanged(world);
    world
        .call("POST", "/api/usage/report")
        .json(&good)
        .assert_error(401, "unauthorized");
}

fn unlimited_plans_admit_anything(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "enterprise");
    let replies = all_at_once(20, |_| {
        world
            .authed("POST", "/api/usage/reserve", &token)
            .json(&json!({ "estimate_tokens": 100_000_000u64 }))
    });
    assert!(
        replies.iter().all(|r| r.status == 201),
        "unlimited admits all"
    );
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["tokens"]["unlimited"], true);
    assert_eq!(quota["tokens"]["limit"], Value::Null);
    assert_eq!(quota["tokens"]["reserved"], 2_000_000_000u64);
}

/// The quota is read in the same round trip as the caller's lookup, keyed by their token's
/// subject or their API key's hash: each must find this user's counter and no one else's,
/// and a first request (no user row yet) reads an untouched counter.
fn the_quota_reads_the_same_through_every_credential(world: &World) {
    let sub = unique("quota-first-");
    let token = world.hmac_token(&sub);
    let first = world.authed("GET", "/api/usage/quota", &token).send();
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["tokens"]["used"], 0, "{first}");
    assert_eq!(first["tokens"]["remaining"], FREE_LIMIT, "{first}");

    let reply = world
        .authed("POST", "/api/usage/report", &token)
        .json(&report_body(&unique("req-"), 5, 2));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let key = world.authed("GET", "/api/user/api-key", &token).send();
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.json()["api_key"]["key"].as_str().unwrap().to_owned();

    for credential in [&token, &key] {
        let quota = world
            .authed("GET", "/api/usage/quota", credential)
            .send()
            .json();
        assert_eq!(quota["tokens"]["used"], 7, "{quota}");
        assert_eq!(quota["tokens"]["remaining"], FREE_LIMIT - 7, "{quota}");
        let synced = world
            .authed("POST", "/api/usage/sync", credential)
            .json(&json!({}))
            .json();
        assert_eq!(synced["tokens"]["used"], 7, "{synced}");
    }
    let (other, _) = free_user(world);
    let quota = world
        .authed("GET", "/api/usage/quota", &other)
        .send()
        .json();
    assert_eq!(
        quota["tokens"]["used"], 0,
        "another user's counter: {quota}"
    );
}

fn sync_says_whether_the_quota_changed(world: &World) {
    let (token, _) = free_user(world);
    let first = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({}))
        .json();
    assert_eq!(
        first["has_updates"], true,
        "a first sync always has updates"
    );
    let server_time = first["server_time"].as_str().unwrap().to_owned();
    let quiet = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({ "last_sync_at": server_time }))
        .json();
    assert_eq!(quiet["has_updates"], false, "{quiet}");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let body = report_body(&unique("req-"), 10, 10);
    assert_eq!(
        world
            .authed("POST", "/api/usage/report", &token)
            .json(&body)
            .status,
        200
    );
    let changed = world
        .authed("POST", "/api/usage/sync", &token)
        .json(&json!({ "last_sync_at": server_time }))
        .json();
    assert_eq!(changed["has_updates"], true, "{changed}");
    assert_eq!(changed["tokens"]["used"], 20);
}

fn plans_are_listed_and_upgrades_go_to_checkout(world: &World) {
    // The worker serves the catalog it was configured with (PLAN_CATALOG), in its order.
    let plans = world.get("/api/subscription/plans").json();
    let served = plans["data"].as_array().unwrap();
    let configured = crate::harness::plans::catalog();
    let configured = configured.as_array().unwrap();
    assert_eq!(served.len(), configured.len(), "{plans}");
    for (served, configured) in served.iter().zip(configured) {
        for (field, value) in configured.as_object().unwrap() {
            assert_eq!(&served[field], value, "{field} of {configured}");
        }
    }
    let (token, _) = free_user(world);
    let current = world
        .authed("GET", "/api/subscription/current", &token)
        .send()
        .json();
    assert_eq!(current["plan"]["id"], "free");
    // An upgrade is a Stripe Checkout for the plan's price.
    let upgrade = world
        .authed("POST", "/api/subscription/upgrade", &token)
        .json(&json!({ "plan": "premium" }));
    assert_eq!(upgrade.status, 200, "{}", upgrade.body);
    let session_id = upgrade.json()["session_id"].as_str().unwrap().to_owned();
    let session = world
        .fakes
        .stripe
        .session(&session_id)
        .expect("a Checkout Session");
    assert_eq!(session["url"], upgrade.json()["url"]);
    world
        .authed("POST", "/api/subscription/upgrade", &token)
        .json(&json!({ "plan": "enterprise" }))
        .assert_error(400, "validation_failed");
    world
        .authed("POST", "/api/subscription/upgrade", &token)
        .json(&json!({ "plan": "gold" }))
        .assert_error(400, "validation_failed");
    world
        .authed("POST", "/api/subscription/upgrade", &token)
        .json(&json!({ "plan": "free" }))
        .assert_error(409, "conflict");
}

fn report(world: &World, token: &str, provider: &str, model: &str, device: &str, tokens: u64) {
    let body = json!({ "provider": provider, "model": model, "input_tokens": tokens,
                       "output_tokens": 0, "request_id": unique("h-"), "device_id": device });
    let reply = world.authed("POST", "/api/usage/report", token).json(&body);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn history_is_paginated_and_filtered(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    report(world, &token, "openai", "gpt-4o", "ext-1", 10);
    report(world, &token, "openai", "gpt-4o-mini", "ext-1", 20);
    report(world, &token, "gemini", "gemini-2.0-flash", "app-1", 30);
    let page1 = world
        .authed("GET", "/api/usage/history?limit=2", &token)
        .send()
        .json();
    let tokens = |page: &Value| -> Vec<u64> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["total_tokens"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(tokens(&page1), [30, 20], "newest first");
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let page2 = world
        .authed(
            "GET",
            &format!("/api/usage/history?limit=2&cursor={cursor}"),
            &token,
        )
        .send()
        .json();
    assert_eq!(tokens(&page2), [10]);
    assert_eq!(page2["next_cursor"], Value::Null);
    let openai = world
        .authed("GET", "/api/usage/history?provider=openai", &token)
        .send()
        .json();
    assert_eq!(tokens(&openai), [20, 10]);
    let app = world
        .authed("GET", "/api/usage/history?device_id=app-1", &token)
        .send()
        .json();
    assert_eq!(tokens(&app), [30]);
    let future = world
        .authed(
            "GET",
            "/api/usage/history?from=2999-01-01T00:00:00Z",
            &token,
        )
        .send()
        .json();
    assert_eq!(tokens(&future), Vec::<u64>::new());
    for bad in ["limit=0", "limit=abc", "cursor=nope", "from=yesterday"] {
        world
            .authed("GET", &format!("/api/usage/history?{bad}"), &token)
            .send()
            .assert_error(400, "validation_failed");
    }
    // Another user sees none of it.
    let (other, _) = free_user(world);
    let theirs = world
        .authed("GET", "/api/usage/history", &other)
        .send()
        .json();
    assert_eq!(tokens(&theirs), Vec::<u64>::new());
}

fn stats_total_by_provider_model_device_and_day(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    report(world, &token, "openai", "gpt-4o", "ext-1", 10);
    report(world, &token, "openai", "gpt-4o", "app-1", 20);
    report(world, &token, "gemini", "gemini-2.0-flash", "app-1", 30);
    let stats = world
        .authed("GET", "/api/usage/stats", &token)
        .send()
        .json();
    assert_eq!(stats["totals"]["requests"], 3, "{stats}");
    assert_eq!(stats["totals"]["total_tokens"], 60);
    assert_eq!(
        stats["by_provider"],
        json!([
            { "provider": "gemini", "requests": 1, "input_tokens": 30, "output_tokens": 0, "total_tokens": 30 },
            { "provider": "openai", "requests": 2, "input_tokens": 30, "output_tokens": 0, "total_tokens": 30 },
        ])
    );
    assert_eq!(stats["by_model"][0]["model"], "gemini-2.0-flash");
    assert_eq!(
        stats["by_device"][0],
        json!({ "device_id": "app-1", "requests": 2, "input_tokens": 50, "output_tokens": 0, "total_tokens": 50 })
    );
    let days = stats["by_day"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["total_tokens"], 60);
    assert!(stats["from"]
        .as_str()
        .unwrap()
        .ends_with("-01T00:00:00.000Z"));
    let filtered = world
        .authed("GET", "/api/usage/stats?model=gpt-4o", &token)
        .send()
        .json();
    assert_eq!(filtered["totals"]["total_tokens"], 30);
}
