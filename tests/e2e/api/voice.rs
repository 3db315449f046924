//! Site voice through the real worker and the fake ElevenLabs: the audio comes back as
//! `audio/mpeg`, the text's characters are charged exactly to the org's monthly voice
//! characters (never past them under concurrency), a failed provider gives them back, and bad
//! input changes nothing. Also the seed's ways in: legacy mode (no key: the site
//! `CHAT_LEGACY_SITE` names, off by default) and `POST /` of a host `HOST_ROUTES` maps.

use serde_json::{json, Value};

use super::api_keys::all_at_once;
use super::chat::{in_one_rate_window, new_address, site_of, Site};
use super::portal::make_org;
use super::usage::idempotent;
use super::Case;
use crate::fakes::audio_for;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(voice:
        speech_comes_back_as_audio_and_its_characters_are_charged_exactly,
        concurrent_speech_never_passes_the_orgs_characters,
        a_failed_provider_gives_the_characters_back_and_bad_input_changes_nothing,
        legacy_mode_and_host_routes_serve_the_seeds_clients,
        a_site_speaks_only_with_its_orgs_voices_and_models,
        an_address_and_a_visitor_are_held_to_their_rates,
    )
}

/// The basic plan's voice characters a month in the test catalog.
const BASIC_VOICE_CHARS: u64 = 100_000;

fn site(world: &World, kind: &str) -> Site {
    site_of(world, kind)
}

fn speak(world: &World, site: &Site, body: &Value) -> Reply {
    world
        .call("POST", "/voice")
        .header("X-Site-Key", &site.key)
        .header("Origin", &site.origin)
        .json(body)
}

fn speak_from(world: &World, site: &Site, address: &str, body: &Value) -> Reply {
    world
        .call("POST", "/voice")
        .header("X-Site-Key", &site.key)
        .header("Origin", &site.origin)
        .header("CF-Connecting-IP", address)
        .json(body)
}

/// Sets the org's voices through the portal, as its admin would.
fn offer_voices(world: &World, site: &Site, voices: Value) {
    let reply = world
        .authed("PATCH", "/portal/config", &site.admin)
        .json(&json!({ "voices": voices }));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn voice_counter(world: &World, org_id: &str) -> (u64, u64) {
    let row = world.d1_query(&format!(
        "SELECT used, reserved FROM meter_counters WHERE subject_kind = 'org' \
         AND subject_id = '{org_id}' AND meter = 'voice_chars'"
    ));
    let row = row
        .first()
        .cloned()
        .unwrap_or(json!({"used": 0, "reserved": 0}));
    (
        row["used"].as_u64().unwrap(),
        row["reserved"].as_u64().unwrap(),
    )
}

fn speech_comes_back_as_audio_and_its_characters_are_charged_exactly(world: &World) {
    let site = site(world, "voice");
    let text = format!("{} héllo, wörld", unique("speak-"));
    let chars = text.chars().count() as u64;
    let reply = speak(world, &site, &json!({ "text": text }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("audio/mpeg"));
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(site.origin.as_str())
    );
    assert_eq!(reply.body.as_bytes(), audio_for(&text).as_slice());
    assert_eq!(voice_counter(world, &site.org.id), (chars, 0));
    let sent = world.fakes.elevenlabs.spoken_with(&text);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "fakevoice", "the operator's default voice");
    assert_eq!(sent[0].1["model_id"], "eleven_multilingual_v2");
    // Another voice and model by request, among those the org offers.
    offer_voices(
        world,
        &site,
        json!([
            { "voice_id": "voice_1", "model_id": "eleven_multilingual_v2", "name": "Ana" },
            { "voice_id": "voice_2", "model_id": "eleven_flash_v2_5" },
        ]),
    );
    let other = format!("{} again", unique("speak-"));
    let reply = speak(
        world,
        &site,
        &json!({ "text": other, "voiceId": "voice_2", "model_id": "eleven_flash_v2_5" }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sent = world.fakes.elevenlabs.spoken_with(&other);
    assert_eq!(sent[0].0, "voice_2");
    assert_eq!(sent[0].1["model_id"], "eleven_flash_v2_5");
    let total = chars + other.chars().count() as u64;
    assert_eq!(voice_counter(world, &site.org.id), (total, 0));
    let logged = world.d1_query(&format!(
        "SELECT chars, status, site_id FROM voice_requests WHERE org_id = '{}' ORDER BY created_at, rowid",
        site.org.id
    ));
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[0]["chars"], chars);
    assert_eq!(logged[0]["status"], "ok");
    assert_eq!(logged[0]["site_id"], site.id.as_str());
    // The portal shows today's characters live.
    let overview = world.authed("GET", "/portal/overview", &site.admin).send();
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(overview.json()["usage"]["voice_chars"]["used"], total);
}

fn concurrent_speech_never_passes_the_orgs_characters(world: &World) {
    let site = site(world, "voice");
    let warm = speak(world, &site, &json!({ "text": "warm" }));
    assert_eq!(warm.status, 200, "{}", warm.body);
    // 100 characters left: twenty requests of 10, at once, fit ten.
    world.d1_query(&format!(
        "UPDATE meter_counters SET used = {} WHERE subject_kind = 'org' \
         AND subject_id = '{}' AND meter = 'voice_chars'",
        BASIC_VOICE_CHARS - 100,
        site.org.id
    ));
    // Ten characters each: a tag of this case's own (six), the request's number, two more.
    let unique = unique("v");
    let marker = &unique[unique.len() - 6..];
    let texts: Vec<String> = (0..20).map(|i| format!("{marker}{i:02}..")).collect();
    assert!(texts.iter().all(|t| t.chars().count() == 10));
    // Each from an address of its own: this case is about the characters, not the rate.
    let replies = all_at_once(20, |i| {
        speak_from(world, &site, &new_address(), &json!({ "text": texts[i] }))
    });
    let spoken = replies.iter().filter(|r| r.status == 200).count();
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(402, "quota_exceeded");
    }
    assert_eq!(spoken, 10, "exactly the ten that fit");
    assert_eq!(voice_counter(world, &site.org.id), (BASIC_VOICE_CHARS, 0));
    assert_eq!(
        world.fakes.elevenlabs.spoken_with(marker).len(),
        10,
        "refused ones never reach the provider"
    );
}

fn a_failed_provider_gives_the_characters_back_and_bad_input_changes_nothing(world: &World) {
    let site = site(world, "voice");
    let reply = speak(world, &site, &json!({ "text": "this one [fail]s" }));
    reply.assert_error(502, "upstream_error");
    assert_eq!(voice_counter(world, &site.org.id), (0, 0), "given back");
    let held = world.d1_query(&format!(
        "SELECT status FROM usage_reservations WHERE subject_id = '{}'",
        site.org.id
    ));
    assert_eq!(
        held,
        [json!({"status": "settled"})],
        "released, nothing recorded"
    );
    let failed = world.d1_query(&format!(
        "SELECT status FROM voice_requests WHERE org_id = '{}'",
        site.org.id
    ));
    assert_eq!(failed, [json!({"status": "failed"})]);

    let rows = Rows::new()
        .where_eq("meter_counters", "subject_id", &site.org.id)
        .where_eq("usage_reservations", "subject_id", &site.org.id)
        .where_eq("usage_records", "subject_id", &site.org.id)
        .where_eq("voice_requests", "org_id", &site.org.id);
    let before = world.snapshot(&rows);
    let marker = unique("bad-");
    for (body, field) in [
        (json!({ "text": "" }), "text"),
        (json!({ "text": " \n " }), "text"),
        (json!({ "text": "é".repeat(5001) }), "text"),
        (
            json!({ "text": format!("{marker} hi"), "voice_id": "../../v1/user" }),
            "voice_id",
        ),
        (
            json!({ "text": format!("{marker} hi"), "model_id": "a b" }),
            "model_id",
        ),
    ] {
        let reply = speak(world, &site, &body);
        let error = reply.assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], field, "{}", reply.body);
    }
    let foreign = world
        .call("POST", "/voice")
        .header("X-Site-Key", &site.key)
        .header("Origin", "https://elsewhere.example")
        .json(&json!({ "text": format!("{marker} hi") }));
    foreign.assert_error(403, "forbidden");
    let keyless = world
        .call("POST", "/voice")
        .json(&json!({ "text": format!("{marker} hi") }));
    keyless.assert_error(401, "unauthorized");
    assert!(world.fakes.elevenlabs.spoken_with(&marker).is_empty());
    before.assert_unchanged(world);
}

/// A worker of its own with legacy mode on and a host map: `POST /` of the chat host is
/// `/chat` for the legacy site, of the voice host `/voice`.
fn legacy_mode_and_host_routes_serve_the_seeds_clients(_world: &World) {
    let legacy_id = format!("site_{}", unique("legacy").to_ascii_lowercase());
    let world = World::start_with(&[
        ("CHAT_LEGACY_SITE", legacy_id.as_str()),
        ("HOST_ROUTES", "chat.e2e.test=/chat,voice.e2e.test=/voice"),
    ])
    .expect("a worker in legacy mode starts");
    let org = make_org(&world, "basic");
    let slug = &org.slug;
    let origin = format!("https://{slug}.example");
    world.d1_query_all(&format!(
        "INSERT INTO sites (id, org_id, name, type, status, site_key, env, allow_server_calls, \
             created_at, updated_at) \
         VALUES ('{legacy_id}', '{}', 'Legacy', 'chatbot', 'active', 'sk_{slug}_live_{}', 'live', 0, \
             '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z'); \
         INSERT INTO site_origins (site_id, origin) VALUES ('{legacy_id}', '{origin}')",
        org.id,
        "L".repeat(32)
    ));
    let marker = unique("legacy-");
    // No key: the legacy site answers, from its origin or a server.
    let reply = world
        .call("POST", "/chat")
        .header("Origin", &origin)
        .json(&json!({ "message": format!("{marker} hi [reply:2]") }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.json()["session_id"].as_str().unwrap().to_owned();
    let logged = world.d1_query(&format!(
        "SELECT site_id, org_id FROM chat_sessions WHERE id = '{session}'"
    ));
    assert_eq!(logged, [json!({"site_id": legacy_id, "org_id": org.id})]);
    // The seed's clients: POST / of the chat host, of the voice host.
    let routed = world
        .call("POST", "/")
        .header("Host", "chat.e2e.test")
        .json(&json!({ "message": format!("{marker} again [reply:1]"), "session_id": session }));
    assert_eq!(routed.status, 200, "{}", routed.body);
    assert_eq!(routed.json()["session_id"], session.as_str());
    let text = format!("{marker} spoken");
    let spoken = world
        .call("POST", "/")
        .header("Host", "voice.e2e.test")
        .json(&json!({ "text": text }));
    assert_eq!(spoken.status, 200, "{}", spoken.body);
    assert_eq!(spoken.header("content-type"), Some("audio/mpeg"));
    assert_eq!(spoken.body.as_bytes(), audio_for(&text).as_slice());
    // Legacy mode is anonymous but counted by address like a site key: 21 requests from one
    // address, each with a fresh visitor_id, get the address's 20 (twice VOICE_RATE_PER_MINUTE).
    let address = new_address();
    let burst = format!("{marker} burst");
    in_one_rate_window();
    let replies = all_at_once(21, |i| {
        world
            .call("POST", "/voice")
            .header("CF-Connecting-IP", &address)
            .json(&json!({ "text": format!("{burst} {i}"), "visitor_id": format!("v{i}") }))
    });
    let answered = replies.iter().filter(|r| r.status == 200).count();
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(429, "rate_limited");
    }
    assert_eq!(answered, 20, "the address's twenty a minute");
    assert_eq!(world.fakes.elevenlabs.spoken_with(&burst).len(), 20);
    // Legacy mode still holds the legacy site to its origins, its status and its org's.
    let foreign = world
        .call("POST", "/chat")
        .header("Origin", "https://elsewhere.example")
        .json(&json!({ "message": format!("{marker} nope") }));
    foreign.assert_error(403, "forbidden");
    world.d1_query(&format!(
        "UPDATE sites SET status = 'paused' WHERE id = '{legacy_id}'"
    ));
    let paused = world
        .call("POST", "/chat")
        .json(&json!({ "message": format!("{marker} paused") }));
    paused.assert_error(403, "forbidden");
    // Unmapped, POST / is the root's (GET only).
    let plain = world.call("POST", "/").json(&json!({}));
    assert_eq!(plain.status, 405, "{}", plain.body);
    // The model heard only the admitted messages.
    assert_eq!(world.fakes.model.requests_with(&marker).len(), 2);
}

fn a_site_speaks_only_with_its_orgs_voices_and_models(world: &World) {
    let site = site(world, "voice");
    let rows = Rows::new()
        .where_eq("meter_counters", "subject_id", &site.org.id)
        .where_eq("usage_reservations", "subject_id", &site.org.id)
        .where_eq("usage_records", "subject_id", &site.org.id)
        .where_eq("voice_requests", "org_id", &site.org.id);
    let marker = unique("voices-");
    let text = format!("{marker} hi");
    // No voices configured: only the operator's voice and model.
    let refuse = |body: Value, field: &str| {
        let before = world.snapshot(&rows);
        let reply = speak(world, &site, &body);
        let error = reply.assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], field, "{}", reply.body);
        before.assert_unchanged(world);
    };
    refuse(
        json!({ "text": text, "voice_id": "someone_elses" }),
        "voice_id",
    );
    refuse(json!({ "text": text, "model_id": "eleven_v3" }), "model_id");
    let ok = speak(
        world,
        &site,
        &json!({ "text": text, "voice_id": "fakevoice", "model_id": "eleven_multilingual_v2" }),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The org's own voices: the first is the default; the operator's is no longer offered.
    offer_voices(
        world,
        &site,
        json!([
            { "voice_id": "org_voice_a", "model_id": "eleven_turbo_v2_5", "name": "A" },
            { "voice_id": "org_voice_b", "model_id": "eleven_flash_v2_5", "name": "B" },
        ]),
    );
    let plain = format!("{marker} default");
    let ok = speak(world, &site, &json!({ "text": plain }));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let sent = world.fakes.elevenlabs.spoken_with(&plain);
    assert_eq!(sent[0].0, "org_voice_a");
    assert_eq!(sent[0].1["model_id"], "eleven_turbo_v2_5");
    let chosen = format!("{marker} chosen");
    let ok = speak(
        world,
        &site,
        &json!({ "text": chosen, "voiceId": "org_voice_b" }),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let sent = world.fakes.elevenlabs.spoken_with(&chosen);
    assert_eq!(sent[0].0, "org_voice_b");
    assert_eq!(
        sent[0].1["model_id"], "eleven_flash_v2_5",
        "the voice's own model"
    );
    let spoken = world.fakes.elevenlabs.spoken_with(&marker).len();
    let foreign = format!("{marker} foreign");
    refuse(
        json!({ "text": foreign, "voice_id": "fakevoice" }),
        "voice_id",
    );
    refuse(
        json!({ "text": foreign, "model_id": "eleven_multilingual_v2" }),
        "model_id",
    );
    refuse(
        json!({ "text": foreign, "voice_id": "org_voice_a", "model_id": "eleven_v3" }),
        "model_id",
    );
    assert_eq!(
        world.fakes.elevenlabs.spoken_with(&marker).len(),
        spoken,
        "refused ones never reach the provider"
    );
    assert!(world.fakes.elevenlabs.spoken_with(&foreign).is_empty());
}

fn an_address_and_a_visitor_are_held_to_their_rates(world: &World) {
    let site = site(world, "voice");
    let rows = Rows::new()
        .where_eq("meter_counters", "subject_id", &site.org.id)
        .where_eq("usage_reservations", "subject_id", &site.org.id)
        .where_eq("usage_records", "subject_id", &site.org.id)
        .where_eq("voice_requests", "org_id", &site.org.id);
    let unique = unique("r");
    let marker = &unique[unique.len() - 8..];
    let address = new_address();
    in_one_rate_window();
    // A fresh visitor_id per request, all from one address: twenty a minute (twice the
    // default VOICE_RATE_PER_MINUTE of 10).
    let texts: Vec<String> = (0..60).map(|i| format!("{marker}{i:02}")).collect();
    // At once, so the burst falls in one window however loaded the worker is.
    // One the dev proxy dropped while it restarted the runtime is sent again (see chat).
    let replies = all_at_once(60, |i| {
        idempotent(|| {
            speak_from(
                world,
                &site,
                &address,
                &json!({ "text": texts[i], "visitor_id": format!("v{i}") }),
            )
        })
    });
    let answered = replies.iter().filter(|r| r.status == 200).count();
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(429, "rate_limited");
        assert!(reply.header("retry-after").is_some(), "{}", reply.body);
    }
    assert_eq!(answered, 20, "the address's twenty a minute");
    assert_eq!(
        world.fakes.elevenlabs.spoken_with(marker).len(),
        answered,
        "refused ones never reach the provider"
    );
    assert_eq!(
        voice_counter(world, &site.org.id),
        (answered as u64 * 10, 0),
        "only the answered characters are charged"
    );
    // Held, whatever label it sends next; nothing changes.
    let before = world.snapshot(&rows);
    speak_from(
        world,
        &site,
        &address,
        &json!({ "text": format!("{marker} again"), "visitor_id": "v-new" }),
    )
    .assert_error(429, "rate_limited");
    before.assert_unchanged(world);
    // Another address is not held by the first one's count; one visitor there is held to ten.
    let other = new_address();
    in_one_rate_window();
    let visitor = all_at_once(12, |i| {
        idempotent(|| {
            speak_from(
                world,
                &site,
                &other,
                &json!({ "text": format!("{marker} one {i}"), "visitor_id": "one" }),
            )
        })
    });
    let spoken = visitor.iter().filter(|r| r.status == 200).count();
    assert_eq!(spoken, 10, "one visitor's ten a minute");
    for reply in visitor.iter().filter(|r| r.status != 200) {
        reply.assert_error(429, "rate_limited");
    }
    assert_eq!(
        world
            .fakes
            .elevenlabs
            .spoken_with(&format!("{marker} one"))
            .len(),
        10
    );
}
