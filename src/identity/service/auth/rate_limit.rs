//! Admission by rate: every authenticated request counts against its plan's requests per
//! minute, per user, through the Workers Rate Limiting binding for that rate
//! (see [`crate::identity::rules::rate_limit`]).

use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::rules::rate_limit::{binding_name, missing_binding_hint, retry_after_secs};
use crate::identity::store::users::User;

/// Counts this request for `user`; `429 rate_limited` when their plan's rate is used up.
///
/// A plan whose rate has no binding is a deployment mistake: it answers `not_configured`
/// naming the binding, and logs what to add. A limiter that fails at run time admits the
/// request and logs it, so an outage of the limiter never locks paying users out (quotas
/// are enforced in D1 regardless).
pub async fn admit(ctx: &Ctx, user: &User) -> Result<(), AppError> {
    let plan = ctx.data.config.plans.get_or_default(&user.plan);
    let Some(per_minute) = plan.requests_per_minute else {
        return Ok(());
    };
    admit_as(
        ctx,
        per_minute,
        user.id.clone(),
        &format!("plan `{}`", plan.id),
    )
    .await
}

/// Counts this request against `per_minute` requests per minute for `key` (whose budget it
/// is: a user id, a platform's end user); `who` names the rate's source in the log line a
/// missing binding writes. Refusals and failures are as for [`admit`].
pub async fn admit_as(ctx: &Ctx, per_minute: u32, key: String, who: &str) -> Result<(), AppError> {
    let name = binding_name(per_minute);
    let limiter = ctx.env.rate_limiter(&name).map_err(|err| {
        ctx.data.log.error(
            "rate limit binding missing",
            serde_json::json!({
                "detail": format!(
                    "{who} allows {per_minute} requests per minute: {err}; {}",
                    missing_binding_hint(per_minute)
                ),
            }),
        );
        AppError::NotConfigured {
            setting: name.clone().into(),
        }
    })?;
    match limiter.limit(key).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => Err(AppError::RateLimited {
            retry_after_secs: retry_after_secs(crate::clock::now_ms()),
        }),
        Err(err) => {
            ctx.data.log.error(
                "rate limiter failed; request admitted",
                serde_json::json!({ "detail": format!("{name}: {err}") }),
            );
            Ok(())
        }
    }
}
