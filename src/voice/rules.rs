//! What a voice request may be.

use serde::Deserialize;

use crate::core::body::FieldError;

/// The longest text one request may speak, in characters.
pub const MAX_TEXT_CHARS: u64 = 5000;

/// A `POST /voice` body (`voiceId` and `modelId` are read too; unknown fields are ignored).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = VoiceRequest)]
pub struct VoiceBody {
    /// What to say: 1 to 5000 characters, not only spaces.
    #[schema(min_length = 1, max_length = 5000)]
    pub text: String,
    /// An ElevenLabs voice id (default: the operator's `ELEVENLABS_VOICE_ID`).
    #[serde(default, alias = "voiceId")]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub voice_id: Option<String>,
    /// An ElevenLabs model id (default: the operator's `ELEVENLABS_MODEL_ID`).
    #[serde(default, alias = "modelId")]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: Option<String>,
}

/// A voice request checked: the text, its characters, and the ids to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    pub text: String,
    pub chars: u64,
    pub voice_id: Option<String>,
    pub model_id: Option<String>,
}

/// Whether `id` may be sent as a voice or model id (it goes into the provider's path).
pub fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Speech {
        text: body.text,
        chars,
        voice_id: body.voice_id,
        model_id: body.model_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> VoiceBody {
        VoiceBody {
            text: text.to_owned(),
            voice_id: None,
            model_id: None,
        }
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
        assert_eq!(check(both).unwrap_err().len(), 3);
    }
}
