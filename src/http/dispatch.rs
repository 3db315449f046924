//! The route table's machinery: handlers that return `Result<Response, AppError>`,
//! registered by method and path with who may call them ([`Access`]), dispatched through
//! `worker::Router`.
//!
//! Access is the pipeline's, never the handler's: a route registered with [`Public`] gets a
//! handler of `(Request, Ctx)`; one registered with [`Signed`] gets
//! `(Request, Ctx, SignedDelivery)`, dispatch having verified the delivery's signature; any
//! other rule ([`Access::Session`], [`Access::Scoped`]) gets `(Request, Ctx, Principal)`,
//! and dispatch resolves that principal — refusing a request without a credential, with a
//! bad one, with an API key lacking the route's scope, or (for admin routes) without the
//! admin role — before the handler runs.
//!
//! Each endpoint also declares the size limit of its request bodies ([`BodyLimit`]: the API
//! limit unless it says otherwise; signed routes take the webhook limit), which the pipeline
//! looks up ([`RouteTable::body_limit`]) before it reads the body. A route may also
//! declare a read keyed by the caller ([`RouteTable::batched`]), which runs in the same D1
//! round trip as the caller's lookup and reaches the handler through the context.
//! `HEAD` is answered by a route's GET handler only when that handler is safe: a GET that
//! may create something is registered with [`RouteTable::get_creating`], and `HEAD` on it is
//! `405` with `Allow`.
//!
//! `worker::Router` answers an unknown path or a wrong method with plain text. To keep every
//! answer in the error envelope, each path is registered for all methods and dispatched here
//! by method (a wrong method is `405` with `Allow`), and a catch-all answers `404`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use worker::{Method, Request, Response, Router};

use super::access::{
    self, Admitted, Arrival, EndUser, OrgAdmin, OrgMember, PlatformKey, Public, Signed, SiteKey,
    SiteKeyOrLegacy, Staff,
};
use super::context::{Ctx, RequestCtx};
use super::doc::Doc;
use super::paths;
use super::response;
use crate::core::body::BodyLimit;
use crate::error::AppError;
use crate::identity::rules::scopes::{Access, Need, Scope};
use crate::identity::service::auth::{self, Principal};
use crate::orgs::service::{self as orgs, PortalCaller};
use crate::platforms::service::{self as platforms, Tenant};
use crate::sites::service::{self as sites, SiteCaller};
use crate::storage::UserRef;
use crate::webhooks::rules::signed::SignedDelivery;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, AppError>>>>;

/// A handler, by what it is given.
#[derive(Clone)]
pub enum Handler {
    /// A public route's: the request and its context.
    Open(Rc<dyn Fn(Request, Ctx) -> HandlerFuture>),
    /// Any other route's: also the caller, resolved by the pipeline.
    Guarded(Rc<dyn Fn(Request, Ctx, Principal) -> HandlerFuture>),
    /// A signed route's: also the delivery, verified by the pipeline.
    Signed(Rc<dyn Fn(Request, Ctx, SignedDelivery) -> HandlerFuture>),
    /// A platform route's: also the platform (and end user), resolved by the pipeline.
    Tenant(Rc<dyn Fn(Request, Ctx, Tenant) -> HandlerFuture>),
    /// A portal route's: also the caller and the org they act on, resolved by the pipeline.
    Portal(Rc<dyn Fn(Request, Ctx, PortalCaller) -> HandlerFuture>),
    /// A site-key route's: also the site and its org, resolved (and the origin checked) by
    /// the pipeline.
    Site(Rc<dyn Fn(Request, Ctx, SiteCaller) -> HandlerFuture>),
}

/// A check of the resolved caller that a route asks for beyond its access rule (a verified
/// email before anything that costs the operator money): run after the caller is resolved,
/// before the handler.
pub type Guard =
    for<'a> fn(&'a Ctx, &'a Principal) -> Pin<Box<dyn Future<Output = Result<(), AppError>> + 'a>>;

/// A read keyed by the caller, run in the same D1 round trip as their lookup; given the
/// request's clock (epoch milliseconds).
pub type BatchedRead =
    fn(&worker::D1Database, &UserRef, u64) -> Result<worker::D1PreparedStatement, AppError>;

/// An access rule and the handler shape it takes: [`Public`] takes `(Request, Ctx)`,
/// [`Signed`] takes `(Request, Ctx, SignedDelivery)`, every [`Access`] rule with a caller
/// takes `(Request, Ctx, Principal)`.
pub trait Rule<F, Shape> {
    fn endpoint(self, handler: F) -> (Access, Handler);
}

impl<F, Fut> Rule<F, fn(Request, Ctx) -> Fut> for Public
where
    F: Fn(Request, Ctx) -> Fut + 'static,
    Fut: Future<Output = Result<Response, AppError>> + 'static,
{
    fn endpoint(self, handler: F) -> (Access, Handler) {
        let handler: Rc<dyn Fn(Request, Ctx) -> HandlerFuture> =
            Rc::new(move |req, ctx| Box::pin(handler(req, ctx)));
        (Access::Public, Handler::Open(handler))
    }
}

impl<F, Fut> Rule<F, fn(Request, Ctx, SignedDelivery) -> Fut> for Signed
where
    F: Fn(Request, Ctx, SignedDelivery) -> Fut + 'static,
    Fut: Future<Output = Result<Response, AppError>> + 'static,
{
    fn endpoint(self, handler: F) -> (Access, Handler) {
        let handler: Rc<dyn Fn(Request, Ctx, SignedDelivery) -> HandlerFuture> =
            Rc::new(move |req, ctx, delivery| Box::pin(handler(req, ctx, delivery)));
        (Access::Signed(self.0), Handler::Signed(handler))
    }
}

/// Both platform rules take `(Request, Ctx, Tenant)`.
macro_rules! tenant_rule {
    ($rule:ident) => {
        impl<F, Fut> Rule<F, fn(Request, Ctx, Tenant) -> Fut> for $rule
        where
            F: Fn(Request, Ctx, Tenant) -> Fut + 'static,
            Fut: Future<Output = Result<Response, AppError>> + 'static,
        {
            fn endpoint(self, handler: F) -> (Access, Handler) {
                let handler: Rc<dyn Fn(Request, Ctx, Tenant) -> HandlerFuture> =
                    Rc::new(move |req, ctx, tenant| Box::pin(handler(req, ctx, tenant)));
                (Access::$rule, Handler::Tenant(handler))
            }
        }
    };
}

tenant_rule!(PlatformKey);
tenant_rule!(EndUser);

/// The portal rules take `(Request, Ctx, PortalCaller)`.
macro_rules! portal_rule {
    ($rule:ident, $need:expr) => {
        impl<F, Fut> Rule<F, fn(Request, Ctx, PortalCaller) -> Fut> for $rule
        where
            F: Fn(Request, Ctx, PortalCaller) -> Fut + 'static,
            Fut: Future<Output = Result<Response, AppError>> + 'static,
        {
            fn endpoint(self, handler: F) -> (Access, Handler) {
                let handler: Rc<dyn Fn(Request, Ctx, PortalCaller) -> HandlerFuture> =
                    Rc::new(move |req, ctx, caller| Box::pin(handler(req, ctx, caller)));
                (Access::Portal($need), Handler::Portal(handler))
            }
        }
    };
}

portal_rule!(OrgMember, Need::Member);
portal_rule!(OrgAdmin, Need::Admin);
portal_rule!(Staff, Need::Staff);

/// Both site rules take `(Request, Ctx, SiteCaller)`.
macro_rules! site_rule {
    ($rule:ident) => {
        impl<F, Fut> Rule<F, fn(Request, Ctx, SiteCaller) -> Fut> for $rule
        where
            F: Fn(Request, Ctx, SiteCaller) -> Fut + 'static,
            Fut: Future<Output = Result<Response, AppError>> + 'static,
        {
            fn endpoint(self, handler: F) -> (Access, Handler) {
                let handler: Rc<dyn Fn(Request, Ctx, SiteCaller) -> HandlerFuture> =
                    Rc::new(move |req, ctx, caller| Box::pin(handler(req, ctx, caller)));
                (Access::$rule, Handler::Site(handler))
            }
        }
    };
}

site_rule!(SiteKey);
site_rule!(SiteKeyOrLegacy);

impl<F, Fut> Rule<F, fn(Request, Ctx, Principal) -> Fut> for Access
where
    F: Fn(Request, Ctx, Principal) -> Fut + 'static,
    Fut: Future<Output = Result<Response, AppError>> + 'static,
{
    fn endpoint(self, handler: F) -> (Access, Handler) {
        assert!(
            matches!(self, Access::Session | Access::Scoped(_)),
            "a public or signed route is registered with http::access::Public or \
             http::access::Signed and takes no principal"
        );
        let handler: Rc<dyn Fn(Request, Ctx, Principal) -> HandlerFuture> =
            Rc::new(move |req, ctx, principal| Box::pin(handler(req, ctx, principal)));
        (self, Handler::Guarded(handler))
    }
}

/// One method of one path.
struct Endpoint {
    method: Method,
    access: Access,
    /// Whether `HEAD` may run this (GET) handler: false when it may create something.
    head: bool,
    /// The size limit of its request bodies.
    limit: BodyLimit,
    /// What `/openapi.json` says about it.
    doc: Doc,
    /// A read batched with the caller's lookup.
    read: Option<BatchedRead>,
    /// A check of the caller before the handler.
    guard: Option<Guard>,
    handler: Handler,
}

struct Route {
    pattern: &'static str,
    methods: Rc<Vec<Endpoint>>,
}

/// Every path the API serves, with a handler per method.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// The endpoint registered last (route, method), which `doc` describes.
    last: Option<(usize, usize)>,
}

/// One endpoint as `/openapi.json` sees it.
pub struct Documented<'a> {
    pub method: &'static str,
    pub pattern: &'static str,
    pub access: Access,
    pub doc: &'a Doc,
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            #[doc = concat!("Serves `", stringify!($method), " pattern` with `handler`, for callers `rule` admits.")]
            pub fn $name<R, F, Shape>(self, pattern: &'static str, rule: R, handler: F) -> Self
            where
                R: Rule<F, Shape>,
            {
                self.add(Method::$method, pattern, rule, true, handler)
            }
        )*
    };
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    method_fns! {
        get => Get,
        post => Post,
        put => Put,
        patch => Patch,
        delete => Delete,
    }

    /// Serves `GET pattern` with a handler that may create something (a first key, an
    /// assignment): `HEAD` never runs it and is answered `405`.
    pub fn get_creating<R, F, Shape>(self, pattern: &'static str, rule: R, handler: F) -> Self
    where
        R: Rule<F, Shape>,
    {
        self.add(Method::Get, pattern, rule, false, handler)
    }

    fn add<R, F, Shape>(
        mut self,
        method: Method,
        pattern: &'static str,
        rule: R,
        head: bool,
        handler: F,
    ) -> Self
    where
        R: Rule<F, Shape>,
    {
        let (access, handler) = rule.endpoint(handler);
        // Webhook deliveries may be larger than API calls.
        let limit = match access {
            Access::Signed(_) => BodyLimit::Webhook,
            _ => BodyLimit::Api,
        };
        let endpoint = Endpoint {
            method,
            access,
            head,
            limit,
            doc: Doc::new(""),
            read: None,
            guard: None,
            handler,
        };
        match self.routes.iter().position(|r| r.pattern == pattern) {
            Some(r) => {
                let methods = Rc::get_mut(&mut self.routes[r].methods)
                    .expect("a table is complete before it serves");
                assert!(
                    methods.iter().all(|e| e.method != endpoint.method),
                    "{:?} {pattern} is registered twice",
                    endpoint.method
                );
                methods.push(endpoint);
                self.last = Some((r, methods.len() - 1));
            }
            None => {
                self.routes.push(Route {
                    pattern,
                    methods: Rc::new(vec![endpoint]),
                });
                self.last = Some((self.routes.len() - 1, 0));
            }
        }
        self
    }

    /// Runs `read` in the same D1 round trip as the caller's lookup, for the endpoint
    /// registered last; its handler takes the result with [`RequestCtx::take_batched`].
    pub fn batched(mut self, read: BatchedRead) -> Self {
        let endpoint = self.last_endpoint("batched() follows the endpoint it reads for");
        assert!(
            matches!(endpoint.handler, Handler::Guarded(_)),
            "only a route with a caller has a read keyed by them"
        );
        endpoint.read = Some(read);
        self
    }

    /// The endpoint registered last, which `batched`, `limit` and `doc` amend; `misuse`
    /// says what went wrong if there is none (or the table is already serving).
    fn last_endpoint(&mut self, misuse: &str) -> &mut Endpoint {
        self.last
            .and_then(|(r, m)| Rc::get_mut(&mut self.routes.get_mut(r)?.methods)?.get_mut(m))
            .expect(misuse)
    }

    /// Runs `guard` on the caller of the endpoint registered last, after the access rule and
    /// before the handler; `refusal` is the error code it answers, for `/openapi.json`.
    pub fn guard(mut self, guard: Guard, refusal: &'static str) -> Self {
        let endpoint = self.last_endpoint("guard() follows the endpoint it guards");
        assert!(
            matches!(endpoint.handler, Handler::Guarded(_)),
            "only a route with a caller has a caller to check"
        );
        endpoint.guard = Some(guard);
        let doc = std::mem::replace(&mut endpoint.doc, Doc::new(""));
        endpoint.doc = doc.errors(&[refusal]);
        self
    }

    /// Holds the request bodies of the endpoint registered last to `limit` (instead of its
    /// access rule's default: the webhook limit for a signed route, else the API limit).
    pub fn limit(mut self, limit: BodyLimit) -> Self {
        let endpoint = self.last_endpoint("limit() follows the endpoint it limits");
        endpoint.limit = limit;
        self
    }

    /// The size limit of a `method` request's body to `path` (a request path, matched against
    /// the table's patterns as the router matches them: a literal segment before a `:param`);
    /// the API limit for a path or method the table does not serve.
    pub fn body_limit(&self, method: &Method, path: &str) -> BodyLimit {
        self.routes
            .iter()
            .filter(|route| paths::can_match(route.pattern, path))
            .max_by_key(|route| paths::precedence(route.pattern))
            .and_then(|route| route.methods.iter().find(|e| e.method == *method))
            .map_or(BodyLimit::Api, |e| e.limit)
    }

    /// Every `(method, pattern, body limit)` in registration order.
    pub fn limits(&self) -> impl Iterator<Item = (&'static str, &'static str, BodyLimit)> + '_ {
        self.routes.iter().flat_map(|route| {
            route
                .methods
                .iter()
                .map(move |e| (method_name(&e.method), route.pattern, e.limit))
        })
    }

    /// Describes the endpoint registered last, for `/openapi.json`.
    pub fn doc(mut self, doc: Doc) -> Self {
        let endpoint = self.last_endpoint("doc() follows the endpoint it describes");
        endpoint.doc = doc;
        self
    }

    /// Every endpoint with its description, in registration order.
    pub fn documented(&self) -> impl Iterator<Item = Documented<'_>> + '_ {
        self.routes.iter().flat_map(|route| {
            route.methods.iter().map(move |e| Documented {
                method: method_name(&e.method),
                pattern: route.pattern,
                access: e.access,
                doc: &e.doc,
            })
        })
    }

    /// Every `(method, pattern, access)` in registration order.
    pub fn endpoints(&self) -> impl Iterator<Item = (&'static str, &'static str, Access)> + '_ {
        self.routes.iter().flat_map(|route| {
            route
                .methods
                .iter()
                .map(move |e| (method_name(&e.method), route.pattern, e.access))
        })
    }

    /// Whether a route `path` can match takes a site key (its preflights are also answered
    /// for the origins of active sites).
    pub fn takes_site_key(&self, path: &str) -> bool {
        self.routes
            .iter()
            .filter(|route| paths::can_match(route.pattern, path))
            .flat_map(|route| route.methods.iter())
            .any(|e| matches!(e.access, Access::SiteKey | Access::SiteKeyOrLegacy))
    }

    /// Whether `HEAD pattern` is served (by a GET handler that creates nothing).
    pub fn serves_head(&self, pattern: &str) -> bool {
        self.routes
            .iter()
            .filter(|r| r.pattern == pattern)
            .flat_map(|r| r.methods.iter())
            .any(|e| e.method == Method::Get && e.head)
    }

    /// A `worker::Router` serving this table for one request to `path`. The table itself
    /// is built once per isolate; the router only shares its handlers, and holds only the
    /// patterns `path` can match (see [`paths`]): the router is consumed by the request,
    /// and registering the whole table again for each one cost more than the request.
    pub fn router(&self, path: &str, ctx: Rc<RequestCtx>) -> Router<'static, Rc<RequestCtx>> {
        let mut router = Router::with_data(ctx);
        let candidates = self
            .routes
            .iter()
            .filter(|route| paths::can_match(route.pattern, path));
        for Route { pattern, methods } in candidates {
            let (pattern, methods) = (*pattern, Rc::clone(methods));
            router = router.on_async(pattern, move |req, rctx| {
                let methods = Rc::clone(&methods);
                async move { Ok(dispatch(pattern, &methods, req, rctx).await) }
            });
        }
        router.or_else_any_method_async("/*path", |req, rctx| async move {
            let err = AppError::NotFound("no such endpoint".to_owned());
            rctx.data.set_error_code(err.code());
            Ok(response::error_at(&err, &rctx.data.request_id, &req.path()))
        })
    }
}

async fn dispatch(
    pattern: &'static str,
    methods: &[Endpoint],
    req: Request,
    rctx: Ctx,
) -> Response {
    let ctx = Rc::clone(&rctx.data);
    ctx.set_route(pattern);
    let wanted = req.method();
    // worker::Method reads every method it does not know (QUERY, PROPFIND, ...) as GET: only
    // a request whose own method is the one read may run a handler.
    let known = req
        .inner()
        .method()
        .eq_ignore_ascii_case(method_name(&wanted));
    // HEAD is served by a safe GET handler; the runtime drops the body.
    let found = methods.iter().filter(|_| known).find(|e| match wanted {
        Method::Head => e.method == Method::Get && e.head,
        _ => e.method == wanted,
    });
    let result = match found {
        Some(endpoint) => {
            ctx.set_access(endpoint.access);
            run(endpoint, req, rctx).await
        }
        None => Err(AppError::MethodNotAllowed {
            allowed: methods.iter().map(|e| method_name(&e.method)).collect(),
        }),
    };
    result.unwrap_or_else(|err| fail(&ctx, &err))
}

/// Applies the endpoint's access rule, resolving the caller or verifying the delivery, then
/// runs its handler.
async fn run(endpoint: &Endpoint, req: Request, rctx: Ctx) -> Result<Response, AppError> {
    let authorization = req.headers().get("Authorization").ok().flatten();
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let config = Rc::clone(&rctx.data.config);
    let admitted = access::gate(
        endpoint.access,
        &Arrival {
            authorization: access::presented(authorization.as_deref()),
            header: &header,
            body: rctx.data.raw_body(),
            now_secs: crate::clock::now_secs(),
        },
        &|signer| access::signing_secret(&config, signer),
    )?;
    match &endpoint.handler {
        Handler::Open(handler) => handler(req, rctx).await,
        Handler::Signed(handler) => match admitted {
            Admitted::Delivery(delivery) => handler(req, rctx, delivery).await,
            // gate admits a signed route's request only with its verified delivery.
            Admitted::Anyone | Admitted::Bearer => Err(AppError::Unauthorized(
                "the delivery is not signed".to_owned(),
            )),
        },
        Handler::Tenant(handler) => {
            let tenant =
                platforms::authenticate(&req, &rctx, endpoint.access == Access::EndUser).await?;
            handler(req, rctx, tenant).await
        }
        Handler::Portal(handler) => {
            let Access::Portal(need) = endpoint.access else {
                return Err(AppError::Internal(
                    "a portal handler on another rule".to_owned(),
                ));
            };
            let principal = auth::authenticate(&req, &rctx).await?;
            let caller = orgs::admit(&req, &rctx, principal, need).await?;
            handler(req, rctx, caller).await
        }
        Handler::Site(handler) => {
            let legacy = endpoint.access == Access::SiteKeyOrLegacy;
            let caller = sites::admit(&req, &rctx, legacy).await?;
            let origin = caller.origin.clone();
            let mut resp = handler(req, rctx, caller).await?;
            // The site allows this origin: its browser may read the answer.
            if let Some(origin) = origin {
                let headers = resp.headers_mut();
                response::set(headers, "Access-Control-Allow-Origin", &origin);
                response::set(
                    headers,
                    "Access-Control-Expose-Headers",
                    crate::core::cors::EXPOSED_HEADERS,
                );
                response::set(headers, "Vary", "Origin");
            }
            Ok(resp)
        }
        Handler::Guarded(handler) => {
            let principal = match endpoint.read {
                Some(read) => {
                    let now_ms = rctx.data.now_ms;
                    let batched = |db: &worker::D1Database, user: &UserRef| read(db, user, now_ms);
                    let (principal, found) =
                        auth::authenticate_and_read(&req, &rctx, &batched).await?;
                    rctx.data.set_batched(found);
                    principal
                }
                None => auth::authenticate(&req, &rctx).await?,
            };
            if endpoint.access == Access::Scoped(Scope::Admin) {
                principal.require_admin()?;
            }
            if let Some(guard) = endpoint.guard {
                guard(&rctx, &principal).await?;
            }
            handler(req, rctx, principal).await
        }
    }
}

fn fail(ctx: &RequestCtx, err: &AppError) -> Response {
    ctx.set_error_code(err.code());
    response::error_at(err, &ctx.request_id, ctx.route().unwrap_or_default())
}

fn method_name(method: &Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_segment_is_preferred_to_a_param_when_looking_up_a_limit() {
        async fn open(_req: Request, _ctx: Ctx) -> Result<Response, AppError> {
            Err(AppError::NotFound("never run".to_owned()))
        }
        let table = RouteTable::new()
            .post("/hooks/:id", Public, open)
            .post("/hooks/big", Public, open)
            .limit(BodyLimit::Webhook);
        assert_eq!(
            table.body_limit(&Method::Post, "/hooks/big"),
            BodyLimit::Webhook
        );
        assert_eq!(table.body_limit(&Method::Post, "/hooks/7"), BodyLimit::Api);
    }
}
