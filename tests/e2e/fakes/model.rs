//! An OpenAI-compatible model API (`POST /chat/completions`), plain and streamed, on a raw
//! loopback socket (a stream is written token by token, with delays, and can be cut).
//!
//! Its counting is fixed, so tests can predict every number: the prompt is a quarter of the
//! messages' characters, rounded up, plus 10 for the chat format's framing, as providers
//! count it (`prompt_tokens`); the reply is `tok ` repeated (one token, four characters, one
//! stream chunk each), 8 tokens but never more than the request's `max_tokens`. A stream
//! asked with `stream_options.include_usage` ends with a usage chunk, then `data: [DONE]`.
//! It checks the bearer key and records every request body.
//!
//! Tests running in parallel share it, so each request says what it wants in its last
//! message, by directives: `[reply:N]` (N tokens), `[text:WORD]` (the reply's token is WORD
//! instead of `tok `: one token however many bytes), `[delay:MS]` (before each streamed
//! token; a plain answer waits as long as its stream would), `[fail:STATUS]` (an error answer
//! before any output), `[cut:N]` (stream N tokens, then close the connection: no usage, no
//! `[DONE]`; the body simply ends), `[break:N]` (the same in chunked framing, closed in the
//! middle of a chunk: the body fails to read), `[nousage]` (no usage reported), `[prompt:N]`
//! (count N more prompt tokens, as a provider whose format costs more than documented would).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// The key the worker is configured with (`CHAT_API_KEY`).
pub const CHAT_API_KEY: &str = "sk-fake-model-key";

/// The prompt tokens the chat format's framing adds to every prompt (roles, message markers,
/// the reply's priming), as providers count them.
pub const CHAT_FORMAT_TOKENS: u64 = 10;

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum ModelFault {
    /// Answer this status with an OpenAI error body, before any output.
    Status(u16),
    /// Stream this many tokens, then close the connection (no usage, no `[DONE]`).
    CutAfter(u64),
    /// Stream this many tokens in chunked framing, then close the connection in the middle
    /// of a chunk: the reader's body fails, as when a provider dies mid-stream.
    BreakAfter(u64),
    /// Answer normally but without the usage (plain) or the usage chunk (stream).
    NoUsage,
}

#[derive(Default)]
struct State {
    requests: Vec<Value>,
}

/// The fake model API.
pub struct FakeModel {
    base_url: String,
    state: Arc<Mutex<State>>,
}

#[allow(dead_code)]
impl FakeModel {
    /// Starts on a free loopback port; replies are 8 tokens unless told otherwise.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake model");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            state,
        }
    }

    /// `CHAT_API_URL` for the worker.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The request bodies whose messages contain `marker` (a test's own).
    pub fn requests_with(&self, marker: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["messages"].to_string().contains(marker))
            .collect()
    }

    /// The prompt tokens the fake counts for `messages`: a quarter of their characters,
    /// rounded up, plus the format's [`CHAT_FORMAT_TOKENS`].
    pub fn prompt_tokens(messages: &Value) -> u64 {
        let chars: usize = messages
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|m| m["content"].as_str().unwrap_or_default().chars().count())
                    .sum()
            })
            .unwrap_or(0);
        (chars as u64).div_ceil(4) + CHAT_FORMAT_TOKENS
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut length = 0usize;
    let mut authorization = String::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if path != "/v1/chat/completions" {
        return respond(
            &mut stream,
            404,
            &error("no such path", "invalid_request_error"),
        );
    }
    if authorization != format!("Bearer {CHAT_API_KEY}") {
        return respond(&mut stream, 401, &error("bad key", "authentication_error"));
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.lock().unwrap().requests.push(request.clone());
    let last = request["messages"]
        .as_array()
        .and_then(|list| list.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let reply_tokens = directive(&last, "reply").unwrap_or(8);
    let delay = Duration::from_millis(directive(&last, "delay").unwrap_or(0));
    let fault = if let Some(status) = directive(&last, "fail") {
        Some(ModelFault::Status(status as u16))
    } else if let Some(n) = directive(&last, "cut") {
        Some(ModelFault::CutAfter(n))
    } else if let Some(n) = directive(&last, "break") {
        Some(ModelFault::BreakAfter(n))
    } else if last.contains("[nousage]") {
        Some(ModelFault::NoUsage)
    } else {
        None
    };
    if let Some(ModelFault::Status(status)) = fault {
        return respond(&mut stream, status, &error("injected fault", "api_error"));
    }
    let max_tokens = request["max_tokens"].as_u64().unwrap_or(u64::MAX);
    let tokens = reply_tokens.min(max_tokens);
    let prompt =
        FakeModel::prompt_tokens(&request["messages"]) + directive(&last, "prompt").unwrap_or(0);
    let word = text_directive(&last).unwrap_or_else(|| "tok ".to_owned());
    let model = request["model"].as_str().unwrap_or("fake").to_owned();
    let finish = if tokens < reply_tokens {
        "length"
    } else {
        "stop"
    };
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": tokens,
        "total_tokens": prompt + tokens,
    });
    if request["stream"].as_bool() != Some(true) {
        let mut answer = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": word.repeat(tokens as usize)}}],
            "usage": usage,
        });
        if fault == Some(ModelFault::NoUsage) {
            answer.as_object_mut().unwrap().remove("usage");
        }
        if let Some(ModelFault::CutAfter(_) | ModelFault::BreakAfter(_)) = fault {
            return stream.shutdown(std::net::Shutdown::Both);
        }
        if !delay.is_zero() {
            std::thread::sleep(delay * tokens as u32);
        }
        return respond(&mut stream, 200, &answer);
    }
    let chunked = matches!(fault, Some(ModelFault::BreakAfter(_)));
    let framing: &[u8] = if chunked {
        b"Transfer-Encoding: chunked\r\n"
    } else {
        b""
    };
    stream.write_all(
        &[
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                .as_slice(),
            framing,
            b"Connection: close\r\n\r\n",
        ]
        .concat(),
    )?;
    // In chunked framing each write is one chunk.
    let write = |stream: &mut TcpStream, bytes: &[u8]| -> std::io::Result<()> {
        if chunked {
            stream.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())?;
            stream.write_all(bytes)?;
            stream.write_all(b"\r\n")?;
        } else {
            stream.write_all(bytes)?;
        }
        stream.flush()
    };
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let send = |stream: &mut TcpStream, value: &Value| -> std::io::Result<()> {
        write(stream, format!("data: {value}\n\n").as_bytes())
    };
    send(
        &mut stream,
        &chunk(json!({"role": "assistant", "content": ""}), None),
    )?;
    let cut = match fault {
        Some(ModelFault::CutAfter(n) | ModelFault::BreakAfter(n)) => Some(n),
        _ => None,
    };
    for i in 0..tokens {
        if cut == Some(i) {
            if chunked {
                // A chunk announced, a part of it sent, then the connection closed.
                stream.write_all(b"100\r\ndata: {\"choi")?;
                stream.flush()?;
            }
            return stream.shutdown(std::net::Shutdown::Both);
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        send(&mut stream, &chunk(json!({"content": word}), None))?;
    }
    send(&mut stream, &chunk(json!({}), Some(finish)))?;
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    if include_usage && fault != Some(ModelFault::NoUsage) {
        send(
            &mut stream,
            &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": model, "choices": [], "usage": usage}),
        )?;
    }
    write(&mut stream, b"data: [DONE]\n\n")?;
    if chunked {
        stream.write_all(b"0\r\n\r\n")?;
    }
    stream.flush()
}

/// The number of a `[name:N]` directive in `text`.
fn directive(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("[{name}:"))? + name.len() + 2;
    let end = start + text[start..].find(']')?;
    text[start..end].parse().ok()
}

/// The word of a `[text:WORD]` directive in `text`.
fn text_directive(text: &str) -> Option<String> {
    let start = text.find("[text:")? + "[text:".len();
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_owned())
}

fn error(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "code": null, "param": null}})
}

fn respond(stream: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
