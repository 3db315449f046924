//! `POST /voice {text, voice_id?, model_id?}`: the site's speech, as `audio/mpeg`, streamed
//! through from the provider.

use worker::{Request, Response};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::sites::service::SiteCaller;
use crate::voice::rules::{self, VoiceBody};
use crate::voice::service;

/// `POST /voice`, with the site key (or in legacy mode).
pub async fn speak(_req: Request, ctx: Ctx, caller: SiteCaller) -> Result<Response, AppError> {
    let body: VoiceBody = ctx.data.json()?;
    let speech = rules::check(body).map_err(AppError::Validation)?;
    let mut audio = service::speak(&ctx, &caller, &speech).await?;
    let stream = audio.stream()?;
    let mut resp = Response::from_stream(stream)?;
    let headers = resp.headers_mut();
    response::set(headers, "Content-Type", "audio/mpeg");
    response::set(headers, "Cache-Control", "no-store");
    Ok(resp)
}

/// What `/openapi.json` says of `POST /voice`.
pub fn speak_doc() -> Doc {
    Doc::new(
        "Speech for a site's text (ElevenLabs) in one of the org's voices, its \
         characters paid exactly from the org's monthly voice characters",
    )
    .body::<VoiceBody>()
    .media(200, "audio/mpeg", "The speech, streamed through")
    .errors(&[
        "quota_exceeded",
        "rate_limited",
        "upstream_error",
        "not_configured",
    ])
}
