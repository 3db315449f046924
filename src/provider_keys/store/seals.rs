//! Finding and renewing sealed provider keys after `KEY_ENCRYPTION_KEY` was rotated: the
//! values sealed under a previous key are resealed under the current one, in both places
//! sealed keys are stored.

use serde::Deserialize;
use worker::{query, D1Database};

use super::{credit_accounts, pool as provider_keys};
use crate::error::AppError;

/// A column of sealed provider keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// Users' OpenRouter keys (`credit_accounts.key_sealed`).
    Accounts,
    /// The key pool (`provider_keys.key_sealed`).
    Pool,
}

/// A value sealed under another key than the current one.
#[derive(Debug, Clone, Deserialize)]
pub struct Stale {
    /// The row's id (a user id, or a pool key id).
    pub id: String,
    /// The key's OpenRouter hash (accounts only), part of what the value is sealed for.
    key_hash: Option<String>,
    pub sealed: String,
}

impl Sealed {
    /// Table and id column.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Accounts => ("credit_accounts", "user_id"),
            Self::Pool => ("provider_keys", "id"),
        }
    }

    /// What `stale` is sealed for.
    pub fn context(self, stale: &Stale) -> String {
        match self {
            Self::Accounts => {
                credit_accounts::key_context(&stale.id, stale.key_hash.as_deref().unwrap_or(""))
            }
            Self::Pool => provider_keys::key_context(&stale.id),
        }
    }
}

/// Up to `limit` values of `place` sealed under another key than `current_id`.
pub async fn stale(
    db: &D1Database,
    place: Sealed,
    current_id: &str,
    limit: u32,
) -> Result<Vec<Stale>, AppError> {
    let (table, id) = place.table();
    let hash = if place == Sealed::Accounts {
        "key_hash"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT {id} AS id, {hash} AS key_hash, key_sealed AS sealed FROM {table} \
         WHERE key_sealed IS NOT NULL AND key_sealed NOT LIKE ?1 LIMIT ?2"
    );
    Ok(query!(db, &sql, format!("v1.{current_id}.%"), limit)?
        .all()
        .await?
        .results::<Stale>()?)
}

/// Replaces a stale value with its resealed form, unless it changed meanwhile.
pub async fn reseal(
    db: &D1Database,
    place: Sealed,
    stale: &Stale,
    sealed: &str,
) -> Result<(), AppError> {
    let (table, id) = place.table();
    let sql = format!("UPDATE {table} SET key_sealed = ?3 WHERE {id} = ?1 AND key_sealed = ?2");
    query!(db, &sql, &stale.id, &stale.sealed, sealed)?
        .run()
        .await?;
    Ok(())
}
