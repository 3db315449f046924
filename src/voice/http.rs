//! `POST /voice {text, voice_id?, model_id?}`: the site's speech, as `audio/mpeg`, streamed
//! through from the provider.

use worker::{Request, Response};

use crate::error::AppError;
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
