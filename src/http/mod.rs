//! The request pipeline every request goes through, in this order:
//!
//! 1. request id: echo a sane `X-Request-Id`, else make one;
//! 2. configuration: read and validated; an invalid setting is logged once per isolate with
//!    how to fix it, and disables only what needs it (see [`Config::load`]): a setting of
//!    the pipeline itself closes every route but health with `503 not_configured`;
//! 3. CORS preflight: answered here, before routing or authentication (for the global
//!    allow-list, and on a site-key route also for any active site's origins);
//! 4. body: read once, in chunks, within the limit its route declares (looked up in the
//!    route table by method and path; the API limit for a path the table does not serve),
//!    `413 payload_too_large` as soon as it passes it, whether or not `Content-Length` was
//!    sent; a body declared as JSON
//!    must parse (`400 validation_failed` naming where it broke) before any handler runs;
//! 5. the route table ([`crate::routes`]), whose handlers return `Result<Response, AppError>`;
//! 6. every response gets `X-Request-Id` and CORS headers, and one JSON log line is written.

pub mod access;
pub mod config;
mod context;
mod cors;
pub mod dispatch;
pub mod doc;
mod paths;
pub mod response;

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Env, Method, Request, Response};

pub use context::{Ctx, RequestCtx};

use crate::config::Config;
use crate::core::{body, request_id};
use crate::error::AppError;
use crate::log::{Level, Logger, RequestLogging};
use dispatch::RouteTable;

/// Serves one request; never fails: every failure becomes an error envelope.
pub async fn serve(mut req: Request, env: Env, context: worker::Context) -> Response {
    let started_ms = crate::clock::now_ms();
    // HOST_ROUTES: a dedicated host's POST / (and its preflight) is served as its path, before
    // anything reads the path.
    if let Some(routed) = host_routed(&req, &isolate_config(&env)) {
        req = routed;
    }
    let request_id = request_id::resolve(header(&req, "X-Request-Id").as_deref());
    let origin = header(&req, "Origin");
    let log = RequestLog {
        request_id: &request_id,
        method: req.method(),
        path: req.path(),
        started_ms,
        logging: Cell::new(RequestLogging::All),
    };

    // A request refused before it reaches a handler: answered, logged, decorated.
    let refuse = |err: AppError, config: Option<&Config>| {
        let resp = response::error_at(&err, &request_id, &log.path);
        log.write(&resp, None, Some(err.code()));
        finish(resp, &request_id, config, origin.as_deref())
    };

    let config = isolate_config(&env);
    log.logging.set(config.request_log);

    if cors::is_preflight(&req) {
        // A site-key route's preflight is also answered for the origins of active sites
        // (looked up only when the global list does not already allow the origin).
        let site_allows = match origin.as_deref() {
            Some(o) if !config.cors.allows(o) && isolate_routes().takes_site_key(&log.path) => {
                crate::sites::service::origin_on_a_site(&env, o).await
            }
            _ => false,
        };
        let resp = cors::preflight(&config.cors, origin.as_deref(), site_allows, &request_id);
        let refused = (resp.status_code() == 403).then_some("forbidden");
        log.write(&resp, None, refused);
        return finish(resp, &request_id, Some(&config), origin.as_deref());
    }

    if let Some(err) = config.core_unusable() {
        if !crate::routes::HEALTH_PATHS.contains(&log.path.as_str()) {
            return refuse(err, Some(&config));
        }
    }

    let routes = isolate_routes();
    let (bytes, json) = match read_body(&mut req, &config, &routes, &log.path).await {
        Ok(body) => body,
        Err(err) => return refuse(err, Some(&config)),
    };

    let ctx = Rc::new(
        RequestCtx::new(config, request_id.clone(), started_ms, bytes, json)
            .with_background(context),
    );
    let router = routes.router(&log.path, Rc::clone(&ctx));
    let resp = match router.run(req, env).await {
        Ok(resp) => resp,
        Err(err) => {
            let err = AppError::from(err);
            ctx.set_error_code(err.code());
            response::error_at(&err, &request_id, &log.path)
        }
    };
    log.write(&resp, Some(&ctx), ctx.error_code());
    finish(resp, &request_id, Some(&ctx.config), origin.as_deref())
}

/// The request as `HOST_ROUTES` routes it (the same method, headers and body at the mapped
/// path), when its `Host` is mapped and it is a `POST /` or `OPTIONS /`.
fn host_routed(req: &Request, config: &Config) -> Option<Request> {
    use worker::wasm_bindgen::JsCast;
    if config.host_routes.is_empty() {
        return None;
    }
    let host = header(req, "Host")?;
    let method = req.inner().method();
    let path = crate::core::host_routes::route(&config.host_routes, &method, &req.path(), &host)?;
    let mut url = req.url().ok()?;
    url.set_path(path);
    // `new Request(url, request)`: the request itself is a valid init (method, headers, body).
    let init: &web_sys::RequestInit = req.inner().unchecked_ref();
    web_sys::Request::new_with_str_and_init(url.as_str(), init)
        .ok()
        .map(Request::from)
}

/// Reads the body within the limit its route declares; parses it when it is declared as
/// JSON.
async fn read_body(
    req: &mut Request,
    config: &Config,
    routes: &RouteTable,
    path: &str,
) -> Result<(Vec<u8>, Option<serde_json::Value>), AppError> {
    let method = req.method();
    if !matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    ) {
        return Ok((Vec::new(), None));
    }
    let limit = routes
        .body_limit(&method, path)
        .bytes(config.max_body_bytes, config.max_webhook_body_bytes);
    let too_large = AppError::PayloadTooLarge { limit_bytes: limit };
    if body::declared_length_exceeds(header(req, "Content-Length").as_deref(), limit) {
        return Err(too_large);
    }
    let bytes = read_within(req, limit).await?.ok_or(too_large)?;
    let declared_json =
        header(req, "Content-Type").is_some_and(|ct| body::is_json_content_type(&ct));
    let json = if declared_json && !bytes.iter().all(u8::is_ascii_whitespace) {
        Some(body::parse_json(&bytes)?)
    } else {
        None
    };
    Ok((bytes, json))
}

/// The body's bytes, read chunk by chunk, or `None` as soon as they pass `limit` (a body
/// sent without `Content-Length` is never buffered whole).
async fn read_within(req: &Request, limit: usize) -> Result<Option<Vec<u8>>, AppError> {
    let Some(body) = req.inner().body() else {
        return Ok(Some(Vec::new()));
    };
    let reader = web_sys::ReadableStreamDefaultReader::new(&body).map_err(js_error)?;
    let mut bytes = Vec::new();
    loop {
        let next = JsFuture::from(reader.read()).await.map_err(js_error)?;
        let field = |name: &str| js_sys::Reflect::get(&next, &name.into()).map_err(js_error);
        if field("done")?.as_bool().unwrap_or(true) {
            return Ok(Some(bytes));
        }
        let chunk = js_sys::Uint8Array::new(&field("value")?);
        if bytes.len() + chunk.length() as usize > limit {
            // Stop without cancelling the stream: the runtime discards the unread rest, as it
            // does for a body refused by its declared `Content-Length`. (Cancelling it makes
            // `wrangler dev`'s proxy report the worker as restarted.)
            reader.release_lock();
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk.to_vec());
    }
}

/// The body stream failed (the client went away mid-body): a bad request, not our fault.
fn js_error(_err: worker::wasm_bindgen::JsValue) -> AppError {
    AppError::BadRequest("the request body could not be read to its end".to_owned())
}

thread_local! {
    static CONFIG: std::cell::OnceCell<Rc<Config>> = const { std::cell::OnceCell::new() };
}

/// The configuration, read once per isolate: vars and secrets cannot change within one (a
/// new deployment or secret starts new isolates). Invalid settings are logged, with how to
/// fix them, when it is read.
/// The route table, built on this isolate's first request and kept for the next ones.
fn isolate_routes() -> Rc<RouteTable> {
    thread_local! {
        static ROUTES: OnceCell<Rc<RouteTable>> = const { OnceCell::new() };
    }
    ROUTES.with(|cell| Rc::clone(cell.get_or_init(|| Rc::new(crate::routes::table()))))
}

fn isolate_config(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| {
        Rc::clone(cell.get_or_init(|| {
            let config = Config::load(env);
            log_config_problems(&config);
            Rc::new(config)
        }))
    })
}

/// Logs every invalid setting, with how to fix it.
fn log_config_problems(config: &Config) {
    let log = Logger::isolate();
    for problem in &config.problems {
        log.error(
            "invalid configuration: what needs this setting answers not_configured",
            serde_json::json!({
                "setting": problem.setting,
                "problem": problem.problem,
                "fix": problem.fix(),
            }),
        );
    }
}

/// Adds `X-Request-Id` and CORS headers to any response.
fn finish(
    mut resp: Response,
    request_id: &str,
    config: Option<&Config>,
    origin: Option<&str>,
) -> Response {
    let headers = resp.headers_mut();
    response::set(headers, "X-Request-Id", request_id);
    if let (Some(config), Some(origin)) = (config, origin) {
        cors::decorate(headers, &config.cors, origin);
    }
    resp
}

/// One structured JSON line per request: who, what, how it ended, how long it took.
struct RequestLog<'a> {
    request_id: &'a str,
    method: Method,
    path: String,
    started_ms: u64,
    /// Which requests get a line (`REQUEST_LOG`), once the configuration is read.
    logging: Cell<RequestLogging>,
}

impl RequestLog<'_> {
    fn write(&self, resp: &Response, ctx: Option<&RequestCtx>, error_code: Option<&str>) {
        let status = resp.status_code();
        if !self.logging.get().logs(status) {
            return;
        }
        let level = if status >= 500 {
            Level::Error
        } else {
            Level::Info
        };
        let fields = serde_json::json!({
            "method": self.method.to_string(),
            "path": self.path,
            "route": ctx.and_then(RequestCtx::route),
            "status": status,
            "error_code": error_code,
            "principal": ctx.map_or("anonymous", RequestCtx::principal),
            "duration_ms": crate::clock::now_ms().saturating_sub(self.started_ms),
        });
        Logger::for_request(self.request_id).write(level, "request", fields);
    }
}

/// The query string's pairs, decoded.
pub fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, AppError> {
    Ok(req.url()?.query_pairs().into_owned().collect())
}

/// The query's `limit` and `cursor` (see [`crate::core::page`]).
pub fn page_request(
    pairs: &[(String, String)],
) -> Result<crate::core::page::PageRequest, AppError> {
    Ok(crate::core::page::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}

/// A request header's value, if present.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}
