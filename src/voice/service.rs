//! The voice flow: admit the visitor (rate), choose the voice among the org's, admit the
//! text's characters exactly on the org's `voice_chars` counter, call the provider, settle
//! (characters charged) or release (nothing charged), log the request, and hand back the
//! audio to stream through.

use std::rc::Rc;
use std::time::Duration;

use worker::Response;

use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::Ctx;
use crate::metering::rules::{ReportRequest, ReserveRequest, VOICE_CHARS};
use crate::metering::service::{self as metering, Clock, Subject};
use crate::orgs::rules::VoiceChoice;
use crate::orgs::service as orgs;
use crate::sites::service::{self as sites, SiteCaller};
use crate::storage;
use crate::upstream::elevenlabs::ElevenLabs;
use crate::voice::rules::{self, RequestStatus, Speech};
use crate::voice::store::{self, Logged};

const PROVIDER: &str = "elevenlabs";

/// Speaks `speech` for the caller's site: `rate_limited` past the visitor's or the address's
/// rate; `validation_failed` for a voice or model the org does not offer; `quota_exceeded`
/// when its characters do not fit the org's month (in all three nothing is held and the
/// provider is not called); `upstream_error` (the hold given back) when the provider fails;
/// else the provider's audio answer, its characters charged (in the request's `wait_until`,
/// so a client that leaves before the audio still pays).
pub async fn speak(ctx: &Ctx, caller: &SiteCaller, speech: &Speech) -> Result<Response, AppError> {
    let config = &ctx.data.config;
    let voice = &config.voice;
    // Unconfigured voice is said before anything is held.
    voice.api_key.require()?;
    sites::admit_visitor(
        ctx,
        caller,
        "voice",
        voice.rate_per_minute,
        speech.visitor_id.as_deref(),
    )
    .await?;
    let org = orgs::get(ctx, &caller.org_id)
        .await?
        .ok_or_else(|| AppError::Forbidden("the site's org is gone".to_owned()))?;
    let operators = [VoiceChoice {
        voice_id: voice.voice_id.clone(),
        model_id: voice.model_id.clone(),
        name: None,
    }];
    let offered = org.config.voices.as_deref().unwrap_or(&operators);
    let (voice_id, model_id) = rules::choose(speech, offered).map_err(AppError::Validation)?;
    let (voice_id, model_id) = (voice_id.as_str(), model_id.as_str());
    let plan = config.plans.get_or_default(&caller.org_plan);
    let subject = Subject::org(&caller.org_id, plan).on(VOICE_CHARS);
    let clock = Clock::at(ctx.data.now_ms);
    let hold = ReserveRequest {
        estimate_tokens: speech.chars,
        provider: Some(PROVIDER.to_owned()),
        model: Some(model_id.to_owned()),
        request_id: None,
    };
    let held = metering::reserve(
        &ctx.env,
        &subject,
        &clock,
        &hold,
        None,
        None,
        config.reservation_ttl_secs,
    )
    .await
    .map_err(|err| match err {
        AppError::QuotaExceeded(message) => AppError::QuotaExceeded(format!(
            "the org's voice characters: {}",
            message.replace("tokens", "characters")
        )),
        other => other,
    })?;
    let reservation_id = held.reservation.id;
    // The provider's call and its settlement run in the background, so characters it spoke
    // are charged even if the client leaves before the audio arrives.
    let (env, request) = (ctx.env.clone(), Rc::clone(&ctx.data));
    let (voice_id, model_id) = (voice_id.to_owned(), model_id.to_owned());
    let (org_id, site_id, plan) = (caller.org_id.clone(), caller.site.id.clone(), plan.clone());
    let (text, chars) = (speech.text.clone(), speech.chars);
    let work = async move {
        let voice = &request.config.voice;
        let api = ElevenLabs {
            base_url: &voice.api_url,
            api_key: voice.api_key.require()?,
            timeout: Duration::from_millis(voice.timeout_ms),
        };
        let subject = Subject::org(&org_id, &plan).on(VOICE_CHARS);
        let clock = Clock::at(request.now_ms);
        let spoken = api.speak(&voice_id, &model_id, &text).await;
        let latency_ms = crate::clock::now_ms().saturating_sub(request.now_ms);
        let at = rfc3339_from_millis(request.now_ms);
        let logged = |status| Logged {
            org_id: &org_id,
            site_id: &site_id,
            chars,
            status,
            latency_ms,
            at: &at,
        };
        let db = storage::database(&env)?;
        match spoken {
            Err(err) => {
                metering::release(&env, &subject, &clock, &reservation_id).await?;
                store::log(&db, &logged(RequestStatus::Failed)).await?;
                Err(err)
            }
            Ok(audio) => {
                let report = ReportRequest {
                    provider: PROVIDER.to_owned(),
                    model: model_id.clone(),
                    input_tokens: chars,
                    output_tokens: 0,
                    device_id: None,
                    reservation_id: Some(reservation_id),
                    request_id: None,
                };
                metering::report(&env, &subject, &clock, &report, None, None, &request).await?;
                store::log(&db, &logged(RequestStatus::Ok)).await?;
                Ok(audio)
            }
        }
    };
    ctx.data.outliving(work).await?
}
