//! Site chat through the real worker and the fake model: a site's key (from one of its
//! origins) starts a session, later messages continue it with the earlier exchange sent to
//! the model, every message is logged, the org's tokens pay, and a new session fires the
//! org's `chat.session.started` workflows. Refusals change nothing and never call the model.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api_keys::all_at_once;
use super::portal::{make_org, member_token, TestOrg};
use super::usage::idempotent;
use super::Case;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(chat:
        a_conversation_continues_its_session_is_logged_and_paid_by_the_org,
        a_streamed_answer_ends_with_the_session_latency_and_usage,
        refusals_change_nothing_and_never_call_the_model,
        a_visitor_is_held_to_twenty_messages_a_minute,
        an_address_is_held_to_forty_messages_a_minute_whatever_visitor_ids_it_sends,
        chats_on_two_days_are_rolled_up_once_and_the_portal_shows_them,
    )
}

/// An org on the basic plan with one site, made through the portal (chat and voice cases).
pub(super) struct Site {
    pub org: TestOrg,
    pub admin: String,
    pub id: String,
    pub key: String,
    /// Its one origin, `https://<slug>.example`.
    pub origin: String,
}

/// A site of `kind` (`chatbot`, `voice`) of a new org, with its admin's token.
pub(super) fn site_of(world: &World, kind: &str) -> Site {
    let org = make_org(world, "basic");
    let admin = member_token(world, &org.clerk_id, "admin", false);
    let origin = format!("https://{}.example", org.slug);
    let reply = world
        .authed("POST", "/portal/engines", &admin)
        .json(&json!({ "name": "Widget", "type": kind, "origins": [origin] }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let made = reply.json();
    Site {
        id: made["id"].as_str().unwrap().to_owned(),
        key: made["site_key"].as_str().unwrap().to_owned(),
        org,
        admin,
        origin,
    }
}

fn site(world: &World) -> Site {
    site_of(world, "chatbot")
}

fn chat(world: &World, site: &Site, body: &Value) -> Reply {
    world
        .call("POST", "/chat")
        .header("X-Site-Key", &site.key)
        .header("Origin", &site.origin)
        .json(body)
}

/// A client address of this case's own (`CF-Connecting-IP`, which `wrangler dev` passes
/// through as the client sent it), so cases on the shared worker never share a rate.
pub(super) fn new_address() -> String {
    let n = unique("");
    let byte = |i: usize| u8::from_str_radix(&n[i..i + 2], 16).unwrap();
    format!("10.{}.{}.{}", byte(0), byte(2), byte(4))
}

/// Waits, if need be, until at least 25 s of the current minute are left: the rate limiter
/// counts in windows aligned to the minute, so a burst sent now falls in one window.
pub(super) fn in_one_rate_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.as_millis() % 60_000;
    if into > 35_000 {
        std::thread::sleep(Duration::from_millis((60_000 - into) as u64 + 200));
    }
}

fn chat_from(world: &World, site: &Site, address: &str, body: &Value) -> Reply {
    world
        .call("POST", "/chat")
        .header("X-Site-Key", &site.key)
        .header("Origin", &site.origin)
        .header("CF-Connecting-IP", address)
        .json(body)
}

fn org_tokens(world: &World, org_id: &str) -> u64 {
    world
        .d1_query(&format!(
            "SELECT used FROM meter_counters WHERE subject_kind = 'org' \
             AND subject_id = '{org_id}' AND meter = 'tokens'"
        ))
        .first()
        .and_then(|r| r["used"].as_u64())
        .unwrap_or(0)
}

fn messages(world: &World, session_id: &str) -> Vec<Value> {
    world.d1_query(&format!(
        "SELECT role, content, input_tokens, output_tokens, latency_ms, org_id, site_id \
         FROM chat_messages WHERE session_id = '{session_id}' ORDER BY created_at, rowid"
    ))
}

fn a_conversation_continues_its_session_is_logged_and_paid_by_the_org(world: &World) {
    let site = site(world);
    let config = world.authed("PATCH", "/portal/config", &site.admin).json(
        &json!({ "system_prompt": "You answer for the test clinic.", "max_reply_tokens": 40 }),
    );
    assert_eq!(config.status, 200, "{}", config.body);
    let hook = world
        .authed("POST", "/portal/workflows", &site.admin)
        .json(&json!({
            "trigger": "chat.session.started", "url": "https://hooks.example.invalid/chat",
        }));
    assert_eq!(hook.status, 201, "{}", hook.body);
    let marker = unique("conv-");
    let first = format!("{marker} what are your hours? [reply:3]");
    let reply = chat(
        world,
        &site,
        &json!({ "message": first, "visitor_id": "visitor-1" }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(site.origin.as_str())
    );
    let answer = reply.json();
    assert_eq!(answer["response"], "tok tok tok ");
    let session = answer["session_id"].as_str().unwrap().to_owned();
    assert!(
        session.starts_with("cs_") && session.len() == 27,
        "{session}"
    );
    assert!(answer["latency_ms"].as_u64().is_some(), "{answer}");
    let first_usage = answer["usage"]["total_tokens"].as_u64().unwrap();

    let second = format!("{marker} and on sundays? [reply:2]");
    let reply = chat(
        world,
        &site,
        &json!({ "message": second, "sessionId": session }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["session_id"], session.as_str(), "the same session");
    let second_usage = answer["usage"]["total_tokens"].as_u64().unwrap();

    // The model got the org's instructions, the first exchange, then the new message.
    let sent = world.fakes.model.requests_with(&marker);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["messages"],
        json!([
            {"role": "system", "content": "You answer for the test clinic."},
            {"role": "user", "content": first},
            {"role": "assistant", "content": "tok tok tok "},
            {"role": "user", "content": second},
        ])
    );
    assert_eq!(sent[0]["max_tokens"], 40, "the org's reply limit");
    // Every message is logged, with the provider's counts on the replies.
    let logged = messages(world, &session);
    let roles: Vec<&str> = logged.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(logged[0]["content"], first.as_str());
    assert_eq!(logged[1]["output_tokens"], 3);
    assert!(logged[1]["latency_ms"].as_u64().is_some());
    assert!(logged
        .iter()
        .all(|m| m["org_id"] == site.org.id.as_str() && m["site_id"] == site.id.as_str()));
    let sessions = world.d1_query(&format!(
        "SELECT visitor_id, org_id FROM chat_sessions WHERE id = '{session}'"
    ));
    assert_eq!(
        sessions,
        [json!({"visitor_id": "visitor-1", "org_id": site.org.id})]
    );
    // The org's tokens paid for both answers.
    assert_eq!(org_tokens(world, &site.org.id), first_usage + second_usage);
    // One chat.session.started delivery for the one new session.
    let deliveries = world.d1_query(&format!(
        "SELECT d.event_type, d.payload FROM workflow_deliveries d \
         JOIN workflows w ON w.id = d.workflow_id WHERE w.owner_id = '{}'",
        site.org.id
    ));
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["event_type"], "chat.session.started");
    let payload: Value = serde_json::from_str(deliveries[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["session_id"], session.as_str());
    assert_eq!(payload["data"]["visitor_id"], "visitor-1");
    // Its host does not resolve: disable the workflow (failing the pending delivery), so the
    // scheduled retries other cases fire on this shared worker never try it again (workerd
    // reports a failed DNS lookup as an uncaught error, which fails the scheduled event).
    let hook_id = hook.json()["id"].as_str().unwrap().to_owned();
    let off = world
        .authed(
            "PATCH",
            &format!("/portal/workflows/{hook_id}"),
            &site.admin,
        )
        .json(&json!({ "enabled": false }));
    assert_eq!(off.status, 200, "{}", off.body);
    let pending = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM workflow_deliveries WHERE workflow_id = '{hook_id}' \
         AND status = 'pending'"
    ));
    assert_eq!(pending[0]["n"], 0, "nothing left for the scheduled retries");
}

fn a_streamed_answer_ends_with_the_session_latency_and_usage(world: &World) {
    let site = site(world);
    let message = format!("{} hi [reply:4]", unique("stream-"));
    let reply = chat(world, &site, &json!({ "message": message, "stream": true }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events: Vec<(&str, Value)> = reply
        .body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let name = e.lines().next().unwrap().trim_start_matches("event: ");
            let data = e.lines().nth(1).unwrap().trim_start_matches("data: ");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    let text: String = events
        .iter()
        .filter(|(name, _)| *name == "delta")
        .map(|(_, data)| data["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "tok ".repeat(4));
    let (name, done) = events.last().unwrap();
    assert_eq!(*name, "done", "{}", reply.body);
    let session = done["session_id"].as_str().unwrap();
    assert_eq!(done["usage"]["completion_tokens"], 4);
    assert!(done["latency_ms"].as_u64().is_some());
    // Logged after the answer.
    let deadline = Instant::now() + Duration::from_secs(15);
    while messages(world, session).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let logged = messages(world, session);
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[1]["content"], "tok ".repeat(4));
    assert_eq!(logged[1]["output_tokens"], 4);
}

fn refusals_change_nothing_and_never_call_the_model(world: &World) {
    let site = site(world);
    let marker = unique("refuse-");
    let rows = Rows::new()
        .where_eq("chat_sessions", "org_id", &site.org.id)
        .where_eq("chat_messages", "org_id", &site.org.id)
        .where_eq("meter_counters", "subject_id", &site.org.id)
        .where_eq("usage_reservations", "subject_id", &site.org.id);
    let before = world.snapshot(&rows);
    let message = json!({ "message": format!("{marker} hello") });
    let foreign = world
        .call("POST", "/chat")
        .header("X-Site-Key", &site.key)
        .header("Origin", "https://elsewhere.example")
        .json(&message);
    foreign.assert_error(403, "forbidden");
    let keyless = world
        .call("POST", "/chat")
        .header("Origin", &site.origin)
        .json(&message);
    keyless.assert_error(401, "unauthorized");
    for (body, field) in [
        (json!({ "message": "   " }), "message"),
        (json!({ "message": "x".repeat(4001) }), "message"),
        (
            json!({ "message": "hi", "session_id": "uuid-here" }),
            "session_id",
        ),
        (
            json!({ "message": "hi", "visitor_id": "has space" }),
            "visitor_id",
        ),
    ] {
        let reply = chat(world, &site, &body);
        let error = reply.assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], field, "{}", reply.body);
    }
    let unknown = chat(
        world,
        &site,
        &json!({ "message": format!("{marker} hi"), "session_id": format!("cs_{}", "0".repeat(24)) }),
    );
    unknown.assert_error(404, "not_found");
    // An org with no tokens left: 402 before the model is called.
    world.d1_query(&format!(
        "INSERT INTO meter_counters (subject_kind, subject_id, meter, period, used, reserved, updated_at) \
         VALUES ('org', '{}', 'tokens', strftime('%Y-%m', 'now'), 10000000, 0, 'x')",
        site.org.id
    ));
    let broke = chat(world, &site, &message);
    broke.assert_error(402, "quota_exceeded");
    world.d1_query(&format!(
        "DELETE FROM meter_counters WHERE subject_id = '{}'",
        site.org.id
    ));
    // An org whose model the operator no longer offers (CHAT_MODELS shrank since it was
    // chosen): 503 naming the setting, the model not called.
    let stored = world.d1_query(&format!(
        "SELECT config FROM orgs WHERE id = '{}'",
        site.org.id
    ))[0]["config"]
        .as_str()
        .unwrap()
        .to_owned();
    world.d1_query(&format!(
        "UPDATE orgs SET config = '{{\"default_model\":\"gone/model\"}}' WHERE id = '{}'",
        site.org.id
    ));
    let gone = chat(world, &site, &message);
    let error = gone.assert_error(503, "not_configured");
    assert!(
        error["message"].as_str().unwrap().contains("default_model"),
        "{}",
        gone.body
    );
    world.d1_query(&format!(
        "UPDATE orgs SET config = '{}' WHERE id = '{}'",
        stored.replace('\'', "''"),
        site.org.id
    ));
    // A paused site.
    let paused = world
        .authed(
            "PATCH",
            &format!("/portal/engines/{}", site.id),
            &site.admin,
        )
        .json(&json!({ "status": "paused" }));
    assert_eq!(paused.status, 200, "{}", paused.body);
    chat(world, &site, &message).assert_error(403, "forbidden");
    assert!(
        world.fakes.model.requests_with(&marker).is_empty(),
        "the model was called"
    );
    before.assert_unchanged(world);
}

fn a_visitor_is_held_to_twenty_messages_a_minute(world: &World) {
    let site = site(world);
    let marker = unique("rate-");
    // 41 messages in a few seconds span at most two windows of 20: at least one is refused.
    let replies = all_at_once(41, |i| {
        chat(
            world,
            &site,
            &json!({ "message": format!("{marker} {i} [reply:1]"), "visitor_id": "busy" }),
        )
    });
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(!refused.is_empty(), "no message was refused");
    assert!(refused.iter().all(|r| r.header("retry-after").is_some()));
    let answered = replies.iter().filter(|r| r.status == 200).count();
    assert!(
        answered <= 40 && answered + refused.len() == 41,
        "answered {answered}"
    );
    // Another visitor of the same site is not held by the first one's count.
    let other = chat(
        world,
        &site,
        &json!({ "message": format!("{marker} other [reply:1]"), "visitor_id": "calm" }),
    );
    assert_eq!(other.status, 200, "{}", other.body);
}

fn an_address_is_held_to_forty_messages_a_minute_whatever_visitor_ids_it_sends(world: &World) {
    let site = site(world);
    let marker = unique("addr-");
    let address = new_address();
    let rows = Rows::new()
        .where_eq("chat_sessions", "org_id", &site.org.id)
        .where_eq("chat_messages", "org_id", &site.org.id)
        .where_eq("meter_counters", "subject_id", &site.org.id)
        .where_eq("usage_reservations", "subject_id", &site.org.id);
    in_one_rate_window();
    // A fresh visitor_id per message, all from one address: the visitor rate never binds,
    // the address's does.
    // At once: sent one by one they take long enough under load to reach the next window.
    // A message wrangler's dev proxy dropped while it restarted the runtime (its own 503,
    // under heavy parallel load) is sent again, as a client would.
    let replies = all_at_once(60, |i| {
        idempotent(|| {
            chat_from(
                world,
                &site,
                &address,
                &json!({ "message": format!("{marker} {i} [reply:1]"), "visitor_id": format!("v{i}") }),
            )
        })
    });
    let answered = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status != 200).collect();
    for reply in &refused {
        reply.assert_error(429, "rate_limited");
        assert!(reply.header("retry-after").is_some(), "{}", reply.body);
    }
    assert_eq!(answered, 40, "the address's forty a minute");
    assert_eq!(
        world.fakes.model.requests_with(&marker).len(),
        answered,
        "refused messages never reach the model"
    );
    // Nothing of a refused message is stored: a session of two messages per answer.
    let count = |table: &str| {
        world.d1_query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE org_id = '{}'",
            site.org.id
        ))[0]["n"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count("chat_sessions"), answered as u64);
    assert_eq!(count("chat_messages"), (answered * 2) as u64);
    // The held address stays held, whatever new label it sends, and nothing changes.
    let before = world.snapshot(&rows);
    let again = idempotent(|| {
        chat_from(
            world,
            &site,
            &address,
            &json!({ "message": format!("{marker} again"), "visitor_id": "v-new" }),
        )
    });
    again.assert_error(429, "rate_limited");
    before.assert_unchanged(world);
    // Another address is not held by the first one's count, on the same site.
    let other = chat_from(
        world,
        &site,
        &new_address(),
        &json!({ "message": format!("{marker} other [reply:1]"), "visitor_id": "v0" }),
    );
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(world.fakes.model.requests_with(&marker).len(), answered + 1);
}

/// Moves a session and its messages `days` back (as if it had happened then).
fn move_back(world: &World, session: &str, days: u32) {
    world.d1_query_all(&format!(
        "UPDATE chat_sessions SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at, '-{days} days'), \
             last_message_at = strftime('%Y-%m-%dT%H:%M:%fZ', last_message_at, '-{days} days') \
         WHERE id = '{session}'; \
         UPDATE chat_messages SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', created_at, '-{days} days') \
         WHERE session_id = '{session}'"
    ));
}

fn chats_on_two_days_are_rolled_up_once_and_the_portal_shows_them(world: &World) {
    let site = site(world);
    let marker = unique("days-");
    let say = |message: String, session: Option<&str>| {
        let reply = chat(
            world,
            &site,
            &json!({ "message": message, "session_id": session }),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        (
            body["session_id"].as_str().unwrap().to_owned(),
            body["usage"]["total_tokens"].as_u64().unwrap(),
        )
    };
    let (older, t1) = say(format!("{marker} one [reply:3]"), None);
    let (_, t2) = say(format!("{marker} two [reply:2]"), Some(&older));
    let (newer, t3) = say(format!("{marker} three [reply:1]"), None);
    move_back(world, &older, 2);
    move_back(world, &newer, 1);
    let days: Vec<String> = (0..3)
        .map(|ago| {
            world.d1_query(&format!(
                "SELECT strftime('%Y-%m-%d', 'now', '-{ago} days') AS d"
            ))[0]["d"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let rows = || {
        world.d1_query(&format!(
            "SELECT day, sessions, messages, tokens, latency_avg_ms IS NOT NULL AS timed \
             FROM org_daily_metrics WHERE org_id = '{}' ORDER BY day",
            site.org.id
        ))
    };
    let fire = || {
        let fired = world.get("/cdn-cgi/handler/scheduled?cron=*%2F10+*+*+*+*");
        assert_eq!(fired.status, 200, "{}", fired.body);
    };
    fire();
    let first = rows();
    assert_eq!(
        first,
        [
            json!({"day": days[2], "sessions": 1, "messages": 4, "tokens": t1 + t2, "timed": 1}),
            json!({"day": days[1], "sessions": 1, "messages": 2, "tokens": t3, "timed": 1}),
        ]
    );
    fire();
    assert_eq!(rows(), first, "a second run recomputes, never adds");
    // The portal shows both days from the table, and today (nothing) live.
    let insights = world
        .authed(
            "GET",
            &format!("/portal/insights?from={}&to={}", days[2], days[0]),
            &site.admin,
        )
        .send();
    assert_eq!(insights.status, 200, "{}", insights.body);
    let body = insights.json();
    let messages: Vec<u64> = body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["messages"].as_u64().unwrap())
        .collect();
    assert_eq!(messages, [4, 2, 0]);
    assert_eq!(body["totals"]["messages"], 6);
}
