//! A fake of a Resend-shaped mail API: `POST /emails` with `Authorization: Bearer <key>` and
//! `{from, to: [..], subject, text?, html?}` answers `200 {"id": "..."}`. Errors use Resend's
//! shape `{"statusCode", "name", "message"}`: 401 without the right key, 422 for a message
//! Resend would refuse (no sender, recipient or subject; neither text nor html), 404 for any
//! other path.
//!
//! Tests read what was delivered to an address ([`FakeMail::delivered_to`]) and the token in
//! its link ([`FakeMail::token_in_link`]). [`FakeMail::fail_for`] makes every send to one
//! address answer 500 until [`FakeMail::recover`] (so one case's fault never touches the
//! mail of cases running beside it).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rand_core::RngCore;
use serde_json::{json, Value};

use super::{FakeResponse, FakeUpstream, Recorded};

/// One delivered message, as the API received it.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Delivered {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct Mailbox {
    delivered: Vec<Delivered>,
    failing: HashSet<String>,
}

/// The fake mail API.
pub struct FakeMail {
    upstream: FakeUpstream,
    mailbox: Arc<Mutex<Mailbox>>,
}

/// How long a test waits for mail the worker sends after its answer.
pub const MAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

fn error(status: u16, name: &str, message: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        &json!({ "statusCode": status, "name": name, "message": message }),
    )
}

#[allow(dead_code)]
impl FakeMail {
    /// Starts the fake on `address`, accepting `api_key`.
    pub fn start_on(api_key: &'static str, address: &str) -> Result<Self, String> {
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let state = Arc::clone(&mailbox);
        let upstream = FakeUpstream::start_on("mail", address, move |request: &Recorded| {
            if request.method != "POST" || request.path != "/emails" {
                return error(404, "not_found", "The requested endpoint does not exist.");
            }
            if request.header("authorization") != Some(&format!("Bearer {api_key}")) {
                return error(401, "missing_api_key", "API key is invalid");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return error(422, "validation_error", "Invalid JSON body");
            };
            let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            let to: Vec<String> = match &body["to"] {
                Value::String(one) => vec![one.clone()],
                Value::Array(many) => many
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            if text("from").is_empty() || to.is_empty() || text("subject").is_empty() {
                return error(422, "validation_error", "from, to and subject are required");
            }
            if text("text").is_empty() && text("html").is_empty() {
                return error(422, "validation_error", "text or html is required");
            }
            let mut mailbox = state.lock().unwrap();
            if to.iter().any(|address| mailbox.failing.contains(address)) {
                return error(500, "application_error", "injected failure");
            }
            let mut id = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut id);
            let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            mailbox.delivered.push(Delivered {
                id: id.clone(),
                from: text("from"),
                to,
                subject: text("subject"),
                text: text("text"),
                html: text("html"),
                idempotency_key: request.header("idempotency-key").map(str::to_owned),
            });
            FakeResponse::json(200, &json!({ "id": id }))
        })?;
        Ok(Self { upstream, mailbox })
    }

    /// The HTTP server underneath.
    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// Every message delivered to `address`, oldest first.
    pub fn delivered_to(&self, address: &str) -> Vec<Delivered> {
        let mailbox = self.mailbox.lock().unwrap();
        mailbox
            .delivered
            .iter()
            .filter(|m| m.to.iter().any(|to| to == address))
            .cloned()
            .collect()
    }

    /// The messages delivered to `address` once there are at least `count` (the worker sends
    /// mail after its answer), waiting up to [`MAIL_WAIT`]; what there is by then otherwise.
    pub fn wait_for(&self, address: &str, count: usize) -> Vec<Delivered> {
        let deadline = std::time::Instant::now() + MAIL_WAIT;
        loop {
            let delivered = self.delivered_to(address);
            if delivered.len() >= count || std::time::Instant::now() >= deadline {
                return delivered;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The token of the newest link `APP_URL + path + "?token="` delivered to `address`,
    /// waiting up to [`MAIL_WAIT`] for one to arrive.
    pub fn token_in_link(&self, address: &str, path: &str) -> Option<String> {
        let needle = format!("{path}?token=");
        let deadline = std::time::Instant::now() + MAIL_WAIT;
        loop {
            let found = self.delivered_to(address).iter().rev().find_map(|m| {
                let at = m.text.find(&needle)? + needle.len();
                let token: String = m.text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                Some(token)
            });
            if found.is_some() || std::time::Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Makes every send to `address` fail with 500 until [`Self::recover`].
    pub fn fail_for(&self, address: &str) {
        self.mailbox
            .lock()
            .unwrap()
            .failing
            .insert(address.to_owned());
    }

    /// Lets sends to `address` through again.
    pub fn recover(&self, address: &str) {
        self.mailbox.lock().unwrap().failing.remove(address);
    }
}
