//! Koby's voice endpoint's groundwork: HOST_ROUTES under `wrangler dev`.

use super::Case;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(voice: host_routes_serve_post_root_of_a_mapped_host_as_its_path)
}

/// `POST /` with a mapped `Host` is served as the mapped path (here `/api/usage/report`: its
/// 401 without a bearer), and unmapped it is the root's own answer (405, GET only).
fn host_routes_serve_post_root_of_a_mapped_host_as_its_path(_world: &World) {
    let mapped = World::start_with(&[("HOST_ROUTES", "report.voice.test=/api/usage/report")])
        .expect("a worker with HOST_ROUTES starts");
    let routed = mapped
        .call("POST", "/")
        .header("Host", "report.voice.test")
        .json(&serde_json::json!({}));
    // /api/usage/report's own refusal (it needs a bearer credential).
    assert_eq!(routed.status, 401, "{}", routed.body);
    // Unmapped, POST / is the root's (GET only).
    let plain = mapped.call("POST", "/").json(&serde_json::json!({}));
    assert_eq!(plain.status, 405, "{}", plain.body);
}
