//! The proxy's arithmetic and wire reading, pure: the prompt's bound, the least reply worth
//! calling for, what a cut-off stream produced, what a settlement charges the counter, and
//! server-sent events.

use serde::Deserialize;

use crate::upstream::chat::Usage;

/// The least reply worth calling the model for, in tokens: a call whose quota cannot afford
/// the prompt and this many reply tokens is refused (`402`) without calling.
pub const MIN_REPLY_TOKENS: u64 = 16;
/// The reply asked for when a caller names no `max_tokens`.
pub const DEFAULT_MAX_REPLY_TOKENS: u64 = 1024;
/// The largest reply a caller may ask for.
pub const MAX_REPLY_TOKENS: u64 = 128_000;

/// Tokens the chat format adds to each message, besides its role's and content's own: the
/// markers that open and close it (OpenAI counts 3 or 4; the larger is taken).
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;
/// Tokens the chat format adds once per prompt, to prime the reply (`<|start|>assistant`:
/// OpenAI counts 3).
pub const REPLY_OVERHEAD_TOKENS: u64 = 3;

/// The prompt's tokens, bounded from above before the call: each message's role and content
/// in UTF-8 bytes plus [`MESSAGE_OVERHEAD_TOKENS`], plus [`REPLY_OVERHEAD_TOKENS`] once:
///
/// `sum(bytes(role) + bytes(content) + 4) + 3`
///
/// (what is sent: a caller's `name` on a message is not forwarded, so not counted).
///
/// A bound, not a guess, for every byte-level BPE tokenizer in use (OpenAI's, Llama's,
/// Gemini's and Claude's fall back to bytes): a token stands for at least one byte of text,
/// so a text of n bytes is at most n tokens; the format's framing is counted as OpenAI
/// documents it, and a provider whose framing costs more is covered by the bytes' slack
/// (prose runs 3.5 to 4 bytes a token). Should a provider still count more, the settlement
/// charges the counter no more than the hold
/// (`metering::rules::counted`).
pub fn prompt_estimate<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    messages
        .into_iter()
        .map(|(role, content)| role.len() as u64 + content.len() as u64 + MESSAGE_OVERHEAD_TOKENS)
        .sum::<u64>()
        + REPLY_OVERHEAD_TOKENS
}

/// The reply tokens a stream produced before it was cut (the client left or the model
/// failed midway, so the provider sent no usage): its UTF-8 bytes, at most `allowance` (the
/// model was never asked for more). Never below what the provider counted: a token is at
/// least one byte in every BPE tokenizer in use, so n bytes were at most n tokens, whatever
/// the script (English runs about 4 bytes a token, CJK about 1.5 to 3, an emoji is 4 bytes
/// in 1 to 3 tokens).
pub fn produced_tokens(bytes: u64, allowance: u64) -> u64 {
    bytes.min(allowance)
}

/// The tokens the provider reported beyond the call's hold (`None`: within it). They stay in
/// the usage record, as reported, and are logged as `over_hold`; the counter is not charged
/// them (`metering::rules::counted`).
pub fn over_hold(reported: u64, hold: u64) -> Option<u64> {
    reported.checked_sub(hold).filter(|&over| over > 0)
}

/// How a call is settled, from what it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Nothing was produced: the hold is given back, nothing is charged.
    Release,
    /// Charge these input and output tokens (settling the hold).
    Charge { input: u64, output: u64 },
}

/// What a call ended with: the provider's usage if it reported one, whether the stream ran
/// to its end, and how many UTF-8 bytes of reply were produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ending {
    pub usage: Option<Usage>,
    pub completed: bool,
    pub produced_bytes: u64,
}

/// How to settle a call whose hold was `prompt_estimate` + `allowance`: the provider's usage
/// when reported; a call that ended without one is charged its whole hold; one cut off with
/// no output is released; one cut off after output is charged the prompt's estimate and
/// [`produced_tokens`] (so at most the hold).
pub fn settlement(ending: &Ending, prompt_estimate: u64, allowance: u64) -> Settlement {
    match ending {
        Ending {
            usage: Some(usage), ..
        } => Settlement::Charge {
            input: usage.prompt_tokens,
            output: usage.completion_tokens,
        },
        Ending {
            completed: true, ..
        } => Settlement::Charge {
            input: prompt_estimate,
            output: allowance,
        },
        Ending {
            produced_bytes: 0, ..
        } => Settlement::Release,
        Ending { produced_bytes, .. } => Settlement::Charge {
            input: prompt_estimate,
            output: produced_tokens(*produced_bytes, allowance),
        },
    }
}

/// Reads a server-sent event stream as it arrives: bytes in, each complete event's `data`
/// out (multi-line data joined by `\n`; comments and other fields skipped).
#[derive(Debug, Default)]
pub struct EventReader {
    buffer: Vec<u8>,
}

impl EventReader {
    /// Adds `bytes`; returns the data of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, skip)) = event_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            let text = String::from_utf8_lossy(&raw);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

/// Where the first event in `buffer` ends (a blank line: `\n\n` or `\r\n\r\n`), and the
/// separator's length.
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// One chunk of a streamed completion, as much as the proxy reads of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    pub content: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
}

/// What one event's data says: `None` for the `[DONE]` marker, `Some(Err)` for data that is
/// not a chunk.
pub fn chunk(data: &str) -> Option<Result<Chunk, String>> {
    if data.trim() == "[DONE]" {
        return None;
    }
    Some(
        serde_json::from_str::<WireChunk>(data)
            .map(|wire| {
                let choice = wire.choices.into_iter().next();
                Chunk {
                    finish_reason: choice.as_ref().and_then(|c| c.finish_reason.clone()),
                    content: choice.and_then(|c| c.delta).and_then(|d| d.content),
                    usage: wire.usage,
                    model: wire.model,
                }
            })
            .map_err(|e| e.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_estimate_is_every_byte_plus_the_formats_framing() {
        assert_eq!(
            prompt_estimate([("user", "abc"), ("system", "abcd")]),
            (4 + 3 + 4) + (6 + 4 + 4) + 3
        );
        assert_eq!(prompt_estimate(Vec::<(&str, &str)>::new()), 3);
        // Bytes, not characters: é is 2, 漢 is 3, 😀 is 4.
        assert_eq!(prompt_estimate([("user", "é漢😀")]), 4 + 9 + 4 + 3);
    }

    #[test]
    fn the_prompt_estimate_bounds_what_providers_count() {
        // A provider counting one token a byte (the worst any BPE tokenizer does) and OpenAI's
        // framing (3 per message, the role's token, 3 to prime the reply) stays within it.
        let worst = |messages: &[(&str, &str)]| {
            messages
                .iter()
                .map(|(_, content)| content.len() as u64 + 3 + 1)
                .sum::<u64>()
                + 3
        };
        for messages in [
            vec![("user", "hi")],
            vec![("user", "")],
            vec![("system", "be brief"), ("user", "東京の天気は？ 🌧️")],
            vec![("assistant", "x"), ("developer", "y"), ("user", "z")],
        ] {
            assert!(
                prompt_estimate(messages.clone()) >= worst(&messages),
                "{messages:?}"
            );
        }
        // The fake model's count (a quarter of the characters, plus 10 for the format) too.
        let fake_count = |text: &str| (text.chars().count() as u64).div_ceil(4) + 10;
        for text in [
            "hi",
            "",
            "東京の天気は？",
            "a much longer message of many words",
        ] {
            assert!(
                prompt_estimate([("user", text)]) >= fake_count(text),
                "{text}"
            );
        }
    }

    #[test]
    fn a_cut_stream_is_charged_at_least_its_bytes_as_tokens() {
        // English: 4 bytes a token or so; charged 11 for 11 bytes.
        let english = "Hello world";
        assert_eq!(produced_tokens(english.len() as u64, 100), 11);
        // CJK: 3 bytes a character; a tokenizer spends at most one token a byte.
        let cjk = "東京都の天気";
        assert_eq!(cjk.len(), 18);
        assert_eq!(produced_tokens(cjk.len() as u64, 100), 18);
        assert!(produced_tokens(cjk.len() as u64, 100) >= cjk.chars().count() as u64);
        // Emoji: 4 bytes (a joined family is 25), never fewer tokens than that charge.
        let emoji = "😀👍🏽👨‍👩‍👧";
        assert_eq!(
            produced_tokens(emoji.len() as u64, 1000),
            emoji.len() as u64
        );
        // Never past the allowance the model was asked for.
        assert_eq!(produced_tokens(cjk.len() as u64, 5), 5);
        assert_eq!(produced_tokens(0, 5), 0);
    }

    #[test]
    fn usage_past_the_hold_is_named() {
        assert_eq!(over_hold(90, 100), None);
        assert_eq!(over_hold(100, 100), None);
        assert_eq!(over_hold(130, 100), Some(30));
    }

    #[test]
    fn settlement_follows_what_the_call_produced() {
        let usage = Usage {
            prompt_tokens: 7,
            completion_tokens: 9,
        };
        let with = |usage, completed, produced_bytes| Ending {
            usage,
            completed,
            produced_bytes,
        };
        assert_eq!(
            settlement(&with(Some(usage), true, 40), 20, 100),
            Settlement::Charge {
                input: 7,
                output: 9
            }
        );
        assert_eq!(
            settlement(&with(None, true, 40), 20, 100),
            Settlement::Charge {
                input: 20,
                output: 100
            }
        );
        assert_eq!(
            settlement(&with(None, false, 0), 20, 100),
            Settlement::Release
        );
        assert_eq!(
            settlement(&with(None, false, 41), 20, 100),
            Settlement::Charge {
                input: 20,
                output: 41
            }
        );
        assert_eq!(
            settlement(&with(None, false, 4000), 20, 100),
            Settlement::Charge {
                input: 20,
                output: 100
            }
        );
    }

    #[test]
    fn events_are_read_across_arbitrary_splits() {
        let wire = b"data: {\"a\":1}\n\n: comment\n\ndata: one\ndata: two\r\n\r\ndata: [DONE]\n\n";
        for split in 1..wire.len() {
            let mut reader = EventReader::default();
            let mut events = reader.push(&wire[..split]);
            events.extend(reader.push(&wire[split..]));
            assert_eq!(
                events,
                ["{\"a\":1}", "one\ntwo", "[DONE]"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn chunks_carry_content_finish_and_usage() {
        let c =
            chunk(r#"{"model":"m","choices":[{"delta":{"content":"hi"},"finish_reason":null}]}"#)
                .unwrap()
                .unwrap();
        assert_eq!(c.content.as_deref(), Some("hi"));
        assert_eq!(c.model.as_deref(), Some("m"));
        let last = chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            last.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            })
        );
        assert!(chunk("[DONE]").is_none());
        assert!(chunk("not json").unwrap().is_err());
    }
}
