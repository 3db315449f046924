//! What the cron triggers run (`#[event(scheduled)]`, crons in wrangler.toml): the provider
//! key sweep and the retry of failed Stripe events. Each part runs even if the other fails,
//! and each is safe to run twice at once.

use serde_json::json;
use worker::Env;

use crate::billing::service::stripe_events;
use crate::config::Config;
use crate::error::AppError;
use crate::provider_keys::service::key_sweep;
use crate::storage as store;

/// Runs every scheduled job and logs what each did (a scheduled event has no one to answer).
pub async fn run(cron: &str, env: &Env) {
    let config = Config::load(env);
    let db = match store::database(env) {
        Ok(db) => db,
        Err(err) => return log(cron, "scheduled run could not start", Err(err)),
    };
    log(
        cron,
        "scheduled sweep",
        key_sweep::sweep(&db, &config).await.map(|r| json!(r)),
    );
    log(
        cron,
        "scheduled webhook retry",
        stripe_events::retry(&db, &config).await.map(|r| json!(r)),
    );
}

fn log(cron: &str, msg: &str, outcome: Result<serde_json::Value, AppError>) {
    let line = match outcome {
        Ok(report) => json!({ "level": "info", "msg": msg, "cron": cron, "report": report }),
        Err(err) => json!({
            "level": "error", "msg": format!("{msg} failed"), "cron": cron, "code": err.code(),
            "detail": err.log_detail().unwrap_or_else(|| err.public_message()),
        }),
    };
    worker::console_log!("{line}");
}
