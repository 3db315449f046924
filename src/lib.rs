//! Tollgate: the backend an AI product needs — identity, plans, exact metering, provider keys
//! and Stripe billing — in one Cloudflare Worker.
//!
//! Shared infrastructure: [`http`] (the request pipeline every request goes through),
//! [`routes`] (the one table of every path and who may call it), [`config`], [`error`],
//! [`clock`], [`storage`] (the D1 and KV bindings), [`upstream`] (Clerk, Stripe, OpenRouter
//! clients) and [`core`] (pure primitives).
//!
//! One folder per capability — [`identity`], [`metering`], [`devices`], [`plans`],
//! [`provider_keys`], [`billing`], [`webhooks`], [`health`] — each holding its pure rules
//! (`rules`, no `worker` types, host-tested), its settings (`config`, read through
//! [`core::settings`] and assembled by [`config`]), its store (`store`, the only code touching
//! its tables), its service (`service`, the flow) and its HTTP surface (`http`).

pub mod accounts;
pub mod audit;
pub mod billing;
pub mod chat;
pub mod clock;
pub mod config;
pub mod contract;
pub mod core;
pub mod devices;
pub mod error;
pub mod health;
pub mod http;
pub mod identity;
#[cfg(test)]
mod layout;
pub mod ledger;
pub mod log;
pub mod metering;
pub mod metrics;
pub mod orgs;
pub mod plans;
pub mod platforms;
pub mod provider_keys;
pub mod proxy;
pub mod routes;
pub mod scheduled;
pub mod sites;
pub mod storage;
pub mod upstream;
pub mod voice;
pub mod webhooks;
pub mod workflows;

use worker::{Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};
use worker_macros::event;

/// The worker's fetch entry point: every request goes through the shared pipeline.
#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    Ok(http::serve(req, env, ctx).await)
}

/// The worker's scheduled entry point (cron triggers in wrangler.toml): the provider key
/// sweep and the retry of failed Stripe events. Safe to run twice at once.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    scheduled::run(&event.cron(), &env).await;
}
