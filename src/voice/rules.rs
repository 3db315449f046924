//! What a voice request may be.

use serde::Deserialize;

use crate::core::body::FieldError;
pub use crate::orgs::rules::is_voice_id as is_id;
use crate::orgs::rules::VoiceChoice;

crate::stored_enum! {
    /// How a request that reached the provider ended (`voice_requests.status`).
    pub enum RequestStatus ("voice request status") {
        Ok = "ok",
        Failed = "failed",
    }
}

/// Requests one visitor of one site may make per minute when `VOICE_RATE_PER_MINUTE` is
/// unset; one address may make twice that ([`crate::sites::rules::per_address`]).
pub const DEFAULT_RATE_PER_MINUTE: u32 = 10;

/// The longest text one request may speak, in characters.
pub const MAX_TEXT_CHARS: u64 = 5000;

/// A `POST /voice` body (`voiceId`, `modelId` and `visitorId` are read too; unknown fields
/// are ignored).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = VoiceRequest)]
pub struct VoiceBody {
    /// What to say: 1 to 5000 characters, not only spaces.
    #[schema(min_length = 1, max_length = 5000)]
    pub text: String,
    /// One of the org's voices (its configuration's `voices`; default: the first, or the
    /// operator's `ELEVENLABS_VOICE_ID` for an org that configured none).
    #[serde(default, alias = "voiceId")]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub voice_id: Option<String>,
    /// One of the models of the org's voices (default: the chosen voice's, or the operator's
    /// `ELEVENLABS_MODEL_ID` for an org that configured none).
    #[serde(default, alias = "modelId")]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: Option<String>,
    /// The widget's label for the visitor (rates are per visitor, and per address).
    #[serde(default, alias = "visitorId")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:@-]+$")]
    pub visitor_id: Option<String>,
}

/// A voice request checked: the text, its characters, and the ids to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    pub text: String,
    pub chars: u64,
    pub voice_id: Option<String>,
    pub model_id: Option<String>,
    pub visitor_id: Option<String>,
}

/// Checks a body, naming every problem; characters are Unicode scalar values.
pub fn check(body: VoiceBody) -> Result<Speech, Vec<FieldError>> {
    let mut problems = Vec::new();
    let chars = body.text.chars().count() as u64;
    if body.text.trim().is_empty() || chars > MAX_TEXT_CHARS {
        problems.push(FieldError::new(
            "text",
            format!("must be 1 to {MAX_TEXT_CHARS} characters, not only spaces"),
        ));
    }
    for (field, value) in [("voice_id", &body.voice_id), ("model_id", &body.model_id)] {
        if value.as_deref().is_some_and(|v| !is_id(v)) {
            problems.push(FieldError::new(
                field,
                "must be 1 to 64 letters, digits, `_` or `-`",
            ));
        }
    }
    if let Some(problem) = body
        .visitor_id
        .as_deref()
        .and_then(crate::sites::rules::visitor_id)
    {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Speech {
        text: body.text,
        chars,
        voice_id: body.voice_id,
        model_id: body.model_id,
        visitor_id: body.visitor_id,
    })
}

/// The voice and model a request speaks with, from `offered` (the org's voices, or the
/// operator's default pair for an org without any; never empty): the named voice, else the
/// first; the named model if some offered voice speaks with it, else the chosen voice's. A
/// voice or model not offered is a problem under its field, so nothing is charged and the
/// provider is never asked to speak with a voice the org did not choose.
pub fn choose(
    speech: &Speech,
    offered: &[VoiceChoice],
) -> Result<(String, String), Vec<FieldError>> {
    let mut problems = Vec::new();
    let voice = match &speech.voice_id {
        Some(id) => offered.iter().find(|v| &v.voice_id == id),
        None => offered.first(),
    };
    if voice.is_none() {
        let ids: Vec<&str> = offered.iter().map(|v| v.voice_id.as_str()).collect();
        problems.push(FieldError::new(
            "voice_id",
            format!("is not one of this site's voices ({})", ids.join(", ")),
        ));
    }
    let model = speech.model_id.as_deref();
    if let Some(model) = model.filter(|m| !offered.iter().any(|v| v.model_id == *m)) {
        let mut ids: Vec<&str> = offered.iter().map(|v| v.model_id.as_str()).collect();
        ids.dedup();
        problems.push(FieldError::new(
            "model_id",
            format!(
                "`{model}` is not one of this site's voice models ({})",
                ids.join(", ")
            ),
        ));
    }
    match voice {
        Some(voice) if problems.is_empty() => Ok((
            voice.voice_id.clone(),
            model.unwrap_or(&voice.model_id).to_owned(),
        )),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_statuses_map_to_their_column_both_ways() {
        crate::core::stored::check::<super::RequestStatus>();
    }

    use super::*;

    fn body(text: &str) -> VoiceBody {
        VoiceBody {
            text: text.to_owned(),
            voice_id: None,
            model_id: None,
            visitor_id: None,
        }
    }

    fn offered() -> Vec<VoiceChoice> {
        ["v1:m1", "v2:m2"]
            .iter()
            .map(|pair| {
                let (voice, model) = pair.split_once(':').unwrap();
                VoiceChoice {
                    voice_id: voice.to_owned(),
                    model_id: model.to_owned(),
                    name: None,
                }
            })
            .collect()
    }

    fn asked(voice: Option<&str>, model: Option<&str>) -> Speech {
        let mut speech = check(body("hi")).unwrap();
        speech.voice_id = voice.map(str::to_owned);
        speech.model_id = model.map(str::to_owned);
        speech
    }

    #[test]
    fn a_request_speaks_only_with_the_orgs_voices_and_models() {
        let pair = |v: &str, m: &str| Ok((v.to_owned(), m.to_owned()));
        assert_eq!(choose(&asked(None, None), &offered()), pair("v1", "m1"));
        assert_eq!(
            choose(&asked(Some("v2"), None), &offered()),
            pair("v2", "m2")
        );
        assert_eq!(
            choose(&asked(Some("v1"), Some("m2")), &offered()),
            pair("v1", "m2")
        );
        assert_eq!(
            choose(&asked(None, Some("m2")), &offered()),
            pair("v1", "m2")
        );
        let fields = |speech: Speech| -> Vec<String> {
            choose(&speech, &offered())
                .unwrap_err()
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(fields(asked(Some("v9"), None)), ["voice_id"]);
        assert_eq!(fields(asked(None, Some("m9"))), ["model_id"]);
        assert_eq!(
            fields(asked(Some("v9"), Some("m9"))),
            ["voice_id", "model_id"]
        );
    }

    #[test]
    fn text_is_one_to_five_thousand_characters() {
        assert_eq!(check(body("héllo")).unwrap().chars, 5);
        assert!(check(body(&"é".repeat(5000))).is_ok());
        for bad in ["", "  \n ", &"a".repeat(5001)] {
            assert_eq!(check(body(bad)).unwrap_err()[0].field, "text", "{bad:?}");
        }
    }

    #[test]
    fn ids_cannot_steer_the_path() {
        assert!(is_id("21m00Tcm4TlvDq8ikWAM"));
        for bad in ["", "../x", "a/b", "a?b", &"a".repeat(65)] {
            assert!(!is_id(bad), "{bad:?}");
        }
        let mut both = body("");
        both.voice_id = Some("../keys".into());
        both.model_id = Some("x y".into());
        both.visitor_id = Some("has space".into());
        assert_eq!(check(both).unwrap_err().len(), 4);
    }
}
