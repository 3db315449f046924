//! Tests of code whose behaviour depends on the wasm runtime, run under Node by
//! `wasm-bindgen-test-runner` (`scripts/test` does this). On the host this file is empty.
#![cfg(target_arch = "wasm32")]

use tollgate::core::request_id;
use wasm_bindgen_test::wasm_bindgen_test;

/// Randomness reaches the JS runtime's `crypto.getRandomValues` (getrandom's `js` backend):
/// ids are well-formed and do not repeat.
#[wasm_bindgen_test]
fn request_ids_are_random_on_wasm() {
    let ids: std::collections::HashSet<String> = (0..64).map(|_| request_id::generate()).collect();
    assert_eq!(ids.len(), 64);
    assert!(ids
        .iter()
        .all(|id| request_id::is_acceptable(id) && id.len() == 36));
}
