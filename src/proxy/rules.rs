//! The proxy's arithmetic and wire reading, pure: the prompt's estimate, the least reply worth
//! calling for, what a cut-off stream produced, and server-sent events.

use serde::Deserialize;

use crate::upstream::chat::Usage;

/// The least reply worth calling the model for, in tokens: a call whose quota cannot afford
/// the prompt and this many reply tokens is refused (`402`) without calling.
pub const MIN_REPLY_TOKENS: u64 = 16;
/// The reply asked for when a caller names no `max_tokens`.
pub const DEFAULT_MAX_REPLY_TOKENS: u64 = 1024;
/// The largest reply a caller may ask for.
pub const MAX_REPLY_TOKENS: u64 = 128_000;

/// The prompt's tokens, estimated from above before the call: a third of each message's
/// UTF-8 bytes (rounded up) plus 4 per message for its framing, plus 3 for the reply's
/// priming. Common tokenizers average 3.5 to 4 bytes per token on prose, so the hold is a
/// little larger than the provider's count, and settling gives the difference back.
pub fn prompt_estimate<'a>(contents: impl IntoIterator<Item = &'a str>) -> u64 {
    contents
        .into_iter()
        .map(|c| (c.len() as u64).div_ceil(3) + 4)
        .sum::<u64>()
        + 3
}

/// The reply tokens a stream produced before it was cut (the client left or the model
/// failed midway, so the provider sent no usage): a quarter of its characters, rounded up,
/// at most `allowance` (the model was never asked for more).
pub fn produced_tokens(chars: u64, allowance: u64) -> u64 {
    chars.div_ceil(4).min(allowance)
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
/// to its end, and how many characters of reply were produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ending {
    pub usage: Option<Usage>,
    pub completed: bool,
    pub produced_chars: u64,
}

/// How to settle a call whose hold was `prompt_estimate` + `allowance`: the provider's usage
/// when reported; a stream that ended without one is charged its whole hold; one cut off
/// with no output is released; one cut off after output is charged the prompt's estimate and
/// what it produced.
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
            produced_chars: 0, ..
        } => Settlement::Release,
        Ending { produced_chars, .. } => Settlement::Charge {
            input: prompt_estimate,
            output: produced_tokens(*produced_chars, allowance),
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
    fn the_prompt_estimate_is_a_third_of_the_bytes_plus_framing() {
        assert_eq!(prompt_estimate(["abc", "abcd"]), (1 + 4) + (2 + 4) + 3);
        assert_eq!(prompt_estimate(Vec::<&str>::new()), 3);
        // Never below a quarter of the characters (what the fake model counts).
        let text = "word ".repeat(100);
        assert!(prompt_estimate([text.as_str()]) >= (text.len() as u64).div_ceil(4));
    }

    #[test]
    fn settlement_follows_what_the_call_produced() {
        let usage = Usage {
            prompt_tokens: 7,
            completion_tokens: 9,
        };
        let with = |usage, completed, produced_chars| Ending {
            usage,
            completed,
            produced_chars,
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
                output: 11
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
