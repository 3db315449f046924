//! Liveness probes of D1 and KV for `/api/health`.

use serde::Deserialize;
use worker::{D1Database, KvStore};

/// What the D1 probe learned: how many migrations are applied, and the newest.
#[derive(Debug, Deserialize)]
pub struct MigrationState {
    /// Number of applied migrations.
    pub applied: u32,
    /// File name of the newest applied migration.
    pub latest: Option<String>,
}

/// Reads wrangler's migration ledger: proves D1 answers and shows the schema is in place.
pub async fn probe_d1(db: &D1Database) -> Result<MigrationState, String> {
    let row = db
        .prepare("SELECT COUNT(*) AS applied, MAX(name) AS latest FROM d1_migrations")
        .first::<MigrationState>(None)
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("no such table") {
                "migrations have not been applied (no d1_migrations table)".to_owned()
            } else {
                text
            }
        })?;
    row.ok_or_else(|| "the migration ledger returned no row".to_owned())
}

/// Reads a key that never exists: proves KV answers without spending a write.
pub async fn probe_kv(kv: &KvStore) -> Result<(), String> {
    kv.get("health:probe")
        .text()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
