//! Health endpoints: `GET /`, `GET /health`, `GET /api/health` and `GET /api/health/ping`
//! (each seed had its own; the route table says whose).

use serde::Serialize;
use serde_json::json;
use worker::{Request, Response};

use crate::clock::now;
use crate::error::AppError;
use crate::health::service::{self, Probe};
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::log::Logger;

/// The service name reported by the health endpoints.
const SERVICE: &str = "tollgate";

/// A liveness answer's status: always `ok` (a worker that cannot answer does not answer).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Ok,
}

/// `GET /`: the service and its version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RootView {
    pub status: LiveStatus,
    /// `tollgate`.
    pub service: &'static str,
    pub version: &'static str,
}

/// `GET /health`: the service and the time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub status: LiveStatus,
    /// `tollgate`.
    pub service: &'static str,
    /// Now, RFC 3339.
    pub timestamp: String,
}

/// `GET /api/health/ping`: `pong` and the time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PingView {
    pub status: LiveStatus,
    /// `pong`.
    pub message: &'static str,
    /// Now, RFC 3339.
    pub timestamp: String,
}

/// `GET /`: a liveness check.
pub async fn root(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    response::ok(&RootView {
        status: LiveStatus::Ok,
        service: SERVICE,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// What `/openapi.json` says of `GET /`.
pub fn root_doc() -> Doc {
    Doc::new("Liveness: the service and its version").ok::<RootView>(200)
}

/// `GET /health`: a liveness check with the time.
pub async fn service(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    response::ok(&ServiceView {
        status: LiveStatus::Ok,
        service: SERVICE,
        timestamp: now(),
    })
}

/// What `/openapi.json` says of `GET /health`.
pub fn service_doc() -> Doc {
    Doc::new("Liveness: the service and the time").ok::<ServiceView>(200)
}

/// `GET /api/health/ping`: the cheapest possible answer, for connectivity checks.
pub async fn ping(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
    response::ok(&PingView {
        status: LiveStatus::Ok,
        message: "pong",
        timestamp: now(),
    })
}

/// What `/openapi.json` says of `GET /api/health/ping`.
pub fn ping_doc() -> Doc {
    Doc::new("Connectivity check: pong").ok::<PingView>(200)
}

/// Whether a dependency answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Error,
}

/// The migrations applied to D1.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MigrationsView {
    /// How many are applied.
    pub applied: u32,
    /// File name of the newest applied migration; `null` when none is.
    #[schema(required = true)]
    pub latest: Option<String>,
}

/// The result of probing one dependency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    pub status: CheckStatus,
    /// How long the probe took.
    pub latency_ms: u64,
    /// When `status` is `error`: a sentence (the raw error is in the worker log).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<&'static str>,
    /// D1 only, when it answered: its migrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub migrations: Option<MigrationsView>,
}

impl CheckView {
    fn from_probe<T>(
        probe: Probe<T>,
        migrations: impl FnOnce(T) -> Option<MigrationsView>,
    ) -> Self {
        let latency_ms = probe.latency_ms;
        match probe.result {
            Ok(value) => Self {
                status: CheckStatus::Ok,
                latency_ms,
                error: None,
                migrations: migrations(value),
            },
            Err(detail) => {
                // The raw D1/KV error may name internals; callers are anonymous.
                Logger::isolate().error("health check failed", json!({ "detail": detail }));
                Self {
                    status: CheckStatus::Error,
                    latency_ms,
                    error: Some("unreachable (details are in the worker log)"),
                    migrations: None,
                }
            }
        }
    }

    fn is_ok(&self) -> bool {
        self.status == CheckStatus::Ok
    }
}

/// Whether every setting is valid.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigurationStatus {
    Ok,
    Invalid,
}

/// The configuration's state: the names (never the values) of invalid settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigurationView {
    pub status: ConfigurationStatus,
    /// When `status` is `invalid`: the settings to fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub invalid_settings: Option<Vec<&'static str>>,
}

/// Every check `GET /api/health` runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChecksView {
    pub d1: CheckView,
    pub kv: CheckView,
    pub configuration: ConfigurationView,
}

/// The overall state: `degraded` while D1 or KV is unreachable or a setting is invalid.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

/// `GET /api/health` (also its `503` answer, when D1 or KV is unreachable).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    pub status: HealthStatus,
    /// `tollgate`.
    pub service: &'static str,
    pub version: &'static str,
    /// The deployment's `ENVIRONMENT` (`local` when unset).
    pub environment: String,
    /// Now, RFC 3339.
    pub timestamp: String,
    pub checks: ChecksView,
}

/// `GET /api/health`: status, environment, a timed check of D1 and of KV, and the names
/// (never the values) of invalid settings. Answers `503` when D1 or KV is unreachable;
/// `200` otherwise, with status `degraded` while a setting is invalid (the worker still
/// serves what does not need it). Raw D1/KV errors go to the log, not to the caller.
pub async fn detailed(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let probes = service::probe(&ctx.env).await;
    let d1 = CheckView::from_probe(probes.d1, |m| {
        Some(MigrationsView {
            applied: m.applied,
            latest: m.latest,
        })
    });
    let kv = CheckView::from_probe(probes.kv, |()| None);

    let reachable = d1.is_ok() && kv.is_ok();
    let invalid: Vec<&'static str> = ctx.data.config.problems.iter().map(|p| p.setting).collect();
    let configuration = if invalid.is_empty() {
        ConfigurationView {
            status: ConfigurationStatus::Ok,
            invalid_settings: None,
        }
    } else {
        ConfigurationView {
            status: ConfigurationStatus::Invalid,
            invalid_settings: Some(invalid),
        }
    };
    let status = if reachable && configuration.invalid_settings.is_none() {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    response::json(
        if reachable { 200 } else { 503 },
        &HealthView {
            status,
            service: SERVICE,
            version: env!("CARGO_PKG_VERSION"),
            environment: ctx.data.config.environment.clone(),
            timestamp: now(),
            checks: ChecksView {
                d1,
                kv,
                configuration,
            },
        },
    )
}

/// What `/openapi.json` says of `GET /api/health`.
pub fn detailed_doc() -> Doc {
    Doc::new("D1, KV and the configuration, checked; 503 while D1 or KV is unreachable")
        .ok::<HealthView>(200)
        .ok::<HealthView>(503)
}
