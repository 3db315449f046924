//! The portal through the real worker and local D1, with the fake Clerk issuing org tokens
//! and serving memberships: which org each request acts on and who may (members, org
//! admins, staff with `?orgId=`, a member naming another org, a user without an org, API
//! keys, anonymous callers), the configuration's validation and audit, the staff's client
//! list, and the overview and daily series read from the org's meters and metrics.

use serde_json::{json, Value};

use super::Case;
use crate::fakes::CHAT_OTHER_MODEL;
use crate::harness::identity::{clerk_claims, hmac_claims, hs256, unique, STAFF_ORG_ID};
use crate::harness::identity::{ADMIN_CLERK_ID, JWT_SECRET};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(portal:
        every_portal_route_answers_each_kind_of_caller_as_its_rule_says,
        a_config_change_is_checked_whole_and_audited_and_staff_may_make_it_for_any_org,
        staff_make_orgs_with_checked_fields_and_list_them_all,
        the_overview_and_insights_read_the_orgs_meters_and_daily_metrics,
        the_team_is_read_from_clerk_and_reused_for_a_minute,
        engines_are_made_changed_and_rekeyed_by_admins_and_listed_for_members,
        an_orgs_workflows_are_managed_by_its_admins_and_never_reached_from_another_org,
    )
}

/// An org made by staff: (Tollgate id, Clerk organisation id, name).
pub(super) struct TestOrg {
    pub id: String,
    pub clerk_id: String,
    pub name: String,
    pub slug: String,
}

/// A staff member's token: a Clerk user who belongs to `STAFF_ORG_ID`.
pub(super) fn staff_token(world: &World) -> String {
    let mut claims = clerk_claims(&unique("user_staff_"));
    claims["o"] = json!({ "id": STAFF_ORG_ID, "rol": "member" });
    world.fakes.clerk.sign(&claims)
}

/// A token of a new Clerk user who is `role` (`admin`, `member`) of `clerk_org`, in the v2
/// claim form (`o`); `v1` uses `org_id`/`org_role` instead.
pub(super) fn member_token(world: &World, clerk_org: &str, role: &str, v1: bool) -> String {
    let mut claims = clerk_claims(&unique("user_member_"));
    if v1 {
        claims["org_id"] = json!(clerk_org);
        claims["org_role"] = json!(format!("org:{role}"));
        claims.as_object_mut().unwrap().remove("v");
    } else {
        claims["o"] = json!({ "id": clerk_org, "rol": role });
    }
    world.fakes.clerk.sign(&claims)
}

/// Makes an org through `POST /portal/clients` as staff.
pub(super) fn make_org(world: &World, plan: &str) -> TestOrg {
    let slug = unique("o").to_ascii_lowercase();
    let slug = slug[..slug.len().min(32)].to_owned();
    let clerk_id = unique("org_clerk");
    let name = unique("Client ");
    let reply = world
        .authed("POST", "/portal/clients", &staff_token(world))
        .json(&json!({ "name": name, "slug": slug, "plan": plan, "clerk_org_id": clerk_id }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["clerk_org_id"], clerk_id.as_str());
    TestOrg {
        id: body["id"].as_str().unwrap().to_owned(),
        clerk_id,
        name,
        slug,
    }
}

fn with_org(path: &str, org: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}orgId={org}")
}

/// Sends `method path` with the credential (none: anonymous) and, for a PATCH, a valid
/// configuration change; for a POST, a valid new org.
fn send(world: &World, method: &str, path: &str, credential: Option<&str>) -> Reply {
    let call = match credential {
        Some(credential) => world.authed(method, path, credential),
        None => world.call(method, path),
    };
    match method {
        "PATCH" => call.json(&json!({ "greeting": unique("Hello ") })),
        "POST" if path.starts_with("/portal/workflows") => call.json(
            &json!({ "trigger": "usage.threshold", "url": "https://hooks.example.com/tollgate" }),
        ),
        "POST" if path.starts_with("/portal/engines") => {
            call.json(&json!({ "name": "Widget", "type": "chatbot" }))
        }
        "POST" => {
            let slug = unique("m").to_ascii_lowercase();
            call.json(&json!({ "name": "Matrix", "slug": &slug[..slug.len().min(32)] }))
        }
        _ => call.send(),
    }
}

const MEMBER_ROUTES: [(&str, &str); 6] = [
    ("GET", "/portal/overview"),
    ("GET", "/portal/engines"),
    ("GET", "/portal/workflows"),
    ("GET", "/portal/insights"),
    ("GET", "/portal/team"),
    ("GET", "/portal/config"),
];
const ADMIN_ROUTES: [(&str, &str); 3] = [
    ("PATCH", "/portal/config"),
    ("POST", "/portal/engines"),
    ("POST", "/portal/workflows"),
];
const STAFF_ROUTES: [(&str, &str); 2] = [("GET", "/portal/clients"), ("POST", "/portal/clients")];

fn assert_status(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    if status >= 400 {
        let code = match status {
            400 => "validation_failed",
            401 => "unauthorized",
            _ => "forbidden",
        };
        reply.assert_error(status, code);
    }
}

fn every_portal_route_answers_each_kind_of_caller_as_its_rule_says(world: &World) {
    let a = make_org(world, "basic");
    let b = make_org(world, "premium");
    world
        .fakes
        .clerk
        .add_member(&a.clerk_id, "user_team_a", "org:admin", "Ada");
    world
        .fakes
        .clerk
        .add_member(&b.clerk_id, "user_team_b", "org:admin", "Bob");
    let member = member_token(world, &a.clerk_id, "member", false);
    let admin = member_token(world, &a.clerk_id, "admin", true);
    let staff = staff_token(world);
    let listed_admin = world.clerk_token(ADMIN_CLERK_ID);
    let no_org = world.clerk_token(&unique("user_lone_"));
    // An HMAC token may carry org claims, but they are not Clerk's: no org.
    let mut hmac = hmac_claims(&unique("hmac-"));
    hmac["org_id"] = json!(a.clerk_id);
    hmac["org_role"] = json!("org:admin");
    let hmac = hs256(&hmac, JWT_SECRET.as_bytes());

    // Nothing of B may appear in any answer to A's people.
    let nothing_of_b = |reply: &Reply, what: &str| {
        for secret in [&b.id, &b.clerk_id, &b.name, &b.slug] {
            assert!(
                !reply.body.contains(secret.as_str()),
                "{what} shows B: {}",
                reply.body
            );
        }
    };
    let all_routes = MEMBER_ROUTES
        .iter()
        .chain(&ADMIN_ROUTES)
        .chain(&STAFF_ROUTES);
    for &(method, path) in all_routes {
        let is_member_route = MEMBER_ROUTES.contains(&(method, path));
        let is_staff_route = STAFF_ROUTES.contains(&(method, path));
        let ok = if method == "POST" { 201 } else { 200 };
        let what = |who: &str| format!("{method} {path} as {who}");

        // Anonymous, and a malformed credential.
        assert_status(&send(world, method, path, None), 401, &what("anonymous"));
        assert_status(
            &send(world, method, path, Some("nope")),
            401,
            &what("garbage"),
        );

        // A member of A, on A.
        let reply = send(world, method, path, Some(&member));
        let expected = if is_member_route { ok } else { 403 };
        assert_status(&reply, expected, &what("member"));
        nothing_of_b(&reply, &what("member"));
        if expected == 200
            && !matches!(
                path,
                "/portal/team" | "/portal/engines" | "/portal/workflows"
            )
        {
            let shown = reply.json();
            let org_id = shown["org"]["id"].as_str().or(shown["org_id"].as_str());
            assert_eq!(org_id, Some(a.id.as_str()), "{}", what("member"));
        }
        // ... naming their own org (either id) is the same.
        for own in [&a.id, &a.clerk_id] {
            let reply = send(world, method, &with_org(path, own), Some(&member));
            assert_status(&reply, expected, &what("member naming A"));
        }
        // ... naming B is 403 whatever the route, and shows nothing of B (or A).
        for other in [&b.id, &b.clerk_id] {
            let reply = send(world, method, &with_org(path, other), Some(&member));
            assert_status(&reply, 403, &what("member naming B"));
            nothing_of_b(&reply, &what("member naming B"));
            assert!(!reply.body.contains(a.id.as_str()), "{}", reply.body);
        }

        // An admin of A (v1 claims): every member and admin route on A; B is 403.
        let reply = send(world, method, path, Some(&admin));
        assert_status(
            &reply,
            if is_staff_route { 403 } else { ok },
            &what("admin"),
        );
        nothing_of_b(&reply, &what("admin"));
        let reply = send(world, method, &with_org(path, &b.id), Some(&admin));
        assert_status(&reply, 403, &what("admin naming B"));
        nothing_of_b(&reply, &what("admin naming B"));

        // Staff: any org by ?orgId= (either id), the staff routes without one; without an
        // org of their own and without ?orgId=, an org route asks them to name one.
        for staff_token in [&staff, &listed_admin] {
            if is_staff_route {
                assert_status(
                    &send(world, method, path, Some(staff_token)),
                    ok,
                    &what("staff"),
                );
            } else {
                for named in [&b.id, &b.clerk_id] {
                    let reply = send(world, method, &with_org(path, named), Some(staff_token));
                    assert_status(&reply, ok, &what("staff naming B"));
                    if path == "/portal/engines" && method == "GET" {
                        assert!(
                            !reply.body.contains(&format!("sk_{}_", a.slug)),
                            "{}",
                            reply.body
                        );
                    } else if path == "/portal/workflows" {
                        let owners = if method == "POST" {
                            vec![reply.json()["owner_id"].clone()]
                        } else {
                            let list = reply.json()["data"].as_array().unwrap().clone();
                            list.iter().map(|w| w["owner_id"].clone()).collect()
                        };
                        assert!(owners.iter().all(|o| *o == b.id.as_str()), "{}", reply.body);
                    } else if method == "POST" {
                        let key = reply.json()["site_key"].as_str().unwrap().to_owned();
                        assert!(key.starts_with(&format!("sk_{}_live_", b.slug)), "{key}");
                    } else if path != "/portal/team" {
                        let shown = reply.json();
                        let org_id = shown["org"]["id"].as_str().or(shown["org_id"].as_str());
                        assert_eq!(org_id, Some(b.id.as_str()), "{}", what("staff"));
                    } else {
                        assert!(reply.body.contains("user_team_b"), "{}", reply.body);
                    }
                }
                let unknown = send(
                    world,
                    method,
                    &with_org(path, "org_nosuch"),
                    Some(staff_token),
                );
                unknown.assert_error(404, "not_found");
            }
        }
        // The staff org maps to no client: staff acting on "their own" org find none.
        if !is_staff_route {
            assert_status(
                &send(world, method, path, Some(&staff)),
                403,
                &what("staff, own org"),
            );
            assert_status(
                &send(world, method, path, Some(&listed_admin)),
                400,
                &what("staff without an org"),
            );
        }

        // A user whose token names no org, and an HMAC token with org claims.
        for (who, token) in [("no org", &no_org), ("hmac with org claims", &hmac)] {
            let reply = send(world, method, path, Some(token));
            assert_status(&reply, 403, &what(who));
            let reply = send(world, method, &with_org(path, &a.id), Some(token));
            assert_status(&reply, 403, &what(who));
            nothing_of_b(&reply, &what(who));
        }
    }
    // The member's own API key is refused on every portal route.
    let key = world
        .authed("POST", "/api/user/api-keys", &member)
        .json(&json!({ "name": "portal" }));
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.json()["api_key"]["key"].as_str().unwrap().to_owned();
    let reply = world.authed("GET", "/portal/overview", &key).send();
    reply.assert_error(403, "forbidden");
}

fn a_config_change_is_checked_whole_and_audited_and_staff_may_make_it_for_any_org(world: &World) {
    let a = make_org(world, "basic");
    let b = make_org(world, "basic");
    let member = member_token(world, &a.clerk_id, "member", false);
    let admin = member_token(world, &a.clerk_id, "admin", false);
    let org_rows = Rows::new()
        .where_eq("orgs", "id", &a.id)
        .where_eq("orgs", "id", &b.id)
        .where_eq("audit_log", "target_id", &a.id)
        .where_eq("audit_log", "target_id", &b.id);
    let snapshot = world.snapshot(&org_rows);

    // A member may read but not change.
    let reply = world.authed("GET", "/portal/config", &member).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["config"], json!({}));
    world
        .authed("PATCH", "/portal/config", &member)
        .json(&json!({ "greeting": "Hi" }))
        .assert_error(403, "forbidden");

    // An admin's change with any bad field changes nothing, and names every bad field.
    let bad = world
        .authed("PATCH", "/portal/config", &admin)
        .json(&json!({
            "greeting": "Welcome!",
            "theme_color": "blue",
            "temperature": 2.5,
            "max_reply_tokens": 0,
            "default_model": "not-in-the-list",
            "voices": [{ "voice_id": "../keys", "model_id": "m" }],
            "colour": "#ffffff",
        }));
    let error = bad.assert_error(400, "validation_failed");
    let fields: Vec<&str> = error["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "theme_color",
            "default_model",
            "max_reply_tokens",
            "temperature",
            "voices",
            "colour"
        ]
    );
    // A model the operator does not offer (CHAT_MODELS), alone.
    let error = world
        .authed("PATCH", "/portal/config", &admin)
        .json(&json!({ "default_model": "not-in-the-list" }))
        .assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "default_model");
    assert!(
        error["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains(CHAT_OTHER_MODEL),
        "{error}"
    );
    for body in [
        json!([]),
        json!({}),
        json!({ "greeting": "" }),
        json!({ "system_prompt": 5 }),
        json!({ "voices": [] }),
        json!({ "voices": [{ "voice_id": "v", "model_id": "m" }, { "voice_id": "v", "model_id": "n" }] }),
    ] {
        world
            .authed("PATCH", "/portal/config", &admin)
            .json(&body)
            .assert_error(400, "validation_failed");
    }
    snapshot.assert_unchanged(world);

    // A good change by the admin applies, null clears, and is audited.
    let reply = world
        .authed("PATCH", "/portal/config", &admin)
        .json(&json!({
            "display_name": "CHADIS", "greeting": "Hello!", "theme_color": "#00AAFF",
            "temperature": 0.3, "max_reply_tokens": 300, "default_model": CHAT_OTHER_MODEL,
            "voices": [{ "voice_id": "voice_1", "model_id": "eleven_flash_v2_5", "name": "Ana" }],
        }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["config"]["theme_color"], "#00aaff");
    let reply = world
        .authed("PATCH", "/portal/config", &admin)
        .json(&json!({ "greeting": null }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let config = world.authed("GET", "/portal/config", &member).send().json()["config"].clone();
    assert_eq!(
        config,
        json!({ "display_name": "CHADIS", "theme_color": "#00aaff",
                "default_model": CHAT_OTHER_MODEL, "max_reply_tokens": 300,
                "temperature": 0.3,
                "voices": [{ "voice_id": "voice_1", "model_id": "eleven_flash_v2_5", "name": "Ana" }] })
    );

    // Staff change B's by ?orgId=; A's stays; the audit log names the staff member.
    let staff = staff_token(world);
    let reply = world
        .authed("PATCH", &with_org("/portal/config", &b.id), &staff)
        .json(&json!({ "greeting": "Staff was here" }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["org_id"], b.id.as_str());
    let stored = world.d1_query(&format!(
        "SELECT config FROM orgs WHERE id IN ('{}', '{}') ORDER BY id = '{}'",
        a.id, b.id, b.id
    ));
    let a_config: Value = serde_json::from_str(stored[0]["config"].as_str().unwrap()).unwrap();
    let b_config: Value = serde_json::from_str(stored[1]["config"].as_str().unwrap()).unwrap();
    assert_eq!(a_config.get("greeting"), None);
    assert_eq!(b_config, json!({ "greeting": "Staff was here" }));
    let audit = world.d1_query(&format!(
        "SELECT a.actor_kind, a.action, a.detail, u.external_id FROM audit_log a \
         JOIN users u ON u.id = a.actor_id \
         WHERE a.target_kind = 'org' AND a.target_id = '{}' AND a.action = 'org.config_updated'",
        b.id
    ));
    assert_eq!(audit.len(), 1, "{audit:?}");
    let detail: Value = serde_json::from_str(audit[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["fields"], json!(["greeting"]));
    assert_eq!(detail["as"], "staff");
    assert!(audit[0]["external_id"]
        .as_str()
        .unwrap()
        .starts_with("user_staff_"));
    let a_audit = world.d1_query(&format!(
        "SELECT detail FROM audit_log WHERE target_id = '{}' AND action = 'org.config_updated'",
        a.id
    ));
    assert_eq!(a_audit.len(), 2, "{a_audit:?}");
}

fn staff_make_orgs_with_checked_fields_and_list_them_all(world: &World) {
    let staff = staff_token(world);
    let existing = make_org(world, "basic");
    let slug = unique("s").to_ascii_lowercase();
    let slug = &slug[..slug.len().min(32)];
    // Other cases make orgs meanwhile: the rows this case may touch are the existing org,
    // any org with the new slug, and their audit rows.
    let rows = Rows::new()
        .where_eq("orgs", "id", &existing.id)
        .where_eq("orgs", "slug", slug)
        .where_eq("orgs", "name", "X")
        .where_eq("audit_log", "target_id", &existing.id);
    let snapshot = world.snapshot(&rows);
    for (body, field) in [
        (json!({ "name": "X", "slug": "has_underscore" }), "slug"),
        (json!({ "name": "X", "slug": "A" }), "slug"),
        (json!({ "name": "", "slug": slug }), "name"),
        (json!({ "name": "X", "slug": slug, "plan": "gold" }), "plan"),
        (
            json!({ "name": "X", "slug": slug, "clerk_org_id": "team-1" }),
            "clerk_org_id",
        ),
        (json!({ "name": "X", "slug": slug, "owner": "me" }), "body"),
        (
            json!({ "name": "X", "slug": slug, "status": "gone" }),
            "status",
        ),
    ] {
        let error = world
            .authed("POST", "/portal/clients", &staff)
            .json(&body)
            .assert_error(400, "validation_failed");
        let named = error["fields"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            named == field || field == "body" || named.contains(field),
            "{body}: {error}"
        );
    }
    // A taken slug or Clerk organisation is 409, whatever else is new.
    world
        .authed("POST", "/portal/clients", &staff)
        .json(&json!({ "name": "X", "slug": existing.slug }))
        .assert_error(409, "conflict");
    world
        .authed("POST", "/portal/clients", &staff)
        .json(&json!({ "name": "X", "slug": slug, "clerk_org_id": existing.clerk_id }))
        .assert_error(409, "conflict");
    snapshot.assert_unchanged(world);

    // Concurrent makes of one slug make one org.
    let replies = super::api_keys::all_at_once(6, |_| {
        world
            .authed("POST", "/portal/clients", &staff)
            .json(&json!({ "name": "Race", "slug": slug }))
    });
    let made = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        made,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().all(|r| r.status == 201 || r.status == 409));
    let rows = world.d1_query(&format!(
        "SELECT plan, status FROM orgs WHERE slug = '{slug}'"
    ));
    assert_eq!(rows, [json!({ "plan": "free", "status": "active" })]);
    let audit = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'org.created' AND detail LIKE '%\"{slug}\"%'"
    ));
    assert_eq!(audit[0]["n"], 1);

    // The list shows every org with its sites and last 30 days' messages.
    world.d1_query(&format!(
        "INSERT INTO sites (id, org_id, name, type, site_key, env, created_at, updated_at) \
         VALUES ('site_{0}', '{0}', 'Widget', 'chatbot', 'sk_{1}_test_{0}', 'test', \
                 '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'); \
         INSERT INTO org_daily_metrics (org_id, site_id, day, sessions, messages, computed_at) \
         VALUES ('{0}', 'site_{0}', strftime('%Y-%m-%d', 'now'), 3, 12, 'now'), \
                ('{0}', 'site_{0}', strftime('%Y-%m-%d', 'now', '-40 days'), 9, 99, 'now');",
        existing.id, existing.slug
    ));
    let reply = world.authed("GET", "/portal/clients", &staff).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let clients = reply.json()["clients"].as_array().unwrap().clone();
    let shown = clients
        .iter()
        .find(|c| c["id"] == existing.id.as_str())
        .expect("the org is listed");
    assert_eq!(shown["sites"], 1);
    assert_eq!(shown["messages_30d"], 12);
    assert_eq!(shown["plan"], "basic");
    assert_eq!(shown["status"], "active");
    assert!(clients.iter().any(|c| c["slug"] == slug));
}

fn the_overview_and_insights_read_the_orgs_meters_and_daily_metrics(world: &World) {
    let a = make_org(world, "basic");
    let b = make_org(world, "basic");
    let member = member_token(world, &a.clerk_id, "member", false);
    let period = world.d1_query("SELECT strftime('%Y-%m', 'now') AS p")[0]["p"]
        .as_str()
        .unwrap()
        .to_owned();
    world.d1_query(&format!(
        "INSERT INTO meter_counters (subject_kind, subject_id, meter, period, used, reserved, updated_at) \
         VALUES ('org', '{a}', 'tokens', '{period}', 1234, 100, 'now'), \
                ('org', '{a}', 'voice_chars', '{period}', 55, 0, 'now'), \
                ('org', '{b}', 'tokens', '{period}', 999999, 0, 'now'); \
         INSERT INTO sites (id, org_id, name, type, site_key, env, created_at, updated_at) \
         VALUES ('site_1{a}', '{a}', 'Chat', 'chatbot', 'sk_{slug}_live_1{a}', 'live', 'now', 'now'), \
                ('site_2{a}', '{a}', 'Voice', 'voice', 'sk_{slug}_live_2{a}', 'live', 'now', 'now'), \
                ('site_1{b}', '{b}', 'Chat', 'chatbot', 'sk_{bslug}_live_1{b}', 'live', 'now', 'now'); \
         INSERT INTO org_daily_metrics (org_id, site_id, day, sessions, messages, latency_avg_ms, \
                                        latency_p95_ms, tokens, voice_chars, computed_at) \
         VALUES ('{a}', 'site_1{a}', strftime('%Y-%m-%d', 'now', '-8 days'), 2, 10, 100, 300, 500, 0, 'now'), \
                ('{a}', 'site_2{a}', strftime('%Y-%m-%d', 'now', '-8 days'), 1, 30, 200, 250, 0, 40, 'now'), \
                ('{a}', 'site_1{a}', strftime('%Y-%m-%d', 'now', '-10 days'), 4, 20, 400, 900, 700, 0, 'now'), \
                ('{a}', 'site_1{a}', strftime('%Y-%m-%d', 'now', '-45 days'), 50, 500, 100, 100, 1, 0, 'now'), \
                ('{b}', 'site_1{b}', strftime('%Y-%m-%d', 'now', '-8 days'), 70, 700, 10, 10, 7, 0, 'now');",
        a = a.id,
        b = b.id,
        slug = a.slug,
        bslug = b.slug,
    ));
    let reply = world.authed("GET", "/portal/overview", &member).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["org"]["id"], a.id.as_str());
    assert_eq!(body["role"], "member");
    assert_eq!(body["plan"]["id"], "basic");
    assert_eq!(body["usage"]["period"], period.as_str());
    assert_eq!(body["usage"]["tokens"]["used"], 1234);
    assert_eq!(body["usage"]["tokens"]["reserved"], 100);
    let limit = body["plan"]["tokens_per_month"].as_u64().unwrap();
    assert_eq!(body["usage"]["tokens"]["remaining"], limit - 1334);
    assert_eq!(body["usage"]["voice_chars"]["used"], 55);
    let totals = &body["last_30_days"];
    assert_eq!(totals["sessions"], 7);
    assert_eq!(totals["messages"], 60);
    // (10*100 + 30*200 + 20*400) / 60 = 250.
    assert_eq!(totals["avg_latency_ms"], 250);
    assert_eq!(totals["p95_latency_ms"], 900);

    // The series: every day, zeros where nothing happened, one site or all. (The rows are
    // older than the scheduled roll-up's window, which other cases fire meanwhile: it
    // recomputes the last 7 days from the chat and voice logs, which these rows have none of.)
    let range = world.d1_query(
        "SELECT strftime('%Y-%m-%d', 'now', '-7 days') AS d, \
                strftime('%Y-%m-%d', 'now', '-11 days') AS f",
    )[0]
    .clone();
    let (to, from) = (range["d"].as_str().unwrap(), range["f"].as_str().unwrap());
    let reply = world
        .authed(
            "GET",
            &format!("/portal/insights?from={from}&to={to}"),
            &member,
        )
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 5);
    assert_eq!(days[0]["day"], from);
    assert_eq!(days[4]["day"], to);
    let messages: Vec<u64> = days
        .iter()
        .map(|d| d["messages"].as_u64().unwrap())
        .collect();
    assert_eq!(messages, [0, 20, 0, 40, 0]);
    assert_eq!(days[3]["voice_chars"], 40);
    assert_eq!(days[0]["avg_latency_ms"], Value::Null);
    assert_eq!(body["totals"]["messages"], 60);
    let one_site = world
        .authed(
            "GET",
            &format!(
                "/portal/insights?from={from}&to={to}&site_id=site_2{}",
                a.id
            ),
            &member,
        )
        .send();
    assert_eq!(one_site.status, 200, "{}", one_site.body);
    assert_eq!(one_site.json()["totals"]["messages"], 30);
    // B's site is not A's: 404, as a missing one, and nothing of B shown.
    let reply = world
        .authed(
            "GET",
            &format!("/portal/insights?site_id=site_1{}", b.id),
            &member,
        )
        .send();
    reply.assert_error(404, "not_found");
    // Nothing of B's numbers (its request id is random hex, which may hold "700").
    let mut shown = reply.json();
    shown["error"]["request_id"] = Value::Null;
    assert!(!shown.to_string().contains("700"), "{shown}");
    for query in [
        format!("from={to}&to={from}"),
        "from=2026-02-30".to_owned(),
        "to=yesterday".to_owned(),
        "from=2024-01-01&to=2026-01-01".to_owned(),
    ] {
        world
            .authed("GET", &format!("/portal/insights?{query}"), &member)
            .send()
            .assert_error(400, "validation_failed");
    }
}

fn the_team_is_read_from_clerk_and_reused_for_a_minute(world: &World) {
    let a = make_org(world, "basic");
    world
        .fakes
        .clerk
        .add_member(&a.clerk_id, "user_ada", "org:admin", "Ada");
    world
        .fakes
        .clerk
        .add_member(&a.clerk_id, "user_bo", "org:member", "Bo");
    let member = member_token(world, &a.clerk_id, "member", false);
    let path = format!("/v1/organizations/{}/memberships", a.clerk_id);
    let before = world.fakes.clerk.upstream().count("GET", &path);
    let reply = world.authed("GET", "/portal/team", &member).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["org_id"], a.id.as_str());
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["user_id"], "user_ada");
    assert_eq!(members[0]["role"], "admin");
    assert_eq!(members[0]["name"], "Ada");
    assert_eq!(members[0]["identifier"], "user_ada@example.test");
    assert_eq!(members[1]["role"], "member");
    // The Backend API was called with the secret key, once; the second read is the cache's.
    let again = world.authed("GET", "/portal/team", &member).send();
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["members"], body["members"]);
    assert_eq!(world.fakes.clerk.upstream().count("GET", &path), before + 1);
    // An org Clerk no longer knows has nobody to list.
    let gone = make_org(world, "basic");
    let reply = world
        .authed(
            "GET",
            "/portal/team",
            &member_token(world, &gone.clerk_id, "admin", false),
        )
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["members"], json!([]));
}

fn site_face(world: &World, key: &str, origin: &str) -> Reply {
    world
        .call("GET", "/api/site")
        .header("X-Site-Key", key)
        .header("Origin", origin)
        .send()
}

fn engines_are_made_changed_and_rekeyed_by_admins_and_listed_for_members(world: &World) {
    let a = make_org(world, "basic");
    let b = make_org(world, "basic");
    let admin = member_token(world, &a.clerk_id, "admin", false);
    let member = member_token(world, &a.clerk_id, "member", false);
    let b_admin = member_token(world, &b.clerk_id, "admin", false);
    let origin = "https://chat.example.com";

    // Made by the admin: a key of the org's slug, shown to members with its origins.
    let reply = world.authed("POST", "/portal/engines", &admin).json(&json!({
        "name": "Front desk", "type": "chatbot", "origins": [origin, "https://www.example.com/"],
    }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let site = reply.json();
    let id = site["id"].as_str().unwrap().to_owned();
    let key = site["site_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("sk_{}_live_", a.slug)), "{key}");
    assert_eq!(site["origins"], json!([origin, "https://www.example.com"]));
    let listed = world.authed("GET", "/portal/engines", &member).send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()["sites"][0]["site_key"], key.as_str());
    assert_eq!(site_face(world, &key, origin).status, 200);
    site_face(world, &key, "https://evil.example").assert_error(403, "forbidden");

    // Refusals change nothing: a member, bad bodies, another org's admin on this site.
    let rows = Rows::new()
        .where_eq("sites", "org_id", &a.id)
        .where_eq("site_origins", "site_id", &id)
        .where_eq("audit_log", "target_id", &id);
    let snapshot = world.snapshot(&rows);
    world
        .authed("POST", "/portal/engines", &member)
        .json(&json!({ "name": "Nope", "type": "chatbot" }))
        .assert_error(403, "forbidden");
    world
        .authed("POST", &format!("/portal/engines/{id}/rotate-key"), &member)
        .send()
        .assert_error(403, "forbidden");
    for body in [
        json!({ "name": "X", "type": "robot" }),
        json!({ "name": "X", "type": "chatbot", "origins": ["ftp://x.example"] }),
        json!({ "name": "X", "type": "chatbot", "colour": "red" }),
    ] {
        world
            .authed("POST", "/portal/engines", &admin)
            .json(&body)
            .assert_error(400, "validation_failed");
    }
    world
        .authed("PATCH", &format!("/portal/engines/{id}"), &admin)
        .json(&json!({ "status": "sleeping" }))
        .assert_error(400, "validation_failed");
    world
        .authed("PATCH", &format!("/portal/engines/{id}"), &b_admin)
        .json(&json!({ "status": "paused" }))
        .assert_error(404, "not_found");
    world
        .authed(
            "POST",
            &format!("/portal/engines/{id}/rotate-key"),
            &b_admin,
        )
        .send()
        .assert_error(404, "not_found");
    world
        .authed(
            "PATCH",
            &with_org(&format!("/portal/engines/{id}"), &a.id),
            &b_admin,
        )
        .json(&json!({ "status": "paused" }))
        .assert_error(403, "forbidden");
    snapshot.assert_unchanged(world);
    assert_eq!(site_face(world, &key, origin).status, 200);

    // Paused by the admin: the key is refused; active again, it works.
    let reply = world
        .authed("PATCH", &format!("/portal/engines/{id}"), &admin)
        .json(&json!({ "status": "paused" }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["status"], "paused");
    site_face(world, &key, origin).assert_error(403, "forbidden");
    let reply = world
        .authed("PATCH", &format!("/portal/engines/{id}"), &admin)
        .json(&json!({ "status": "active", "origins": ["https://new.example.com"] }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    site_face(world, &key, origin).assert_error(403, "forbidden");
    assert_eq!(
        site_face(world, &key, "https://new.example.com").status,
        200
    );

    // Re-keyed by staff for the org: the old value is refused at once, the new one works.
    let reply = world
        .authed(
            "POST",
            &with_org(&format!("/portal/engines/{id}/rotate-key"), &a.id),
            &staff_token(world),
        )
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let new_key = reply.json()["site_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert!(reply.json()["key_rotated_at"].is_string());
    site_face(world, &key, "https://new.example.com").assert_error(403, "forbidden");
    assert_eq!(
        site_face(world, &new_key, "https://new.example.com").status,
        200
    );
    let audit = world.d1_query(&format!(
        "SELECT action FROM audit_log WHERE target_kind = 'site' AND target_id = '{id}' ORDER BY id"
    ));
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "site.created",
            "site.updated",
            "site.updated",
            "site.key_rotated"
        ]
    );
}

fn an_orgs_workflows_are_managed_by_its_admins_and_never_reached_from_another_org(world: &World) {
    let a = make_org(world, "basic");
    let b = make_org(world, "basic");
    let admin = member_token(world, &a.clerk_id, "admin", false);
    let member = member_token(world, &a.clerk_id, "member", true);
    let b_admin = member_token(world, &b.clerk_id, "admin", false);
    let url = "https://hooks.example.com/koby";

    // Made by the admin: the secret is shown once, never again.
    let reply = world
        .authed("POST", "/portal/workflows", &admin)
        .json(&json!({ "trigger": "usage.threshold", "url": url }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let made = reply.json();
    let id = made["id"].as_str().unwrap().to_owned();
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(made["owner_kind"], "org");
    assert_eq!(made["owner_id"], a.id.as_str());
    let listed = world.authed("GET", "/portal/workflows", &member).send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(!listed.body.contains(&secret));
    assert_eq!(listed.json()["data"][0]["id"], id.as_str());
    assert_eq!(listed.json()["data"][0]["trigger"], "usage.threshold");
    let stored = world.d1_query(&format!("SELECT * FROM workflows WHERE id = '{id}'"));
    assert!(!serde_json::to_string(&stored).unwrap().contains(&secret));

    // Refusals change nothing: a member, bad bodies, another org's admin.
    let rows = Rows::new()
        .where_eq("workflows", "owner_id", &a.id)
        .where_eq("workflows", "owner_id", &b.id)
        .where_eq("audit_log", "target_id", &id);
    let snapshot = world.snapshot(&rows);
    world
        .authed("POST", "/portal/workflows", &member)
        .json(&json!({ "trigger": "usage.threshold", "url": url }))
        .assert_error(403, "forbidden");
    world
        .authed("DELETE", &format!("/portal/workflows/{id}"), &member)
        .send()
        .assert_error(403, "forbidden");
    for body in [
        json!({ "trigger": "usage.sometimes", "url": url }),
        json!({ "trigger": "usage.threshold", "url": "http://hooks.example.com/plain" }),
        json!({ "trigger": "usage.threshold", "url": url, "events": ["all"] }),
        json!({ "url": url }),
    ] {
        world
            .authed("POST", "/portal/workflows", &admin)
            .json(&body)
            .assert_error(400, "validation_failed");
    }
    world
        .authed("PATCH", &format!("/portal/workflows/{id}"), &b_admin)
        .json(&json!({ "enabled": false }))
        .assert_error(404, "not_found");
    world
        .authed("DELETE", &format!("/portal/workflows/{id}"), &b_admin)
        .send()
        .assert_error(404, "not_found");
    world
        .authed(
            "GET",
            &format!("/portal/workflows/{id}/deliveries"),
            &b_admin,
        )
        .send()
        .assert_error(404, "not_found");
    let reply = world
        .authed("GET", &with_org("/portal/workflows", &a.id), &b_admin)
        .send();
    reply.assert_error(403, "forbidden");
    assert!(!reply.body.contains(&id));
    snapshot.assert_unchanged(world);

    // The org's members read its deliveries (none yet); the admin pauses and deletes it.
    let deliveries = world
        .authed(
            "GET",
            &format!("/portal/workflows/{id}/deliveries"),
            &member,
        )
        .send();
    assert_eq!(deliveries.status, 200, "{}", deliveries.body);
    assert_eq!(deliveries.json()["data"], json!([]));
    let paused = world
        .authed("PATCH", &format!("/portal/workflows/{id}"), &admin)
        .json(&json!({ "enabled": false, "trigger": "chat.session.started" }));
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.json()["enabled"], false);
    assert_eq!(paused.json()["trigger"], "chat.session.started");
    // Staff act on it for the org.
    let staff = staff_token(world);
    let reply = world
        .authed(
            "PATCH",
            &with_org(&format!("/portal/workflows/{id}"), &a.clerk_id),
            &staff,
        )
        .json(&json!({ "enabled": true }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let deleted = world
        .authed("DELETE", &format!("/portal/workflows/{id}"), &admin)
        .send();
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        world
            .authed("GET", "/portal/workflows", &member)
            .send()
            .json()["data"],
        json!([])
    );
    let audit = world.d1_query(&format!(
        "SELECT action FROM audit_log WHERE target_id = '{id}' ORDER BY id"
    ));
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "workflow.created",
            "workflow.updated",
            "workflow.updated",
            "workflow.deleted"
        ]
    );
}
