//! Health endpoints: `GET /` (Puku), `GET /health` (dream-api), `GET /api/health` and
//! `GET /api/health/ping` (Sokuji).

use serde::Serialize;
use serde_json::json;
use worker::{Date, Request, Response};

use crate::clock::now;
use crate::error::AppError;
use crate::http::{response, Ctx};
use crate::storage as store;

/// The service name reported by the health endpoints.
const SERVICE: &str = "tollgate";

/// `GET /`: Puku's liveness check.
pub async fn root(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    response::ok(
        &json!({ "status": "ok", "service": SERVICE, "version": env!("CARGO_PKG_VERSION") }),
    )
}

/// `GET /health`: dream-api's liveness check.
pub async fn service(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    response::ok(&json!({ "status": "ok", "service": SERVICE, "timestamp": now() }))
}

/// `GET /api/health/ping`: the cheapest possible answer, for connectivity checks.
pub async fn ping(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    response::ok(&json!({ "status": "ok", "message": "pong", "timestamp": now() }))
}

/// The result of probing one dependency.
#[derive(Debug, Serialize)]
struct Check {
    status: &'static str,
    latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(flatten)]
    details: serde_json::Value,
}

impl Check {
    fn from_result<T>(
        started_ms: u64,
        result: Result<T, String>,
        details: impl FnOnce(T) -> serde_json::Value,
    ) -> Self {
        let latency_ms = Date::now().as_millis().saturating_sub(started_ms);
        match result {
            Ok(value) => Self {
                status: "ok",
                latency_ms,
                error: None,
                details: details(value),
            },
            Err(detail) => {
                // The raw D1/KV error may name internals; callers are anonymous.
                let line =
                    json!({ "level": "error", "msg": "health check failed", "detail": detail });
                worker::console_log!("{line}");
                Self {
                    status: "error",
                    latency_ms,
                    error: Some("unreachable (details are in the worker log)"),
                    details: json!({}),
                }
            }
        }
    }

    fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// `GET /api/health`: status, environment, a timed check of D1 and of KV, and the names
/// (never the values) of invalid settings. Answers `503` when D1 or KV is unreachable;
/// `200` otherwise, with status `degraded` while a setting is invalid (the worker still
/// serves what does not need it). Raw D1/KV errors go to the log, not to the caller.
pub async fn detailed(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let started = Date::now().as_millis();
    let d1 = match store::database(&ctx.env) {
        Ok(db) => crate::health::store::probe_d1(&db).await,
        Err(err) => Err(err.to_string()),
    };
    let d1 = Check::from_result(
        started,
        d1,
        |m| json!({ "migrations": { "applied": m.applied, "latest": m.latest } }),
    );

    let started = Date::now().as_millis();
    let kv = match store::cache(&ctx.env) {
        Ok(kv) => crate::health::store::probe_kv(&kv).await,
        Err(err) => Err(err.to_string()),
    };
    let kv = Check::from_result(started, kv, |()| json!({}));

    let reachable = d1.is_ok() && kv.is_ok();
    let invalid: Vec<&str> = ctx.data.config.problems.iter().map(|p| p.setting).collect();
    let configuration = if invalid.is_empty() {
        json!({ "status": "ok" })
    } else {
        json!({ "status": "invalid", "invalid_settings": invalid })
    };
    response::json(
        if reachable { 200 } else { 503 },
        &json!({
            "status": if reachable && invalid.is_empty() { "ok" } else { "degraded" },
            "service": SERVICE,
            "version": env!("CARGO_PKG_VERSION"),
            "environment": ctx.data.config.environment,
            "timestamp": now(),
            "checks": { "d1": d1, "kv": kv, "configuration": configuration },
        }),
    )
}
