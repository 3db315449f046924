//! Koby's voice endpoint's groundwork: HOST_ROUTES under `wrangler dev`.

use super::Case;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(voice: host_routes_serve_post_root_of_a_mapped_host_as_its_path)
}

/// `POST /` with a mapped `Host` is served as the mapped path (here `/api/site`, which takes
/// only GET: 405 with `Allow: GET`), and unmapped it is the root's own answer.
fn host_routes_serve_post_root_of_a_mapped_host_as_its_path(_world: &World) {
    let mapped = World::start_with(&[("HOST_ROUTES", "site.voice.test=/api/site")])
        .expect("a worker with HOST_ROUTES starts");
    let routed = mapped
        .call("POST", "/")
        .header("Host", "site.voice.test")
        .json(&serde_json::json!({}));
    assert_eq!(routed.status, 405, "{}", routed.body);
    assert!(routed.body.contains("GET"), "{}", routed.body);
    let plain = mapped.call("POST", "/").json(&serde_json::json!({}));
    assert_ne!(plain.status, 405, "{}", plain.body);
}
