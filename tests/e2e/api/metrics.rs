//! The daily metrics roll-up through the real worker and local D1: the test writes the chat
//! and voice log rows itself (timestamps on two past days and today), fires the scheduled
//! event, and reads `org_daily_metrics` and the portal. A re-run replaces, never adds; today
//! is read live; another org sees none of it.

use serde_json::Value;

use super::portal::{make_org, member_token, TestOrg};
use super::Case;
use crate::harness::identity::unique;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(metrics:
        the_roll_up_recomputes_the_last_days_idempotently_and_the_portal_shows_them_with_today_live,
    )
}

/// `YYYY-MM-DD` of `days_ago` UTC days before now, by the local D1's clock (the worker's).
fn day(world: &World, days_ago: u32) -> String {
    world.d1_query(&format!(
        "SELECT strftime('%Y-%m-%d', 'now', '-{days_ago} days') AS d"
    ))[0]["d"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn fire_schedule(world: &World) {
    let fired = world.get("/cdn-cgi/handler/scheduled?cron=*%2F10+*+*+*+*");
    assert_eq!(fired.status, 200, "{}", fired.body);
}

/// An org's stored rows as `(site, day, sessions, messages, avg, p95, tokens, voice_chars)`,
/// the site named by its suffix (`s1`, `s2`).
type Metric = (String, String, i64, i64, Option<i64>, Option<i64>, i64, i64);

fn stored(world: &World, org: &TestOrg) -> Vec<Metric> {
    world
        .d1_query(&format!(
            "SELECT site_id, day, sessions, messages, latency_avg_ms, latency_p95_ms, tokens, \
                    voice_chars FROM org_daily_metrics WHERE org_id = '{}' \
             ORDER BY site_id, day",
            org.id
        ))
        .into_iter()
        .map(|r| {
            let site = r["site_id"].as_str().unwrap();
            (
                site[site.len() - 2..].to_owned(),
                r["day"].as_str().unwrap().to_owned(),
                r["sessions"].as_i64().unwrap(),
                r["messages"].as_i64().unwrap(),
                r["latency_avg_ms"].as_i64(),
                r["latency_p95_ms"].as_i64(),
                r["tokens"].as_i64().unwrap(),
                r["voice_chars"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn m(site: &str, day: &str, n: [i64; 2], lat: [Option<i64>; 2], t: [i64; 2]) -> Metric {
    (
        site.to_owned(),
        day.to_owned(),
        n[0],
        n[1],
        lat[0],
        lat[1],
        t[0],
        t[1],
    )
}

/// The org's two sites (`<org>s1`, `<org>s2`), made as the portal's tests make them.
fn sites(world: &World, org: &TestOrg) -> (String, String) {
    let (s1, s2) = (format!("{}s1", org.id), format!("{}s2", org.id));
    world.d1_query(&format!(
        "INSERT INTO sites (id, org_id, name, type, site_key, env, created_at, updated_at) \
         VALUES ('{s1}', '{o}', 'Chat', 'chatbot', 'sk_{slug}_live_{s1}', 'live', 'now', 'now'), \
                ('{s2}', '{o}', 'Voice', 'voice', 'sk_{slug}_live_{s2}', 'live', 'now', 'now')",
        o = org.id,
        slug = org.slug,
    ));
    (s1, s2)
}

/// Log rows, as the chat and voice endpoints write them.
struct Log<'a> {
    world: &'a World,
    org: &'a str,
}

impl Log<'_> {
    fn session(&self, site: &str, started_at: &str) -> String {
        let id = unique("cs_");
        self.world.d1_query(&format!(
            "INSERT INTO chat_sessions (id, org_id, site_id, started_at, last_message_at) \
             VALUES ('{id}', '{}', '{site}', '{started_at}', '{started_at}')",
            self.org
        ));
        id
    }

    fn user(&self, session: &str, site: &str, at: &str) {
        self.world.d1_query(&format!(
            "INSERT INTO chat_messages (id, session_id, org_id, site_id, role, content, created_at) \
             VALUES ('{}', '{session}', '{}', '{site}', 'user', 'hi', '{at}')",
            unique("msg_"),
            self.org
        ));
    }

    fn answer(&self, session: &str, site: &str, at: &str, tokens: [i64; 2], latency: Option<i64>) {
        let latency = latency.map_or("NULL".to_owned(), |l| l.to_string());
        self.world.d1_query(&format!(
            "INSERT INTO chat_messages (id, session_id, org_id, site_id, role, content, \
               input_tokens, output_tokens, latency_ms, created_at) \
             VALUES ('{}', '{session}', '{}', '{site}', 'assistant', 'hello', {}, {}, {latency}, '{at}')",
            unique("msg_"),
            self.org,
            tokens[0],
            tokens[1]
        ));
    }

    fn voice(&self, site: &str, at: &str, chars: i64, status: &str) {
        self.world.d1_query(&format!(
            "INSERT INTO voice_requests (id, org_id, site_id, chars, status, latency_ms, created_at) \
             VALUES ('{}', '{}', '{site}', {chars}, '{status}', 80, '{at}')",
            unique("vr_"),
            self.org
        ));
    }
}

fn insights(world: &World, token: &str, from: &str, to: &str) -> Value {
    let reply = world
        .authed(
            "GET",
            &format!("/portal/insights?from={from}&to={to}"),
            token,
        )
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// A day of the series as `(day, sessions, messages, avg, p95, tokens, voice_chars)`.
type Day = (String, u64, u64, Option<u64>, Option<u64>, u64, u64);

fn series(body: &Value) -> Vec<Day> {
    body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["sessions"].as_u64().unwrap(),
                d["messages"].as_u64().unwrap(),
                d["avg_latency_ms"].as_u64(),
                d["p95_latency_ms"].as_u64(),
                d["tokens"].as_u64().unwrap(),
                d["voice_chars"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn the_roll_up_recomputes_the_last_days_idempotently_and_the_portal_shows_them_with_today_live(
    _shared: &World,
) {
    // Its own worker: the roll-up replaces every org's rows of the last 7 days, and the
    // portal's tests write such rows by hand on the shared one.
    let world = &World::start_with(&[("ENVIRONMENT", "local")]).expect("a local worker starts");
    let (a, b) = (make_org(world, "basic"), make_org(world, "basic"));
    let (a1, a2) = sites(world, &a);
    let (b1, _) = sites(world, &b);
    let (d10, d3, d2, d1, d0) = (
        day(world, 10),
        day(world, 3),
        day(world, 2),
        day(world, 1),
        day(world, 0),
    );
    let log = Log { world, org: &a.id };

    // Two days ago, site 1: two sessions; four messages of one, the visitor's first of the
    // other (answered after midnight, so on yesterday); an answer without a latency.
    let s = log.session(&a1, &format!("{d2}T10:00:00.000Z"));
    log.user(&s, &a1, &format!("{d2}T10:00:00.000Z"));
    log.answer(
        &s,
        &a1,
        &format!("{d2}T10:00:01.000Z"),
        [100, 50],
        Some(100),
    );
    log.user(&s, &a1, &format!("{d2}T10:01:00.000Z"));
    log.answer(
        &s,
        &a1,
        &format!("{d2}T10:01:01.000Z"),
        [200, 100],
        Some(300),
    );
    log.answer(&s, &a1, &format!("{d2}T10:02:00.000Z"), [1, 1], None);
    let late = log.session(&a1, &format!("{d2}T23:59:59.000Z"));
    log.user(&late, &a1, &format!("{d2}T23:59:59.500Z"));
    log.voice(&a1, &format!("{d2}T12:00:00.000Z"), 120, "ok");
    log.voice(&a1, &format!("{d2}T12:00:01.000Z"), 999, "failed");
    // Two days ago, site 2: voice only.
    log.voice(&a2, &format!("{d2}T09:00:00.000Z"), 40, "ok");
    log.voice(&a2, &format!("{d2}T09:30:00.000Z"), 60, "ok");
    // Yesterday, site 1: the late answer (3 000 ms), then a session with a question and 20
    // answers of 10, 20, ..., 200 ms: 21 latencies, nearest rank ceil(0.95 × 21) = 20 → 200.
    log.answer(
        &late,
        &a1,
        &format!("{d1}T00:00:02.000Z"),
        [10, 5],
        Some(3000),
    );
    let s = log.session(&a1, &format!("{d1}T08:00:00.000Z"));
    log.user(&s, &a1, &format!("{d1}T08:00:00.000Z"));
    for i in 1..=20 {
        log.answer(
            &s,
            &a1,
            &format!("{d1}T08:00:{i:02}.000Z"),
            [1, 2],
            Some(10 * i),
        );
    }
    // Yesterday, site 2: a failed voice request only (no row).
    log.voice(&a2, &format!("{d1}T09:00:00.000Z"), 77, "failed");
    // Today: a session on site 1, voice on site 2.
    let today = log.session(&a1, &format!("{d0}T00:00:00.000Z"));
    log.user(&today, &a1, &format!("{d0}T00:00:00.000Z"));
    log.answer(
        &today,
        &a1,
        &format!("{d0}T00:00:01.000Z"),
        [7, 3],
        Some(50),
    );
    log.voice(&a2, &format!("{d0}T00:00:02.000Z"), 9, "ok");
    // Ten days ago (outside the window): a log row, and a row rolled up back then (kept as
    // it is); three days ago, a stored row whose activity is gone (dropped by the roll-up).
    log.voice(&a1, &format!("{d10}T09:00:00.000Z"), 5, "ok");
    world.d1_query(&format!(
        "INSERT INTO org_daily_metrics (org_id, site_id, day, sessions, messages, latency_avg_ms, \
           latency_p95_ms, tokens, voice_chars, computed_at) \
         VALUES ('{o}', '{a1}', '{d10}', 1, 2, 3, 4, 5, 6, 'then'), \
                ('{o}', '{a2}', '{d3}', 9, 9, 9, 9, 9, 9, 'then')",
        o = a.id
    ));
    // Another org's activity yesterday.
    let other = Log { world, org: &b.id };
    let s = other.session(&b1, &format!("{d1}T10:00:00.000Z"));
    other.answer(
        &s,
        &b1,
        &format!("{d1}T10:00:01.000Z"),
        [7000, 7000],
        Some(7777),
    );
    other.voice(&b1, &format!("{d0}T10:00:00.000Z"), 7000, "ok");

    // Before any roll-up, the portal shows today live (and nothing rolled for past days).
    let member = member_token(world, &a.clerk_id, "member", false);
    let before = insights(world, &member, &d2, &d0);
    let today_live = (d0.clone(), 1, 2, Some(50), Some(50), 10, 9);
    assert_eq!(
        series(&before),
        [
            (d2.clone(), 0, 0, None, None, 0, 0),
            (d1.clone(), 0, 0, None, None, 0, 0),
            today_live.clone(),
        ]
    );

    fire_schedule(world);
    let expected = vec![
        m("s1", &d10, [1, 2], [Some(3), Some(4)], [5, 6]),
        // 6 messages; latency over the two timed answers: avg 200, p95 (rank 2 of 2) 300;
        // tokens 150 + 300 + 2; voice only the ok request.
        m("s1", &d2, [2, 6], [Some(200), Some(300)], [452, 120]),
        // 22 messages; avg (2 100 + 3 000) / 21 = 242.86 → 243; tokens 15 + 20 × 3.
        m("s1", &d1, [1, 22], [Some(243), Some(200)], [75, 0]),
        m("s1", &d0, [1, 2], [Some(50), Some(50)], [10, 0]),
        m("s2", &d2, [0, 0], [None, None], [0, 100]),
        m("s2", &d0, [0, 0], [None, None], [0, 9]),
    ];
    assert_eq!(stored(world, &a), expected);
    let computed_at = world.d1_query(&format!(
        "SELECT DISTINCT computed_at FROM org_daily_metrics WHERE org_id = '{}' AND day >= '{d2}'",
        a.id
    ));
    assert_eq!(computed_at.len(), 1, "{computed_at:?}");
    assert!(computed_at[0]["computed_at"]
        .as_str()
        .unwrap()
        .starts_with(&d0));
    let b_rows = world.d1_query(&format!(
        "SELECT day, sessions, messages, tokens, voice_chars FROM org_daily_metrics \
         WHERE org_id = '{}' ORDER BY day",
        b.id
    ));
    assert_eq!(b_rows.len(), 2, "{b_rows:?}");
    assert_eq!(b_rows[0]["tokens"], 14000);
    assert_eq!(b_rows[1]["voice_chars"], 7000);

    // Run again: the same rows, not doubled.
    fire_schedule(world);
    assert_eq!(stored(world, &a), expected);

    // A stored row changed, and a log row added two days ago: the run recomputes the day.
    world.d1_query(&format!(
        "UPDATE org_daily_metrics SET messages = 999, tokens = 999 \
         WHERE org_id = '{}' AND site_id = '{a1}' AND day = '{d2}'",
        a.id
    ));
    log.voice(&a1, &format!("{d2}T13:00:00.000Z"), 30, "ok");
    let s = log.session(&a2, &format!("{d2}T14:00:00.000Z"));
    log.user(&s, &a2, &format!("{d2}T14:00:00.000Z"));
    log.answer(&s, &a2, &format!("{d2}T14:00:01.000Z"), [4, 4], Some(400));
    fire_schedule(world);
    let mut recomputed = expected.clone();
    recomputed[1] = m("s1", &d2, [2, 6], [Some(200), Some(300)], [452, 150]);
    recomputed[4] = m("s2", &d2, [1, 2], [Some(400), Some(400)], [8, 100]);
    assert_eq!(stored(world, &a), recomputed);

    // Today moves on without a roll-up: the portal reads it live.
    log.user(&today, &a1, &format!("{d0}T00:01:00.000Z"));
    log.answer(
        &today,
        &a1,
        &format!("{d0}T00:01:01.000Z"),
        [5, 5],
        Some(150),
    );
    let body = insights(world, &member, &d2, &d0);
    assert_eq!(
        series(&body),
        [
            // Sites combined: 8 messages; latency weighted by messages (6 × 200 + 2 × 400) / 8
            // = 250; p95 the larger of the sites'.
            (d2.clone(), 3, 8, Some(250), Some(400), 460, 250),
            (d1.clone(), 1, 22, Some(243), Some(200), 75, 0),
            // 4 messages; answers of 50 and 150: avg 100, p95 (rank 2 of 2) 150.
            (d0.clone(), 1, 4, Some(100), Some(150), 20, 9),
        ]
    );
    assert_eq!(body["totals"]["sessions"], 5);
    assert_eq!(body["totals"]["messages"], 34);
    assert_eq!(body["totals"]["p95_latency_ms"], 400);
    // The stored today row is what the last run saw; the read did not write.
    assert_eq!(stored(world, &a)[3], recomputed[3]);

    let overview = world.authed("GET", "/portal/overview", &member).send();
    assert_eq!(overview.status, 200, "{}", overview.body);
    let totals = &overview.json()["last_30_days"];
    // Ten days ago counts too: 1 session, 2 messages (the hand-stored row).
    assert_eq!(totals["sessions"], 6);
    assert_eq!(totals["messages"], 36);
    assert_eq!(totals["p95_latency_ms"], 400);
    // (8 × 250 + 22 × 243 + 4 × 100 + 2 × 3) / 36 = 215.3 → 215.
    assert_eq!(totals["avg_latency_ms"], 215);

    // Another org's member sees only theirs.
    let b_member = member_token(world, &b.clerk_id, "member", false);
    let body = insights(world, &b_member, &d2, &d0);
    assert_eq!(
        series(&body),
        [
            (d2.clone(), 0, 0, None, None, 0, 0),
            (d1.clone(), 1, 1, Some(7777), Some(7777), 14000, 0),
            (d0.clone(), 0, 0, None, None, 0, 7000),
        ]
    );
    let overview = world.authed("GET", "/portal/overview", &b_member).send();
    assert_eq!(
        overview.json()["last_30_days"]["messages"],
        1,
        "{}",
        overview.body
    );
    // And A's read showed nothing of B's.
    assert!(!before.to_string().contains("7777"));
}
