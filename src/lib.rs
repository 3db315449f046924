//! Tollgate: the backend an AI product needs — identity, plans, exact metering, provider keys
//! and Stripe billing — in one Cloudflare Worker.
//!
//! The layers, from the outside in: [`http`] (the request pipeline every request goes through),
//! [`routes`] (the one table of every path), `handlers` (parse and answer), `store` (D1 and KV),
//! and [`core`] (pure rules with no `worker` types, unit-tested on the host).

mod auth;
pub mod config;
pub mod core;
pub mod error;
mod handlers;
pub mod http;
pub mod routes;
mod services;
mod store;
mod upstream;

use worker::{Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};
use worker_macros::event;

/// The worker's fetch entry point: every request goes through the shared pipeline.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(http::serve(req, env).await)
}

/// The worker's scheduled entry point (cron triggers in wrangler.toml): the provider key
/// sweep and the retry of failed Stripe events. Safe to run twice at once.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    services::scheduled::run(&event.cron(), &env).await;
}
