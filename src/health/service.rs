//! Probing D1 and KV for `/api/health`, each timed.

use worker::Env;

use crate::health::store;
pub use crate::health::store::MigrationState;
use crate::storage;

/// One dependency's probe: how long it took and what it found (the raw error otherwise,
/// for the log only).
#[derive(Debug)]
pub struct Probe<T> {
    pub latency_ms: u64,
    pub result: Result<T, String>,
}

/// D1's and KV's probes.
#[derive(Debug)]
pub struct Probes {
    pub d1: Probe<MigrationState>,
    pub kv: Probe<()>,
}

/// Probes D1 (its migration ledger), then KV (a key that never exists).
pub async fn probe(env: &Env) -> Probes {
    let started = crate::clock::now_ms();
    let d1 = match storage::database(env) {
        Ok(db) => store::probe_d1(&db).await,
        Err(err) => Err(err.to_string()),
    };
    let d1 = Probe {
        latency_ms: crate::clock::now_ms().saturating_sub(started),
        result: d1,
    };
    let started = crate::clock::now_ms();
    let kv = match storage::cache(env) {
        Ok(kv) => store::probe_kv(&kv).await,
        Err(err) => Err(err.to_string()),
    };
    let kv = Probe {
        latency_ms: crate::clock::now_ms().saturating_sub(started),
        result: kv,
    };
    Probes { d1, kv }
}
