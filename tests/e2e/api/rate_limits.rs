//! Per-plan rate limits through the Workers Rate Limiting binding under `wrangler dev`: the
//! request past the plan's rate is refused with `429` and `Retry-After` and changes nothing,
//! each user has a budget of their own, the limit lifts when `Retry-After` says, unlimited
//! plans are never refused, and a plan whose rate has no binding says so.

use std::time::Duration;

use serde_json::json;

use super::api_keys::{all_at_once, clerk_user_on_plan};
use super::usage::idempotent;
use super::Case;
use crate::harness::identity::{now, unique};
use crate::harness::plans::{FREE_REQUESTS_PER_MINUTE, UNBOUND_REQUESTS_PER_MINUTE};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(rate_limits:
        a_request_past_the_plans_rate_is_429_records_nothing_and_lifts_when_retry_after_says,
        unlimited_plans_are_never_rate_limited,
        a_plan_whose_rate_has_no_binding_is_not_configured,
    )
}

/// Now, Unix seconds (the harness clock, unsigned for the arithmetic here).
fn unix_now() -> u64 {
    now() as u64
}

/// Waits until at least `needed` seconds are left in the current minute. The local limiter
/// counts in fixed windows aligned to the minute, so a burst that fits in one window has an
/// exact answer.
pub(super) fn wait_for_room_in_the_minute(needed: u64) {
    let left = 60 - unix_now() % 60;
    if left < needed {
        std::thread::sleep(Duration::from_millis(left * 1000 + 300));
    }
}

fn report(world: &World, token: &str, request_id: &str) -> Reply {
    world
        .authed("POST", "/api/usage/report", token)
        .json(&json!({
            "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 3, "output_tokens": 4,
            "request_id": request_id,
        }))
}

/// The Tollgate ids of the users whose subject is `sub`.
fn user_ids(world: &World, sub: &str) -> Vec<String> {
    world
        .rows(&Rows::new().where_eq("users", "external_id", sub))
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `table`'s rows of the users whose subject is `sub`.
fn meter_rows_of(world: &World, sub: &str, table: &str) -> Vec<serde_json::Value> {
    user_ids(world, sub)
        .iter()
        .flat_map(|id| world.rows(&Rows::of_user(id, &[table])))
        .collect()
}

fn records_of(world: &World, sub: &str) -> Vec<String> {
    let mut ids: Vec<String> = meter_rows_of(world, sub, "usage_records")
        .iter()
        .map(|row| row["request_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn used_tokens(world: &World, sub: &str) -> i64 {
    meter_rows_of(world, sub, "meter_counters")
        .iter()
        .map(|row| row["used"].as_i64().unwrap())
        .sum()
}

/// One user's burst of `limit + 1` requests, alternating usage reports and quota reads, then
/// one profile read, all inside one minute; retried with a new user if the minute rolled over
/// mid-burst. Every answer about the limit is taken inside the burst's minute: the storage
/// reads that follow can take longer than the rest of the minute on a loaded machine.
struct Burst {
    sub: String,
    token: String,
    replies: Vec<Reply>,
    /// A profile read sent right after the burst, on another route than the burst's.
    profile: Reply,
    /// Another user's quota read, sent right after the profile read.
    other_user: Reply,
    /// The request ids of the reports sent, in order.
    report_ids: Vec<String>,
}

fn burst_within_one_minute(world: &World, limit: usize) -> Burst {
    for _ in 0..3 {
        wait_for_room_in_the_minute(30);
        let minute = unix_now() / 60;
        let sub = unique("rate-");
        let token = world.hmac_token(&sub);
        let mut replies = Vec::new();
        let mut report_ids = Vec::new();
        for i in 0..=limit {
            if i % 2 == 0 {
                let id = format!("rl-{i:03}");
                replies.push(report(world, &token, &id));
                report_ids.push(id);
            } else {
                replies.push(world.authed("GET", "/api/usage/quota", &token).send());
            }
        }
        let profile = world.authed("GET", "/api/user/profile", &token).send();
        let other = world.hmac_token(&unique("rate-other-"));
        let other_user = world.authed("GET", "/api/usage/quota", &other).send();
        if unix_now() / 60 == minute {
            return Burst {
                sub,
                token,
                replies,
                profile,
                other_user,
                report_ids,
            };
        }
    }
    panic!("three bursts of {limit} requests each straddled a minute boundary");
}

fn a_request_past_the_plans_rate_is_429_records_nothing_and_lifts_when_retry_after_says(
    world: &World,
) {
    let limit = FREE_REQUESTS_PER_MINUTE;
    let burst = burst_within_one_minute(world, limit);
    let (admitted, refused) = burst.replies.split_at(limit);
    for (i, reply) in admitted.iter().enumerate() {
        assert_eq!(
            reply.status, 200,
            "request {i} of the minute: {}",
            reply.body
        );
    }

    // The request past the rate: 429, a Retry-After that ends with the minute.
    let limited = &refused[0];
    let error = limited.assert_error(429, "rate_limited");
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After is whole seconds");
    let left = 60 - unix_now() % 60;
    assert!(
        (1..=60).contains(&retry_after) && retry_after.abs_diff(left) <= 2,
        "Retry-After {retry_after} s, but the minute ends in {left} s"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&retry_after.to_string()),
        "{error}"
    );

    // The budget is the user's, across every route, not the route's or everyone's.
    burst.profile.assert_error(429, "rate_limited");
    assert_eq!(
        burst.other_user.status, 200,
        "another user is unaffected: {}",
        burst.other_user.body
    );
    assert_eq!(world.get("/api/health/ping").status, 200);

    // It changed nothing: the refused report (the last request id) was not recorded.
    let refused_id = burst.report_ids.last().unwrap();
    let recorded = records_of(world, &burst.sub);
    let mut expected: Vec<String> = burst.report_ids[..burst.report_ids.len() - 1].to_vec();
    expected.sort();
    assert_eq!(recorded, expected, "{refused_id} must not be recorded");
    assert_eq!(used_tokens(world, &burst.sub), 7 * expected.len() as i64);

    // Retrying after Retry-After is admitted, and that retry is recorded once.
    let left = 60 - unix_now() % 60;
    std::thread::sleep(Duration::from_millis(left * 1000 + 300));
    let retried = report(world, &burst.token, refused_id);
    assert_eq!(retried.status, 200, "after Retry-After: {}", retried.body);
    let recorded = records_of(world, &burst.sub);
    assert_eq!(recorded.len(), expected.len() + 1);
    assert!(recorded.contains(refused_id));
}

fn unlimited_plans_are_never_rate_limited(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let n = FREE_REQUESTS_PER_MINUTE * 3 / 2;
    let replies = all_at_once(n, |_| {
        idempotent(|| world.authed("GET", "/api/usage/quota", &token).send())
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{n} requests in a burst on a plan without a rate: {statuses:?}"
    );
}

fn a_plan_whose_rate_has_no_binding_is_not_configured(world: &World) {
    let (sub, token) = clerk_user_on_plan(world, "legacy");
    let binding = format!("RATE_LIMIT_{UNBOUND_REQUESTS_PER_MINUTE}");
    let users = user_ids(world, &sub);
    assert_eq!(users.len(), 1, "the webhook created the user");
    let meters = Rows::of_user(
        &users[0],
        &["usage_reservations", "meter_counters", "usage_records"],
    );
    let before = world.snapshot(&meters);
    let reply = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": 10, "request_id": unique("rsv-") }));
    let error = reply.assert_error(503, "not_configured");
    assert!(
        error["message"].as_str().unwrap().contains(&binding),
        "the answer names the binding: {error}"
    );
    // Nothing was reserved or counted.
    before.assert_unchanged(world);
    assert_eq!(
        world.count(&Rows::of_user(&users[0], &["usage_reservations"])),
        0,
        "nothing was reserved"
    );
    let hint = format!("name = \\\"{binding}\\\"");
    let log = world.worker_log_with(&[&hint]);
    assert!(
        log.contains(&hint),
        "the log says what to add to wrangler.toml ({hint})"
    );
}
