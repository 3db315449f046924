//! The API contract: `GET /openapi.json`, an OpenAPI 3.1 document of every endpoint.
//!
//! The document is generated on the host from the route table and the types its
//! descriptions name ([`generate`]), committed as `openapi.json` beside this file, and
//! embedded in the worker, which serves it as it is: no schema code runs (or is linked) in
//! the worker, and the bytes cost nothing per request. A host test fails when the committed
//! document is not what the code generates (`scripts/openapi` rewrites it), so it cannot
//! drift from the routes.

#[cfg(not(target_arch = "wasm32"))]
pub mod generate;

/// Checks that the documentation matches the code: the configuration table, the links.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod config_doc;

use worker::{Request, Response};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};

/// The document, as generated (see [`generate`]).
pub const DOCUMENT: &str = include_str!("openapi.json");

/// What `/openapi.json` answers: an OpenAPI 3.1 document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OpenApiDocument {
    /// `3.1.0`.
    pub openapi: String,
    #[schema(value_type = Object)]
    pub info: serde_json::Value,
    /// Every endpoint, by path and method.
    #[schema(value_type = Object)]
    pub paths: serde_json::Value,
    #[schema(value_type = Object)]
    pub components: serde_json::Value,
}

/// `GET /openapi.json`.
pub async fn document(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    Ok(response::raw_json(200, DOCUMENT.as_bytes().to_vec()))
}

/// What `/openapi.json` says of `GET /openapi.json`.
pub fn document_doc() -> Doc {
    Doc::new("This API as an OpenAPI 3.1 document").ok::<OpenApiDocument>(200)
}
