//! Site keys through the real worker: `GET /api/site` admits a site's key only from its own
//! origins (or, where the site takes server calls, without `Origin`), never for a paused
//! site or an org that is not active, and not with a rotated key's old value; preflights to
//! it are answered for an active site's origins. Every refusal changes nothing.
//!
//! The orgs and sites are written into local D1 by the test (as the portal will): each case
//! makes its own, with a slug and origins of its own, in one `wrangler d1 execute`.

use super::Case;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};
use tollgate::sites::rules::{generate_key, Env};

pub fn cases() -> Vec<Case> {
    crate::cases!(sites:
        a_listed_origin_gets_the_site_with_its_cors_headers,
        a_foreign_origin_is_refused_and_changes_nothing,
        no_origin_is_refused_unless_the_site_takes_server_calls,
        a_paused_site_and_an_org_not_active_are_refused,
        a_missing_key_is_401_and_a_malformed_or_unknown_key_403,
        a_rotated_key_is_refused_at_once_and_its_successor_works,
        preflights_are_answered_for_active_sites_origins_only,
    )
}

const SITE: &str = "/api/site";

/// A site (and its org) written into D1 for one case.
struct Fixture {
    org_id: String,
    slug: String,
    site_id: String,
    key: String,
    /// Its one origin, `https://<slug>.example`.
    origin: String,
    org_status: &'static str,
    site_status: &'static str,
    allow_server_calls: bool,
}

impl Fixture {
    fn new() -> Self {
        let slug = unique("s");
        Self {
            org_id: format!("org_{slug}"),
            site_id: format!("site_{slug}"),
            key: generate_key(&slug, Env::Live),
            origin: format!("https://{slug}.example"),
            slug,
            org_status: "active",
            site_status: "active",
            allow_server_calls: false,
        }
    }

    fn org(mut self, status: &'static str) -> Self {
        self.org_status = status;
        self
    }

    fn site(mut self, status: &'static str) -> Self {
        self.site_status = status;
        self
    }

    fn server_calls(mut self) -> Self {
        self.allow_server_calls = true;
        self
    }

    fn sql(&self) -> String {
        let Self {
            org_id,
            slug,
            site_id,
            key,
            origin,
            org_status,
            site_status,
            ..
        } = self;
        let server = i32::from(self.allow_server_calls);
        let at = "2026-11-28T00:00:00Z";
        format!(
            "INSERT INTO orgs (id, name, slug, plan, status, created_at, updated_at) \
                 VALUES ('{org_id}', 'Org {slug}', '{slug}', 'basic', '{org_status}', '{at}', '{at}'); \
             INSERT INTO sites (id, org_id, name, type, status, site_key, env, \
                                allow_server_calls, created_at, updated_at) \
                 VALUES ('{site_id}', '{org_id}', 'Widget {slug}', 'chatbot', '{site_status}', \
                         '{key}', 'live', {server}, '{at}', '{at}'); \
             INSERT INTO site_origins (site_id, origin) VALUES ('{site_id}', '{origin}')"
        )
    }

    /// Every row a refused request could have touched.
    fn rows(&self) -> Rows {
        Rows::new()
            .where_eq("orgs", "id", &self.org_id)
            .where_eq("sites", "id", &self.site_id)
            .where_eq("site_origins", "site_id", &self.site_id)
            .where_eq("audit_log", "target_id", &self.site_id)
    }
}

/// Writes `fixtures` into D1, in one `wrangler d1 execute`.
fn insert(world: &World, fixtures: &[&Fixture]) {
    let sql: Vec<String> = fixtures.iter().map(|f| f.sql()).collect();
    world.d1_query_all(&sql.join("; "));
}

fn site(world: &World, key: Option<&str>, origin: Option<&str>) -> Reply {
    let mut call = world.call("GET", SITE);
    if let Some(key) = key {
        call = call.header("X-Site-Key", key);
    }
    if let Some(origin) = origin {
        call = call.header("Origin", origin);
    }
    call.send()
}

fn preflight(world: &World, path: &str, origin: &str) -> Reply {
    world
        .call("OPTIONS", path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-site-key, content-type")
        .send()
}

/// A refusal: its status and code, no `Access-Control-Allow-Origin`, and `message` in it.
fn refused(reply: &Reply, status: u16, code: &str, message: &str) {
    let error = reply.assert_error(status, code);
    let said = error["message"].as_str().unwrap_or_default();
    assert!(said.contains(message), "{said:?} should say {message:?}");
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

fn a_listed_origin_gets_the_site_with_its_cors_headers(world: &World) {
    let f = Fixture::new();
    insert(world, &[&f]);
    let reply = site(world, Some(&f.key), Some(&f.origin));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "site_id": f.site_id,
            "name": format!("Widget {}", f.slug),
            "type": "chatbot",
            "org": { "name": format!("Org {}", f.slug), "slug": f.slug },
        })
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(f.origin.as_str())
    );
    let vary = reply.header("vary").unwrap_or_default();
    assert!(vary.contains("Origin"), "Vary: {vary:?}");
    // The origin is compared after normalisation (as a browser may spell it).
    let upper = f.origin.to_ascii_uppercase().replace("HTTPS", "https");
    let reply = site(world, Some(&f.key), Some(&upper));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn a_foreign_origin_is_refused_and_changes_nothing(world: &World) {
    let f = Fixture::new();
    let other = Fixture::new();
    insert(world, &[&f, &other]);
    let before = world.snapshot(&f.rows());
    for origin in [
        "https://evil.example".to_owned(),
        // Another active site's origin is no use with this site's key.
        other.origin.clone(),
        // Lookalikes of its own.
        format!("{}.evil.io", f.origin),
        f.origin.replace("https://", "http://"),
        format!("{}:8443", f.origin),
        "null".to_owned(),
    ] {
        let reply = site(world, Some(&f.key), Some(&origin));
        refused(&reply, 403, "forbidden", "origin is not allowed");
    }
    // On the global allow-list but not on this site's: refused all the same (its answer
    // keeps the global list's CORS headers, as every route's does).
    let reply = site(world, Some(&f.key), Some("http://localhost:5173"));
    reply.assert_error(403, "forbidden");
    before.assert_unchanged(world);
}

fn no_origin_is_refused_unless_the_site_takes_server_calls(world: &World) {
    let browser_only = Fixture::new();
    let server = Fixture::new().server_calls();
    insert(world, &[&browser_only, &server]);
    let before = world.snapshot(&browser_only.rows());
    let reply = site(world, Some(&browser_only.key), None);
    refused(&reply, 403, "forbidden", "server calls are not enabled");
    before.assert_unchanged(world);

    let reply = site(world, Some(&server.key), None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["site_id"], server.site_id.as_str());
    assert_eq!(reply.header("access-control-allow-origin"), None);
    // Taking server calls opens no other origin.
    let reply = site(world, Some(&server.key), Some("https://evil.example"));
    refused(&reply, 403, "forbidden", "origin is not allowed");
}

fn a_paused_site_and_an_org_not_active_are_refused(world: &World) {
    let paused = Fixture::new().site("paused").server_calls();
    let inactive = Fixture::new().org("inactive").server_calls();
    let churned = Fixture::new().org("churned").server_calls();
    insert(world, &[&paused, &inactive, &churned]);
    let rows = [&paused, &inactive, &churned]
        .iter()
        .fold(Rows::new(), |rows, f| {
            rows.where_eq("orgs", "id", &f.org_id)
                .where_eq("sites", "id", &f.site_id)
                .where_eq("site_origins", "site_id", &f.site_id)
        });
    let before = world.snapshot(&rows);
    for (f, message) in [
        (&paused, "site is paused"),
        (&inactive, "organisation is not active"),
        (&churned, "organisation is not active"),
    ] {
        // From its own origin, and as a server call: both refused.
        for origin in [Some(f.origin.as_str()), None] {
            let reply = site(world, Some(&f.key), origin);
            refused(&reply, 403, "forbidden", message);
        }
    }
    before.assert_unchanged(world);
}

fn a_missing_key_is_401_and_a_malformed_or_unknown_key_403(world: &World) {
    let f = Fixture::new().server_calls();
    insert(world, &[&f]);
    let before = world.snapshot(&f.rows());
    let reply = site(world, None, Some(&f.origin));
    refused(&reply, 401, "unauthorized", "X-Site-Key");
    let reply = site(world, Some(" "), Some(&f.origin));
    refused(&reply, 401, "unauthorized", "X-Site-Key");
    // A platform key or bearer token is no site key.
    let reply = world
        .call("GET", SITE)
        .header("Authorization", &format!("Bearer {}", f.key))
        .send();
    refused(&reply, 401, "unauthorized", "X-Site-Key");

    let random = &f.key[f.key.len() - 32..];
    for malformed in [
        "sk_".to_owned(),
        format!("pk_live_{random}"),
        f.key.replace("_live_", "_prod_"),
        f.key[..f.key.len() - 10].to_owned(),
        format!("{}!", &f.key[..f.key.len() - 1]),
    ] {
        let reply = site(world, Some(&malformed), Some(&f.origin));
        refused(&reply, 403, "forbidden", "malformed site key");
    }
    for unknown in [
        // The right shape, no such site.
        generate_key(&f.slug, Env::Live),
        // The same random part under another slug or env.
        format!("sk_zz{}_live_{random}", &f.slug[1..]),
        f.key.replace("_live_", "_test_"),
    ] {
        let reply = site(world, Some(&unknown), Some(&f.origin));
        refused(&reply, 403, "forbidden", "unknown site key");
    }
    before.assert_unchanged(world);
}

fn a_rotated_key_is_refused_at_once_and_its_successor_works(world: &World) {
    // There is no route that rotates yet (the portal's comes next): the key is replaced in
    // D1 as sites::service::rotate_key's statement does it.
    let f = Fixture::new();
    insert(world, &[&f]);
    let reply = site(world, Some(&f.key), Some(&f.origin));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let new_key = generate_key(&f.slug, Env::Live);
    world.d1_query(&format!(
        "UPDATE sites SET site_key = '{new_key}', key_rotated_at = '2026-11-28T01:00:00Z' \
         WHERE id = '{}'",
        f.site_id
    ));
    let before = world.snapshot(&f.rows());
    let reply = site(world, Some(&f.key), Some(&f.origin));
    refused(&reply, 403, "forbidden", "unknown site key");
    before.assert_unchanged(world);
    let reply = site(world, Some(&new_key), Some(&f.origin));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["site_id"], f.site_id.as_str());
}

fn preflights_are_answered_for_active_sites_origins_only(world: &World) {
    let active = Fixture::new();
    let paused = Fixture::new().site("paused");
    let churned = Fixture::new().org("churned");
    insert(world, &[&active, &paused, &churned]);

    let reply = preflight(world, SITE, &active.origin);
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(active.origin.as_str())
    );
    let headers = reply
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("x-site-key") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(reply
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .contains("GET"));

    for origin in [
        "https://evil.example",
        paused.origin.as_str(),
        churned.origin.as_str(),
        &format!("{}.evil.io", active.origin),
    ] {
        let reply = preflight(world, SITE, origin);
        refused(&reply, 403, "forbidden", "origin is not allowed");
    }
    // The global allow-list still opens the site route's preflight.
    let reply = preflight(world, SITE, "http://localhost:5173");
    assert_eq!(reply.status, 204, "{}", reply.body);
    // Other routes keep the global list only: a site's origin opens none of them.
    let reply = preflight(world, "/api/usage/report", &active.origin);
    refused(&reply, 403, "forbidden", "origin is not allowed");
}
