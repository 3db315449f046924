//! The D1 and KV bindings every capability's store uses, and what their stores share.

use wasm_bindgen::JsValue;
use worker::{D1Database, D1Result, Env, KvStore};

use crate::config::{D1_BINDING, KV_BINDING};
use crate::error::AppError;

/// The D1 database holding every table.
pub fn database(env: &Env) -> Result<D1Database, AppError> {
    env.d1(D1_BINDING)
        .map_err(|e| AppError::Internal(format!("D1 binding `{D1_BINDING}`: {e}")))
}

/// The KV namespace used as a cache.
pub fn cache(env: &Env) -> Result<KvStore, AppError> {
    env.kv(KV_BINDING)
        .map_err(|e| AppError::Internal(format!("KV binding `{KV_BINDING}`: {e}")))
}

/// Rows changed by a write.
pub fn changes(result: &D1Result) -> Result<usize, AppError> {
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0))
}

/// SQL that names a user's id, with the values of its parameters (numbered from `?1`): the id
/// itself, or a subquery that finds it. A subquery lets a read keyed by the user go in the
/// same round trip as the lookup that authenticates them.
#[derive(Debug, Clone)]
pub struct UserRef {
    pub sql: String,
    pub params: Vec<JsValue>,
}
