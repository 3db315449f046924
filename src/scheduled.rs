//! What the cron triggers run (`#[event(scheduled)]`, crons in wrangler.toml): the provider
//! key sweep, the retry of failed Stripe events, the retry of workflow deliveries, the retry
//! of unsent mail, and the daily metrics' roll-up. Each part runs even if the others fail,
//! and each is safe to run twice at once.

use serde_json::json;
use worker::Env;

use crate::accounts::service::mail;
use crate::config::Config;
use crate::error::AppError;
use crate::log::Logger;
use crate::metrics::service as metrics;
use crate::provider_keys::service::key_sweep;
use crate::storage as store;
use crate::webhooks::service as inbox;
use crate::workflows::service as workflows;

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
        inbox::retry_every_provider(&db, &config, &Logger::for_cron(cron))
            .await
            .map(|r| json!(r)),
    );
    log(
        cron,
        "scheduled workflow delivery retry",
        workflows::retry_due(
            &db,
            &config,
            &Logger::for_cron(cron),
            crate::clock::now_ms(),
        )
        .await
        .map(|r| json!(r)),
    );
    log(
        cron,
        "scheduled mail retry",
        mail::retry_due(
            &db,
            &config.accounts,
            &Logger::for_cron(cron),
            crate::clock::now_ms(),
        )
        .await
        .map(|r| json!(r)),
    );
    log(
        cron,
        "scheduled daily metrics roll-up",
        metrics::roll_up(&db, crate::clock::now_ms())
            .await
            .map(|r| json!(r)),
    );
}

fn log(cron: &str, msg: &str, outcome: Result<serde_json::Value, AppError>) {
    let log = Logger::for_cron(cron);
    match outcome {
        Ok(report) => log.info(msg, json!({ "report": report })),
        Err(err) => log.error(
            &format!("{msg} failed"),
            json!({
                "code": err.code(),
                "detail": err.log_detail().unwrap_or_else(|| err.public_message()),
            }),
        ),
    }
}
