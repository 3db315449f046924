//! ElevenLabs' text to speech (`POST /v1/text-to-speech/{voice_id}` with `xi-api-key`): answers
//! `audio/mpeg` bytes made from the text (an `ID3` tag, then the text's bytes), so tests can
//! check what came back. Tests share it, so a text containing `[fail]` gets a 500 before any
//! audio; it records every request.

use serde_json::{json, Value};

use super::{FakeResponse, FakeUpstream, Recorded};

/// The key the worker is configured with (`ELEVENLABS_API_KEY`).
pub const ELEVENLABS_API_KEY: &str = "xi-fake-key";

/// The fake API.
pub struct FakeElevenLabs {
    upstream: FakeUpstream,
}

/// The audio the fake answers for `text`.
pub fn audio_for(text: &str) -> Vec<u8> {
    let mut audio = b"ID3\x04\x00".to_vec();
    audio.extend_from_slice(text.as_bytes());
    audio
}

#[allow(dead_code)]
impl FakeElevenLabs {
    pub fn start() -> Self {
        let upstream = FakeUpstream::start_on("elevenlabs", "127.0.0.1:0", |r: &Recorded| {
            let error = |status, message: &str| {
                FakeResponse::json(
                    status,
                    &json!({ "detail": { "status": "error", "message": message } }),
                )
            };
            if r.header("xi-api-key") != Some(ELEVENLABS_API_KEY) {
                return error(401, "invalid api key");
            }
            if r.method != "POST" || !r.path.starts_with("/v1/text-to-speech/") {
                return error(404, "not found");
            }
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let text = body["text"].as_str().unwrap_or_default();
            if text.contains("[fail]") {
                return error(500, "injected failure");
            }
            FakeResponse {
                status: 200,
                content_type: "audio/mpeg",
                body: audio_for(text),
                headers: Vec::new(),
            }
        })
        .expect("bind the fake ElevenLabs");
        Self { upstream }
    }

    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// The texts received whose text contains `marker`, with the voice id of their path.
    pub fn spoken_with(&self, marker: &str) -> Vec<(String, Value)> {
        self.upstream
            .received()
            .into_iter()
            .filter_map(|r| {
                let body: Value = serde_json::from_slice(&r.body).ok()?;
                body["text"].as_str()?.contains(marker).then(|| {
                    let voice = r.path.trim_start_matches("/v1/text-to-speech/").to_owned();
                    (voice, body)
                })
            })
            .collect()
    }
}
