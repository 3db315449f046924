//! The route table's machinery: handlers that return `Result<Response, AppError>`,
//! registered by method and path with who may call them ([`Access`]), dispatched through
//! `worker::Router`.
//!
//! Dispatch records the route's access in the request context, where authentication reads it
//! (an API key without the route's scope is refused before the handler does anything).
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

use super::context::{Ctx, RequestCtx};
use super::doc::Doc;
use super::response;
use crate::error::AppError;
use crate::identity::rules::scopes::Access;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, AppError>>>>;
type Handler = Rc<dyn Fn(Request, Ctx) -> HandlerFuture>;

/// One method of one path.
struct Endpoint {
    method: Method,
    access: Access,
    /// Whether `HEAD` may run this (GET) handler: false when it may create something.
    head: bool,
    /// What `/openapi.json` says about it.
    doc: Doc,
    handler: Handler,
}

struct Route {
    pattern: &'static str,
    methods: Vec<Endpoint>,
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
            #[doc = concat!("Serves `", stringify!($method), " pattern` with `handler`, for callers `access` admits.")]
            pub fn $name<F, Fut>(self, pattern: &'static str, access: Access, handler: F) -> Self
            where
                F: Fn(Request, Ctx) -> Fut + 'static,
                Fut: Future<Output = Result<Response, AppError>> + 'static,
            {
                self.add(Method::$method, pattern, access, true, handler)
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
    pub fn get_creating<F, Fut>(self, pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Request, Ctx) -> Fut + 'static,
        Fut: Future<Output = Result<Response, AppError>> + 'static,
    {
        self.add(Method::Get, pattern, access, false, handler)
    }

    fn add<F, Fut>(
        mut self,
        method: Method,
        pattern: &'static str,
        access: Access,
        head: bool,
        handler: F,
    ) -> Self
    where
        F: Fn(Request, Ctx) -> Fut + 'static,
        Fut: Future<Output = Result<Response, AppError>> + 'static,
    {
        let endpoint = Endpoint {
            method,
            access,
            head,
            doc: Doc::new(""),
            handler: Rc::new(move |req, ctx| Box::pin(handler(req, ctx))),
        };
        match self.routes.iter().position(|r| r.pattern == pattern) {
            Some(r) => {
                let route = &mut self.routes[r];
                assert!(
                    route.methods.iter().all(|e| e.method != endpoint.method),
                    "{:?} {pattern} is registered twice",
                    endpoint.method
                );
                route.methods.push(endpoint);
                self.last = Some((r, route.methods.len() - 1));
            }
            None => {
                self.routes.push(Route {
                    pattern,
                    methods: vec![endpoint],
                });
                self.last = Some((self.routes.len() - 1, 0));
            }
        }
        self
    }

    /// Describes the endpoint registered last, for `/openapi.json`.
    pub fn doc(mut self, doc: Doc) -> Self {
        let endpoint = self
            .last
            .and_then(|(r, m)| self.routes.get_mut(r)?.methods.get_mut(m))
            .expect("doc() follows the endpoint it describes");
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

    /// Whether `HEAD pattern` is served (by a GET handler that creates nothing).
    pub fn serves_head(&self, pattern: &str) -> bool {
        self.routes
            .iter()
            .filter(|r| r.pattern == pattern)
            .flat_map(|r| &r.methods)
            .any(|e| e.method == Method::Get && e.head)
    }

    /// A `worker::Router` serving this table for one request.
    pub fn into_router(self, ctx: Rc<RequestCtx>) -> Router<'static, Rc<RequestCtx>> {
        let mut router = Router::with_data(ctx);
        for Route { pattern, methods } in self.routes {
            let methods = Rc::new(methods);
            router = router.on_async(pattern, move |req, rctx| {
                let methods = Rc::clone(&methods);
                async move { Ok(dispatch(pattern, &methods, req, rctx).await) }
            });
        }
        router.or_else_any_method_async("/*path", |_req, rctx| async move {
            let err = AppError::NotFound("no such endpoint".to_owned());
            Ok(fail(&rctx.data, &err))
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
    // HEAD is served by a safe GET handler; the runtime drops the body.
    let found = methods.iter().find(|e| match wanted {
        Method::Head => e.method == Method::Get && e.head,
        _ => e.method == wanted,
    });
    let result = match found {
        Some(endpoint) => {
            ctx.set_access(endpoint.access);
            (endpoint.handler)(req, rctx).await
        }
        None => Err(AppError::MethodNotAllowed {
            allowed: methods.iter().map(|e| method_name(&e.method)).collect(),
        }),
    };
    result.unwrap_or_else(|err| fail(&ctx, &err))
}

fn fail(ctx: &RequestCtx, err: &AppError) -> Response {
    ctx.set_error_code(err.code());
    response::error(err, &ctx.request_id)
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
