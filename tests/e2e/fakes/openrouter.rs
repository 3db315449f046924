//! A fake of OpenRouter's API key management (provisioning keys) API under `/api/v1/keys`, in
//! the shapes OpenRouter documents:
//!
//! - `POST /api/v1/keys` creates a key and answers 201 with `{"data": KEY, "key": "sk-or-v1-…"}`;
//!   the plaintext key is only ever in this answer.
//! - `GET /api/v1/keys/{hash}` answers `{"data": KEY}`.
//! - `PATCH /api/v1/keys/{hash}` changes `name`, `disabled`, `limit`, `limit_reset` or
//!   `include_byok_in_limit` and answers `{"data": KEY}`.
//! - `DELETE /api/v1/keys/{hash}` answers `{"deleted": true}`.
//! - `GET /api/v1/keys?offset=N&include_disabled=true|false` answers `{"data": [KEY, …]}`: up
//!   to 100 live keys (OpenRouter's page; `offset` skips that many), disabled ones only when
//!   asked for. The fake keeps creation order; OpenRouter's docs speak of "the most recent
//!   100", and Tollgate reads every page, so the order does not matter to it.
//!
//! Every call needs `Authorization: Bearer <provisioning key>`. Errors are
//! `{"error": {"code": <status>, "message": "…"}}`: 401 without the right bearer, 400 for a
//! body OpenRouter would reject, 404 for an unknown or deleted key and for any other path.
//!
//! Tests read and steer the fake's state directly: [`FakeOpenRouter::key`] and friends show
//! what the worker created (deleted keys stay, flagged), [`FakeOpenRouter::set_usage`] plays
//! the spend OpenRouter would meter, and [`FakeOpenRouter::fail_next`] makes one particular
//! request fail without disturbing cases that run in parallel.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rand_core::RngCore;
use serde_json::{json, Map, Value};

use super::{FakeResponse, FakeUpstream, Fault, Recorded};

/// Where the key management API lives, below the base URL.
const KEYS_PATH: &str = "/api/v1/keys";

/// How many keys one list page holds.
const PAGE_SIZE: usize = 100;

/// The kinds of call the key management API answers, for [`FakeOpenRouter::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `POST /api/v1/keys`.
    Create,
    /// `GET /api/v1/keys/{hash}`.
    Get,
    /// `PATCH /api/v1/keys/{hash}`.
    Update,
    /// `DELETE /api/v1/keys/{hash}`.
    Delete,
    /// `GET /api/v1/keys`.
    List,
}

/// A key the fake has created, as tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeKey {
    /// The key's id in the API (64 lowercase hex digits).
    pub hash: String,
    /// The name it was created with or last renamed to.
    pub name: String,
    /// The plaintext key, `sk-or-v1-` and 64 lowercase hex digits.
    pub key: String,
    /// The spending limit in USD; `None` is unlimited.
    pub limit: Option<f64>,
    /// `"daily"`, `"weekly"` or `"monthly"`; `None` never resets.
    pub limit_reset: Option<String>,
    /// Whether bring-your-own-key usage counts against the limit.
    pub include_byok_in_limit: bool,
    /// The spend so far in USD, as set by [`FakeOpenRouter::set_usage`].
    pub usage: f64,
    /// Whether the key is disabled.
    pub disabled: bool,
    /// Whether the key was deleted through the API; deleted keys are kept, flagged, so tests
    /// can check that they were deleted.
    pub deleted: bool,
}

/// A key and what only the API shows of it.
struct StoredKey {
    key: FakeKey,
    created_at: String,
    updated_at: Option<String>,
}

/// A fault waiting for the first request of its kind that mentions its needle.
struct TargetedFault {
    call: Call,
    needle: String,
    fault: Fault,
}

#[derive(Default)]
struct OpenRouterState {
    /// Every key ever created, deleted ones included, in creation order.
    keys: Vec<StoredKey>,
    faults: Vec<TargetedFault>,
}

impl OpenRouterState {
    /// The live (not deleted) key with this hash.
    fn live(&mut self, hash: &str) -> Option<&mut StoredKey> {
        self.keys
            .iter_mut()
            .find(|k| k.key.hash == hash && !k.key.deleted)
    }
}

/// The fake OpenRouter: a [`FakeUpstream`] serving the key management API.
pub struct FakeOpenRouter {
    upstream: FakeUpstream,
    state: Arc<Mutex<OpenRouterState>>,
}

impl FakeOpenRouter {
    /// Starts the fake with no keys; every call must carry
    /// `Authorization: Bearer <provisioning_key>`.
    pub fn start(provisioning_key: &str) -> Self {
        Self::start_on(provisioning_key, "127.0.0.1:0").expect("bind the fake openrouter")
    }

    /// Like [`Self::start`], listening on `address`.
    pub fn start_on(provisioning_key: &str, address: &str) -> Result<Self, String> {
        let state = Arc::new(Mutex::new(OpenRouterState::default()));
        let upstream = {
            let state = Arc::clone(&state);
            let authorization = format!("Bearer {provisioning_key}");
            FakeUpstream::start_on("openrouter", address, move |request| {
                respond(request, &state, &authorization)
            })?
        };
        Ok(Self { upstream, state })
    }

    /// The underlying server, for `received()`, `inject()` and `base_url()` (the API's base
    /// URL is `<base_url>/api`).
    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// The key with this hash, also when it was deleted.
    pub fn key(&self, hash: &str) -> Option<FakeKey> {
        let state = self.state.lock().unwrap();
        state
            .keys
            .iter()
            .find(|k| k.key.hash == hash)
            .map(|k| k.key.clone())
    }

    /// The key whose plaintext is `key`, also when it was deleted.
    pub fn key_by_plaintext(&self, key: &str) -> Option<FakeKey> {
        let state = self.state.lock().unwrap();
        state
            .keys
            .iter()
            .find(|k| k.key.key == key)
            .map(|k| k.key.clone())
    }

    /// Every key, live or deleted, whose name contains `needle`, in creation order.
    pub fn keys_named(&self, needle: &str) -> Vec<FakeKey> {
        let state = self.state.lock().unwrap();
        state
            .keys
            .iter()
            .filter(|k| k.key.name.contains(needle))
            .map(|k| k.key.clone())
            .collect()
    }

    /// Sets the key's spend in USD (total, daily, weekly and monthly alike), which moves its
    /// `limit_remaining`. Panics when no key has this hash or `usd` is not a finite,
    /// non-negative amount.
    pub fn set_usage(&self, hash: &str, usd: f64) {
        assert!(
            usd.is_finite() && usd >= 0.0,
            "usage is a non-negative amount: {usd}"
        );
        let mut state = self.state.lock().unwrap();
        let stored = state
            .keys
            .iter_mut()
            .find(|k| k.key.hash == hash)
            .unwrap_or_else(|| panic!("the fake OpenRouter has no key {hash}"));
        stored.key.usage = usd;
    }

    /// Creates `count` keys named `name` without going through the API, as another
    /// application sharing the OpenRouter account would (so that listing needs several
    /// pages); returns them.
    pub fn add_keys(&self, name: &str, count: usize) -> Vec<FakeKey> {
        let mut state = self.state.lock().unwrap();
        (0..count)
            .map(|_| {
                let stored = new_key(name.to_owned(), None, None, false);
                let key = stored.key.clone();
                state.keys.push(stored);
                key
            })
            .collect()
    }

    /// Makes the first request of kind `call` whose path or body (as UTF-8) contains `needle`
    /// fail with `fault`, leaving every other request alone (an empty needle matches any
    /// request of that kind). `Fault::Status(s)` answers `s` in OpenRouter's error shape and
    /// changes nothing; `Fault::Delay(d)` waits `d`, then handles the request normally. Faults
    /// queue up; each is used once, and a request uses at most one.
    pub fn fail_next(&self, call: Call, needle: &str, fault: Fault) {
        self.state.lock().unwrap().faults.push(TargetedFault {
            call,
            needle: needle.to_owned(),
            fault,
        });
    }
}

fn respond(
    request: &Recorded,
    state: &Mutex<OpenRouterState>,
    authorization: &str,
) -> FakeResponse {
    let Some((call, hash)) = route(request) else {
        return error(404, "Not Found");
    };
    match take_fault(state, call, request) {
        Some(Fault::Status(status)) => return error(status, "injected fault"),
        Some(Fault::Delay(delay)) => std::thread::sleep(delay),
        None => {}
    }
    match request.header("authorization") {
        None => return error(401, "No auth credentials found"),
        Some(given) if given != authorization => return error(401, "Invalid credentials"),
        Some(_) => {}
    }
    let mut state = state.lock().unwrap();
    match call {
        Call::Create => create(request, &mut state),
        Call::List => list(request, &state),
        Call::Get => match state.live(hash) {
            Some(stored) => FakeResponse::json(200, &json!({ "data": key_object(stored) })),
            None => key_not_found(),
        },
        Call::Update => update(request, &mut state, hash),
        Call::Delete => match state.live(hash) {
            Some(stored) => {
                stored.key.deleted = true;
                FakeResponse::json(200, &json!({ "deleted": true }))
            }
            None => key_not_found(),
        },
    }
}

/// The call a request makes and the key hash in its path (empty for the collection), or
/// `None` for a path or method the API does not have.
fn route(request: &Recorded) -> Option<(Call, &str)> {
    let rest = request.path.strip_prefix(KEYS_PATH)?;
    match (request.method.as_str(), rest) {
        ("POST", "" | "/") => Some((Call::Create, "")),
        ("GET", "" | "/") => Some((Call::List, "")),
        (method, rest) => {
            let hash = rest
                .strip_prefix('/')
                .filter(|hash| !hash.is_empty() && !hash.contains('/'))?;
            let call = match method {
                "GET" => Call::Get,
                "PATCH" => Call::Update,
                "DELETE" => Call::Delete,
                _ => return None,
            };
            Some((call, hash))
        }
    }
}

/// Removes and returns the first queued fault meant for this request.
fn take_fault(state: &Mutex<OpenRouterState>, call: Call, request: &Recorded) -> Option<Fault> {
    let body = std::str::from_utf8(&request.body).unwrap_or("");
    let mut state = state.lock().unwrap();
    let index = state.faults.iter().position(|f| {
        f.call == call && (request.path.contains(&f.needle) || body.contains(&f.needle))
    })?;
    Some(state.faults.remove(index).fault)
}

fn create(request: &Recorded, state: &mut OpenRouterState) -> FakeResponse {
    let body = match json_object(&request.body) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let name = match body.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(_) => return error(400, "name must be a string"),
        None => return error(400, "name is required"),
    };
    let limit = match limit_field(&body) {
        Ok(limit) => limit.flatten(),
        Err(answer) => return answer,
    };
    let limit_reset = match limit_reset_field(&body) {
        Ok(limit_reset) => limit_reset.flatten(),
        Err(answer) => return answer,
    };
    let include_byok_in_limit = match bool_field(&body, "include_byok_in_limit") {
        Ok(include) => include.unwrap_or(false),
        Err(answer) => return answer,
    };
    if body.get("label").is_some_and(|label| !label.is_string()) {
        return error(400, "label must be a string");
    }
    let stored = new_key(name, limit, limit_reset, include_byok_in_limit);
    let answer = json!({ "data": key_object(&stored), "key": stored.key.key });
    state.keys.push(stored);
    FakeResponse::json(201, &answer)
}

/// A fresh live key with no spend.
fn new_key(
    name: String,
    limit: Option<f64>,
    limit_reset: Option<String>,
    include_byok_in_limit: bool,
) -> StoredKey {
    StoredKey {
        key: FakeKey {
            hash: random_hex(),
            name,
            key: format!("sk-or-v1-{}", random_hex()),
            limit,
            limit_reset,
            include_byok_in_limit,
            usage: 0.0,
            disabled: false,
            deleted: false,
        },
        created_at: now_rfc3339(),
        updated_at: None,
    }
}

fn update(request: &Recorded, state: &mut OpenRouterState, hash: &str) -> FakeResponse {
    let Some(stored) = state.live(hash) else {
        return key_not_found();
    };
    let body = match json_object(&request.body) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    // Everything is checked before anything changes: a rejected update changes nothing.
    let name = match body.get("name") {
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return error(400, "name must be a string"),
        None => None,
    };
    let disabled = match bool_field(&body, "disabled") {
        Ok(disabled) => disabled,
        Err(answer) => return answer,
    };
    let limit = match limit_field(&body) {
        Ok(limit) => limit,
        Err(answer) => return answer,
    };
    let limit_reset = match limit_reset_field(&body) {
        Ok(limit_reset) => limit_reset,
        Err(answer) => return answer,
    };
    let include_byok_in_limit = match bool_field(&body, "include_byok_in_limit") {
        Ok(include) => include,
        Err(answer) => return answer,
    };
    let key = &mut stored.key;
    if let Some(name) = name {
        key.name = name;
    }
    if let Some(disabled) = disabled {
        key.disabled = disabled;
    }
    if let Some(limit) = limit {
        key.limit = limit;
    }
    if let Some(limit_reset) = limit_reset {
        key.limit_reset = limit_reset;
    }
    if let Some(include) = include_byok_in_limit {
        key.include_byok_in_limit = include;
    }
    stored.updated_at = Some(now_rfc3339());
    FakeResponse::json(200, &json!({ "data": key_object(stored) }))
}

fn list(request: &Recorded, state: &OpenRouterState) -> FakeResponse {
    let mut offset = 0;
    let mut include_disabled = false;
    for pair in request.query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "offset" => match value.parse::<usize>() {
                Ok(parsed) => offset = parsed,
                Err(_) => return error(400, "offset must be a non-negative integer"),
            },
            "include_disabled" => match value {
                "true" => include_disabled = true,
                "false" => include_disabled = false,
                _ => return error(400, "include_disabled must be true or false"),
            },
            _ => {}
        }
    }
    let page: Vec<Value> = state
        .keys
        .iter()
        .filter(|k| !k.key.deleted && (include_disabled || !k.key.disabled))
        .skip(offset)
        .take(PAGE_SIZE)
        .map(key_object)
        .collect();
    FakeResponse::json(200, &json!({ "data": page }))
}

/// The body as a JSON object, or the 400 OpenRouter answers when it is not one.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, FakeResponse> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(error(400, "the body must be a JSON object")),
        Err(_) => Err(error(400, "the body must be valid JSON")),
    }
}

/// `limit`: absent (`None`), `null` (`Some(None)`) or a non-negative number.
fn limit_field(body: &Map<String, Value>) -> Result<Option<Option<f64>>, FakeResponse> {
    match body.get("limit") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(limit)) => match limit.as_f64() {
            Some(limit) if limit >= 0.0 => Ok(Some(Some(limit))),
            _ => Err(error(400, "limit must be a non-negative number")),
        },
        Some(_) => Err(error(400, "limit must be a number or null")),
    }
}

/// `limit_reset`: absent (`None`), `null` (`Some(None)`) or one of the documented periods.
fn limit_reset_field(body: &Map<String, Value>) -> Result<Option<Option<String>>, FakeResponse> {
    match body.get("limit_reset") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(period))
            if matches!(period.as_str(), "daily" | "weekly" | "monthly") =>
        {
            Ok(Some(Some(period.clone())))
        }
        Some(_) => Err(error(
            400,
            "limit_reset must be null, \"daily\", \"weekly\" or \"monthly\"",
        )),
    }
}

/// A boolean field, `None` when absent.
fn bool_field(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, FakeResponse> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(error(400, &format!("{name} must be a boolean"))),
    }
}

/// A key as the API shows it. The fake has no time windows, so the daily, weekly and monthly
/// usage are the total; bring-your-own-key usage is always zero.
fn key_object(stored: &StoredKey) -> Value {
    let key = &stored.key;
    json!({
        "hash": key.hash,
        "name": key.name,
        "label": masked(&key.key),
        "disabled": key.disabled,
        "limit": key.limit,
        "limit_remaining": key.limit.map(|limit| (limit - key.usage).max(0.0)),
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": key.include_byok_in_limit,
        "usage": key.usage,
        "usage_daily": key.usage,
        "usage_weekly": key.usage,
        "usage_monthly": key.usage,
        "byok_usage": 0,
        "byok_usage_daily": 0,
        "byok_usage_weekly": 0,
        "byok_usage_monthly": 0,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    })
}

/// The key's `label`: its first 12 characters (`sk-or-v1-` and three hex digits), `...` and
/// its last three, like OpenRouter's `sk-or-v1-116...0ce`.
fn masked(key: &str) -> String {
    let (head, tail) = (&key[..12], &key[key.len() - 3..]);
    format!("{head}...{tail}")
}

fn key_not_found() -> FakeResponse {
    error(404, "Key not found")
}

/// OpenRouter's error envelope.
fn error(status: u16, message: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        &json!({ "error": { "code": status, "message": message } }),
    )
}

/// 32 random bytes as 64 lowercase hex digits.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now as RFC 3339 in UTC to the second, like `2025-08-24T10:30:00Z`.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
