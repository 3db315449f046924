//! The metered model proxy through the real worker and the fake model: `/v1/chat/completions`
//! answers in OpenAI's shapes (OpenAI's own Python client reads them), asks the model for no
//! more than the quota affords, and settles from the provider's counts — or, for a stream
//! cut short, from what it produced; a failure before any output charges nothing.
//!
//! Every case marks its own requests to the shared fake model with a unique marker in its
//! last message, and says what it wants of the model there (`[reply:N]`, `[cut:N]`, ...).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api_keys::{all_at_once, clerk_user_on_plan};
use super::Case;
use crate::fakes::{FakeModel, CHAT_MODEL, CHAT_OTHER_MODEL};
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(proxy:
        a_completion_and_a_stream_are_charged_the_providers_counts,
        the_official_openai_python_client_gets_a_completion_and_a_stream,
        fifty_concurrent_streams_never_pass_the_limit,
        a_failure_before_output_charges_nothing_and_a_cut_stream_what_it_produced,
        a_client_that_leaves_mid_stream_is_charged_what_was_produced,
        a_client_that_leaves_before_a_plain_answer_is_charged_what_the_model_reported,
        usage_reported_past_the_hold_is_recorded_but_never_counted_past_it,
        refusals_are_in_openais_shape_and_change_nothing,
    )
}

const COMPLETIONS: &str = "/v1/chat/completions";
/// The basic plan's monthly tokens in the test catalog (no rate limit).
const BASIC_LIMIT: u64 = 10_000_000;
/// The least reply the proxy calls the model for.
const MIN_REPLY: u64 = 16;

/// A fresh basic-plan user: (Clerk token, user id, an API key with scope `usage`).
fn user(world: &World) -> (String, String, String) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    let id = profile["id"].as_str().unwrap().to_owned();
    let key = world
        .authed("POST", "/api/user/api-keys", &token)
        .json(&json!({ "name": "proxy", "scopes": ["usage"] }));
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.json()["api_key"]["key"].as_str().unwrap().to_owned();
    (token, id, key)
}

/// The proxy's bound on a prompt of `user` messages (as `proxy::rules::prompt_estimate`):
/// each message's role and content in UTF-8 bytes plus 4, plus 3.
fn estimate(contents: &[&str]) -> u64 {
    contents
        .iter()
        .map(|c| "user".len() as u64 + c.len() as u64 + 4)
        .sum::<u64>()
        + 3
}

/// The prompt tokens the fake model reports for one message (the format's overhead included).
fn fake_prompt(contents: &[&str]) -> u64 {
    let messages: Vec<Value> = contents.iter().map(|c| json!({"content": c})).collect();
    FakeModel::prompt_tokens(&Value::Array(messages))
}

fn counter(world: &World, user_id: &str) -> (u64, u64) {
    let row = world.d1_query(&format!(
        "SELECT used, reserved FROM meter_counters WHERE subject_kind = 'user' \
         AND subject_id = '{user_id}' AND meter = 'tokens'"
    ));
    let row = row
        .first()
        .cloned()
        .unwrap_or(json!({"used": 0, "reserved": 0}));
    (
        row["used"].as_u64().unwrap(),
        row["reserved"].as_u64().unwrap(),
    )
}

fn records(world: &World, user_id: &str) -> Vec<Value> {
    world.d1_query(&format!(
        "SELECT provider, model, input_tokens, output_tokens, reservation_status \
         FROM usage_records WHERE subject_kind = 'user' AND subject_id = '{user_id}' \
         ORDER BY created_at, id"
    ))
}

/// Waits (at most 15 s) until the user's holds are all settled, then reads the counter.
fn settled(world: &World, user_id: &str) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open = world.d1_query(&format!(
            "SELECT COUNT(*) AS n FROM usage_reservations WHERE subject_id = '{user_id}' \
             AND status = 'reserved'"
        ));
        if open[0]["n"] == 0 || Instant::now() > deadline {
            return counter(world, user_id);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `data:` payloads of an event stream.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn a_completion_and_a_stream_are_charged_the_providers_counts(world: &World) {
    let (_, user_id, key) = user(world);
    let marker = unique("plain-");
    let content = format!("{marker} [reply:5]");
    let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "model": CHAT_OTHER_MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 50,
    }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    let prompt = fake_prompt(&[&content]);
    assert!(
        prompt <= estimate(&[&content]),
        "the estimate bounds the count"
    );
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], CHAT_OTHER_MODEL);
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(answer["choices"][0]["message"]["content"], "tok ".repeat(5));
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5})
    );
    let sent = world.fakes.model.requests_with(&marker);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["max_tokens"], 50,
        "the quota affords all 50: {}",
        sent[0]
    );
    assert_eq!(counter(world, &user_id), (prompt + 5, 0));

    // Streamed, with the usage chunk asked for.
    let marker2 = unique("stream-");
    let content2 = format!("{marker2} [reply:3]");
    let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": content2}]}],
        "stream": true, "stream_options": {"include_usage": true},
    }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let data = events(&reply.body);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        reply.body
    );
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "tok ".repeat(3));
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let prompt2 = fake_prompt(&["be brief", &content2]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], prompt2, "{}", reply.body);
    assert_eq!(usage["completion_tokens"], 3);
    let sent = world.fakes.model.requests_with(&marker2);
    assert_eq!(sent[0]["model"], CHAT_MODEL, "the default model");
    assert_eq!(sent[0]["stream_options"]["include_usage"], true);
    assert_eq!(sent[0]["max_tokens"], 1024, "the default reply");
    assert_eq!(settled(world, &user_id), (prompt + 5 + prompt2 + 3, 0));
    let history = world.authed("GET", "/api/usage/history", &key).send();
    assert_eq!(history.status, 200, "{}", history.body);
    let rows = records(world, &user_id);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["provider"], "fakeai");
    assert_eq!(rows[0]["model"], CHAT_OTHER_MODEL);
    assert_eq!(rows[1]["model"], CHAT_MODEL);
    assert_eq!(rows[1]["input_tokens"], prompt2);
    assert!(
        rows.iter().all(|r| r["reservation_status"] == "settled"),
        "{rows:?}"
    );
}

fn the_official_openai_python_client_gets_a_completion_and_a_stream(world: &World) {
    let (_, user_id, key) = user(world);
    let marker = unique("py-");
    let python = env!("CARGO_MANIFEST_DIR").to_owned() + "/target/venv/bin/python";
    let script = r#"
import os, sys, openai
client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
marker = os.environ["MARKER"]
done = client.chat.completions.create(model=os.environ["MODEL"],
    messages=[{"role": "user", "content": marker + " [reply:4]"}], max_tokens=20)
print("plain", done.choices[0].message.content.count("tok"), done.usage.prompt_tokens, done.usage.completion_tokens)
stream = client.chat.completions.create(model=os.environ["MODEL"],
    messages=[{"role": "user", "content": marker + " [reply:6]"}], stream=True,
    stream_options={"include_usage": True})
text, usage = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
print("stream", text.count("tok"), usage.prompt_tokens, usage.completion_tokens)
try:
    client.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "x"}])
except openai.BadRequestError as e:
    print("bad", e.status_code, e.body["type"], e.body["param"])
try:
    openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key="tg_nope", max_retries=0).models.list()
except openai.AuthenticationError as e:
    print("auth", e.status_code)
print("models", " ".join(m.id for m in client.models.list()))
"#;
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .env("BASE", format!("http://{}", world.address()))
        .env("KEY", &key)
        .env("MARKER", &marker)
        .env("MODEL", CHAT_MODEL)
        .output()
        .expect("run the openai client (scripts/setup installs it into target/venv)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let prompt = |reply: u64| fake_prompt(&[&format!("{marker} [reply:{reply}]")]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("plain 4 {} 4", prompt(4)));
    assert_eq!(lines[1], format!("stream 6 {} 6", prompt(6)));
    assert_eq!(lines[2], "bad 400 invalid_request_error model");
    assert_eq!(lines[3], "auth 401");
    assert_eq!(lines[4], format!("models {CHAT_MODEL} {CHAT_OTHER_MODEL}"));
    // Both calls are in the usage history with the provider's counts.
    settled(world, &user_id);
    let rows = records(world, &user_id);
    let counts: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["input_tokens"].as_u64().unwrap(),
                r["output_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(prompt(4), 4), (prompt(6), 6)], "{rows:?}");
    let history = world
        .authed("GET", "/api/usage/history", &key)
        .send()
        .json();
    assert_eq!(
        history["data"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );
}

fn fifty_concurrent_streams_never_pass_the_limit(world: &World) {
    // The fake counts the chat format's overhead (10 tokens) on every prompt, as providers
    // do: the prompt's hold must bound that too, or each call settles above its hold.
    let (_, user_id, key) = user(world);
    // One call to make the counter, then 1,000 tokens left.
    let warm = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "user", "content": "[reply:1]"}], "max_tokens": 1,
    }));
    assert_eq!(warm.status, 200, "{}", warm.body);
    world.d1_query(&format!(
        "UPDATE meter_counters SET used = {} WHERE subject_kind = 'user' \
         AND subject_id = '{user_id}' AND meter = 'tokens'",
        BASIC_LIMIT - 1000
    ));
    let marker = unique("fifty-");
    let content = format!("{marker} [reply:1000]");
    let prompt_estimate = estimate(&[&content]);
    let replies = all_at_once(50, |_| {
        world.authed("POST", COMPLETIONS, &key).json(&json!({
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 200, "stream": true,
        }))
    });
    let (used, reserved) = settled(world, &user_id);
    assert!(
        used <= BASIC_LIMIT,
        "used {used} passed the limit {BASIC_LIMIT}"
    );
    assert_eq!(reserved, 0, "nothing left reserved");
    let open = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM usage_reservations WHERE subject_id = '{user_id}' \
         AND status = 'reserved'"
    ));
    assert_eq!(open[0]["n"], 0, "every hold settled");
    let answered = replies.iter().filter(|r| r.status == 200).count();
    // At least as many as whole holds (the prompt's bound and 200) fit in the 1,000 left.
    let whole = 1000 / (prompt_estimate + 200);
    assert!(
        answered as u64 >= whole.max(4),
        "at least 1000/{} calls fit: {answered} answered",
        prompt_estimate + 200
    );
    for reply in &replies {
        match reply.status {
            200 => assert_eq!(
                events(&reply.body).last().map(String::as_str),
                Some("[DONE]"),
                "{}",
                reply.body
            ),
            402 => {
                // Refused only when the prompt and the least reply no longer fitted.
                let error = reply.json()["error"].clone();
                assert_eq!(error["type"], "insufficient_quota");
                let message = error["message"].as_str().unwrap();
                let remaining: u64 = message
                    .split(": ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("remaining in {message:?}"));
                assert!(
                    remaining < prompt_estimate + MIN_REPLY,
                    "refused with {remaining} left: {message}"
                );
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    // The model was never asked for more than a call's hold less its prompt estimate.
    let mut asked: Vec<u64> = world
        .fakes
        .model
        .requests_with(&marker)
        .iter()
        .map(|r| r["max_tokens"].as_u64().unwrap())
        .collect();
    let mut held: Vec<u64> = world
        .d1_query(&format!(
            "SELECT amount FROM usage_reservations WHERE subject_id = '{user_id}' \
             AND id != (SELECT id FROM usage_reservations WHERE subject_id = '{user_id}' \
                        ORDER BY created_at, rowid LIMIT 1)"
        ))
        .iter()
        .map(|r| r["amount"].as_u64().unwrap() - prompt_estimate)
        .collect();
    asked.sort_unstable();
    held.sort_unstable();
    assert_eq!(asked.len(), answered);
    assert_eq!(asked, held, "max_tokens asked vs holds");
    assert!(
        asked.iter().all(|&n| (MIN_REPLY..=200).contains(&n)),
        "{asked:?}"
    );
    // Each call was charged the provider's counts, which its hold covered: the counter is
    // exactly the start plus those counts, and every record settled its hold.
    let prompt = fake_prompt(&[&content]);
    assert!(prompt <= prompt_estimate, "{prompt} > {prompt_estimate}");
    let rows = world.d1_query(&format!(
        "SELECT input_tokens, output_tokens, reservation_status FROM usage_records \
         WHERE subject_id = '{user_id}' AND request_id != ( \
             SELECT request_id FROM usage_records WHERE subject_id = '{user_id}' \
             ORDER BY created_at, rowid LIMIT 1)"
    ));
    assert_eq!(rows.len(), answered, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["input_tokens"] == prompt && r["reservation_status"] == "settled"),
        "{rows:?}"
    );
    let outputs: u64 = rows
        .iter()
        .map(|r| r["output_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(
        outputs,
        asked.iter().sum::<u64>(),
        "each reply was what was asked"
    );
    assert_eq!(
        used,
        BASIC_LIMIT - 1000 + answered as u64 * prompt + outputs,
        "the counter is the provider's counts"
    );
}

fn a_failure_before_output_charges_nothing_and_a_cut_stream_what_it_produced(world: &World) {
    let (_, user_id, key) = user(world);
    let marker = unique("fail-");
    for stream in [false, true] {
        let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
            "messages": [{"role": "user", "content": format!("{marker} [fail:500]")}],
            "stream": stream,
        }));
        let error = reply.assert_error(502, "upstream_error");
        assert_eq!(error["type"], "api_error");
    }
    assert_eq!(world.fakes.model.requests_with(&marker).len(), 2);
    assert_eq!(
        settled(world, &user_id),
        (0, 0),
        "nothing charged, nothing held"
    );
    assert!(records(world, &user_id).is_empty());

    // Cut after 10 of 40 tokens, the provider's count never sent: the prompt's bound and
    // the reply's UTF-8 bytes (a token is at least a byte), at most the allowance of 100.
    // English is 4 bytes a token here, CJK 6 (two characters), an emoji 4, a family of
    // joined emoji 18 (so 10 of them pass the allowance, and are charged the allowance).
    let mut charged = 0;
    for (text, bytes_per_token) in [("tok ", 4), ("東京", 6), ("😀", 4), ("👨‍👩‍👧", 18)]
    {
        assert_eq!(text.len(), bytes_per_token, "{text}");
        let content = format!("{marker} [reply:40] [cut:10] [text:{text}]");
        let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
            "messages": [{"role": "user", "content": content}], "stream": true,
            "max_tokens": 100,
        }));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let data = events(&reply.body);
        let streamed: String = data
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(streamed, text.repeat(10), "{}", reply.body);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_error", "{}", reply.body);
        assert_eq!(
            last["error"]["message"], "the model's stream ended early",
            "{}",
            reply.body
        );
        let output = (streamed.len() as u64).min(100);
        charged += estimate(&[&content]) + output;
        assert_eq!(settled(world, &user_id), (charged, 0), "{text}");
        let rows = records(world, &user_id);
        assert_eq!(rows.last().unwrap()["output_tokens"], output, "{text}");
        assert!(output >= 10, "never below the tokens the model produced");
    }
    assert_eq!(records(world, &user_id).len(), 4);

    // Broken after 10 tokens (the body fails to read, mid-chunk): charged the same way, and
    // the client is told only that it broke, never the reader's own error text (logged).
    let broken = format!("{marker} [reply:40] [break:10]");
    let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "user", "content": broken}], "stream": true, "max_tokens": 100,
    }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = events(&reply.body);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(
        last["error"],
        json!({"message": "the model's stream broke", "type": "api_error",
               "code": "upstream_error", "param": null}),
        "{}",
        reply.body
    );
    // Its reply so far: 10 tokens of `tok ` (40 bytes).
    let charged = charged + estimate(&[&broken]) + 40;
    assert_eq!(settled(world, &user_id), (charged, 0));

    // A stream that ends without usage is charged its whole hold.
    let content = format!("{marker} [reply:5] [nousage]");
    let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "user", "content": content}], "stream": true, "max_tokens": 30,
    }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        settled(world, &user_id),
        (charged + estimate(&[&content]) + 30, 0)
    );
}

fn a_client_that_leaves_mid_stream_is_charged_what_was_produced(world: &World) {
    let (_, user_id, key) = user(world);
    let content = format!("{} [reply:200] [delay:100]", unique("leave-"));
    let body = json!({
        "messages": [{"role": "user", "content": content}], "stream": true, "max_tokens": 200,
    })
    .to_string();
    let mut socket = TcpStream::connect(world.address()).unwrap();
    write!(
        socket,
        "POST {COMPLETIONS} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        world.address(),
        body.len()
    )
    .unwrap();
    // Read until a few tokens have arrived, then leave.
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while String::from_utf8_lossy(&seen).matches("tok ").count() < 5 {
        let n = socket.read(&mut buffer).unwrap();
        assert!(
            n > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..n]);
    }
    drop(socket);
    let (used, reserved) = settled(world, &user_id);
    assert_eq!(reserved, 0, "the hold was settled after the client left");
    let output = used - estimate(&[&content]);
    // At least the bytes the client saw (5 tokens of 4 bytes), well short of the allowance.
    assert!(
        (20..160).contains(&output),
        "charged {output} reply tokens for a stream left after about 5 of 200"
    );
}

fn a_client_that_leaves_before_a_plain_answer_is_charged_what_the_model_reported(world: &World) {
    // The deployed runtime cancels a handler whose client left (work in `wait_until` runs on);
    // `wrangler dev` lets it finish, so this checks the charge, not the cancellation.
    let (_, user_id, key) = user(world);
    let marker = unique("gone-");
    // Five tokens, answered after 5 x 400 ms: the client is long gone by then.
    let content = format!("{marker} [reply:5] [delay:400]");
    let body = json!({
        "messages": [{"role": "user", "content": content}], "max_tokens": 50,
    })
    .to_string();
    let mut socket = TcpStream::connect(world.address()).unwrap();
    write!(
        socket,
        "POST {COMPLETIONS} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        world.address(),
        body.len()
    )
    .unwrap();
    // Leave once the model has the request (so the call was admitted and is under way).
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.fakes.model.requests_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the model was never called");
        std::thread::sleep(Duration::from_millis(20));
    }
    socket.shutdown(std::net::Shutdown::Both).unwrap();
    drop(socket);
    let (used, reserved) = settled(world, &user_id);
    assert_eq!(reserved, 0, "the hold was settled after the client left");
    // What the model reported: its count of the prompt and the 5 reply tokens (the hold,
    // the prompt's bound and 50, covers them).
    let prompt = fake_prompt(&[&content]);
    assert!(prompt + 5 <= estimate(&[&content]) + 50);
    assert_eq!(used, prompt + 5, "charged the provider's counts");
    let rows = records(world, &user_id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["input_tokens"], prompt);
    assert_eq!(rows[0]["output_tokens"], 5);
    assert_eq!(rows[0]["reservation_status"], "settled");
}

fn usage_reported_past_the_hold_is_recorded_but_never_counted_past_it(world: &World) {
    let (_, user_id, key) = user(world);
    let warm = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "user", "content": "[reply:1]"}], "max_tokens": 1,
    }));
    assert_eq!(warm.status, 200, "{}", warm.body);
    let start = BASIC_LIMIT - 1000;
    world.d1_query(&format!(
        "UPDATE meter_counters SET used = {start} WHERE subject_kind = 'user' \
         AND subject_id = '{user_id}' AND meter = 'tokens'"
    ));
    // A provider that counts 5,000 more prompt tokens than the proxy's bound (a format that
    // costs more than documented): plain, then streamed.
    let marker = unique("overhold-");
    let mut holds = 0;
    for stream in [false, true] {
        let content = format!("{marker} {stream} [reply:5] [prompt:5000]");
        let reply = world.authed("POST", COMPLETIONS, &key).json(&json!({
            "messages": [{"role": "user", "content": content}], "max_tokens": 100,
            "stream": stream, "stream_options": {"include_usage": true},
        }));
        assert_eq!(reply.status, 200, "{}", reply.body);
        holds += estimate(&[&content]) + 100;
        assert_eq!(
            settled(world, &user_id),
            (start + holds, 0),
            "charged the hold, not the 5,000 past it"
        );
    }
    assert!(start + holds <= BASIC_LIMIT);
    // The records keep what the provider reported.
    let rows = records(world, &user_id);
    let reported: Vec<(u64, u64)> = rows[1..]
        .iter()
        .map(|r| {
            (
                r["input_tokens"].as_u64().unwrap(),
                r["output_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, u64)> = [false, true]
        .iter()
        .map(|stream| {
            let content = format!("{marker} {stream} [reply:5] [prompt:5000]");
            (fake_prompt(&[&content]) + 5000, 5)
        })
        .collect();
    assert_eq!(reported, expected, "{rows:?}");
    // And say so in the log (written as the settlement ends, so it may trail the row a
    // little on its way through wrangler).
    let over_hold_lines = || {
        world
            .worker_log()
            .lines()
            .filter(|l| l.contains(r#""msg":"over_hold""#) && l.contains(&user_id))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while over_hold_lines() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(over_hold_lines(), 2, "one over_hold line a call");
    // A counter at its limit is never passed: the next call is refused before the model.
    world.d1_query(&format!(
        "UPDATE meter_counters SET used = {BASIC_LIMIT} WHERE subject_kind = 'user' \
         AND subject_id = '{user_id}' AND meter = 'tokens'"
    ));
    let refused = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "user", "content": format!("{marker} [prompt:5000]")}],
    }));
    refused.assert_error(402, "quota_exceeded");
    assert_eq!(counter(world, &user_id), (BASIC_LIMIT, 0));
}

fn refusals_are_in_openais_shape_and_change_nothing(world: &World) {
    let (token, user_id, key) = user(world);
    let rows = Rows::new()
        .where_eq("meter_counters", "subject_id", &user_id)
        .where_eq("usage_reservations", "subject_id", &user_id)
        .where_eq("usage_records", "subject_id", &user_id);
    let marker = unique("refused-");
    let warm = world.authed("POST", COMPLETIONS, &key).json(&json!({
        "messages": [{"role": "user", "content": "[reply:1]"}], "max_tokens": 1,
    }));
    assert_eq!(warm.status, 200, "{}", warm.body);
    let content = format!("{marker} hello");
    // Just short of the prompt's estimate and the least reply.
    world.d1_query(&format!(
        "UPDATE meter_counters SET used = {} WHERE subject_kind = 'user' \
         AND subject_id = '{user_id}' AND meter = 'tokens'",
        BASIC_LIMIT - (estimate(&[&content]) + MIN_REPLY - 1)
    ));
    let before = world.snapshot(&rows);
    let send =
        |credential: &str, body: Value| world.authed("POST", COMPLETIONS, credential).json(&body);
    let msg = json!([{"role": "user", "content": content}]);
    let cases = [
        (
            send(&key, json!({"messages": msg})),
            402,
            "quota_exceeded",
            "insufficient_quota",
            Value::Null,
        ),
        (
            send(&token, json!({"messages": msg, "stream": true})),
            402,
            "quota_exceeded",
            "insufficient_quota",
            Value::Null,
        ),
        (
            send(&key, json!({"messages": msg, "model": "no/such"})),
            400,
            "validation_failed",
            "invalid_request_error",
            json!("model"),
        ),
        (
            send(&key, json!({"messages": []})),
            400,
            "validation_failed",
            "invalid_request_error",
            json!("messages"),
        ),
        (
            send(&key, json!({"messages": msg, "max_tokens": 0})),
            400,
            "validation_failed",
            "invalid_request_error",
            json!("max_tokens"),
        ),
        (
            send(
                &key,
                json!({"messages": [{"role": "tool", "content": "x"}]}),
            ),
            400,
            "validation_failed",
            "invalid_request_error",
            json!("messages[0].role"),
        ),
        (
            send("tg_not_a_key", json!({"messages": msg})),
            401,
            "unauthorized",
            "authentication_error",
            Value::Null,
        ),
    ];
    for (reply, status, code, kind, param) in cases {
        let error = reply.assert_error(status, code);
        assert_eq!(error["type"], kind, "{}", reply.body);
        assert_eq!(error["param"], param, "{}", reply.body);
    }
    let missing = world.call("GET", "/v1/nothing").send();
    assert_eq!(
        missing.assert_error(404, "not_found")["type"],
        "invalid_request_error"
    );
    assert!(
        world.fakes.model.requests_with(&marker).is_empty(),
        "the model was not called"
    );
    before.assert_unchanged(world);
    let models = world.authed("GET", "/v1/models", &key).send();
    assert_eq!(models.status, 200, "{}", models.body);
    let models = models.json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][1]["id"], CHAT_OTHER_MODEL);
    assert_eq!(models["data"][0]["owned_by"], "fakeai");
    let _ = FakeModel::prompt_tokens(&Value::Null);
}
