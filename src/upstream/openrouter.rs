//! OpenRouter's key provisioning API (`/api/v1/keys`), called with the provisioning key:
//! create a key with a USD limit, read its usage, list keys, disable one, delete one.
//!
//! Amounts are USD decimals on the wire and integer micro-USD here. Every failure is
//! `upstream_error` whose detail (status, OpenRouter's error message) is logged, never
//! returned; the plaintext of a key is never part of a detail.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Headers, Method, Request, RequestInit};

use crate::error::AppError;
use crate::provider_keys::rules::{micros_from_usd, usd};

const SERVICE: &str = "openrouter";

/// A client of the provisioning API.
pub struct OpenRouter<'a> {
    /// `OPENROUTER_API_URL`, e.g. `https://openrouter.ai/api`.
    pub base_url: &'a str,
    /// `PROVISIONING_API_KEY`.
    pub provisioning_key: &'a str,
    /// How long one call may take.
    pub timeout: Duration,
}

/// What OpenRouter says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id in the API (a hex hash); never the key itself.
    pub hash: String,
    /// OpenRouter's masked form of the key (`sk-or-v1-abc...xyz`).
    pub label: String,
    pub disabled: bool,
    /// The USD limit, in micro-USD (`None`: unlimited).
    pub limit: Option<i64>,
    /// What is left of the limit, in micro-USD (`None`: unlimited).
    pub limit_remaining: Option<i64>,
    /// Cumulative spend, in micro-USD.
    pub usage: i64,
}

/// A key just created: its plaintext exists only in this answer.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: String,
    pub info: KeyInfo,
}

#[derive(Deserialize)]
struct WireKey {
    hash: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    disabled: bool,
    limit: Option<f64>,
    limit_remaining: Option<f64>,
    #[serde(default)]
    usage: f64,
}

/// A key as the list shows it: enough to find keys by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedKey {
    /// The key's id in the API.
    pub hash: String,
    /// The name it was created with.
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
struct ListPage {
    data: Vec<ListedKey>,
}

/// How many keys OpenRouter returns per list page (`offset` pages through the rest).
pub const LIST_PAGE_SIZE: usize = 100;

/// A create that failed, and whether the key may exist at OpenRouter anyway.
#[derive(Debug)]
pub struct CreateFailed {
    pub error: AppError,
    /// The call timed out, the connection failed, OpenRouter answered 5xx or an answer that
    /// does not parse: the key may have been created. A 4xx refusal created nothing.
    pub maybe_created: bool,
}

#[derive(Deserialize)]
struct Envelope {
    data: WireKey,
    #[serde(default)]
    key: Option<String>,
}

impl<'a> OpenRouter<'a> {
    /// Creates a key named `name` with a limit of `limit` micro-USD, reset `limit_reset`
    /// (`daily`, `weekly`, `monthly`; `None` sends no reset) (`POST /v1/keys`; BYOK usage is
    /// kept out of the limit).
    pub async fn create_key(
        &self,
        name: &str,
        limit: i64,
        limit_reset: Option<&str>,
    ) -> Result<CreatedKey, CreateFailed> {
        const WHAT: &str = "POST /v1/keys";
        let mut body = json!({ "name": name, "limit": usd(limit), "include_byok_in_limit": false });
        if let Some(reset) = limit_reset {
            body["limit_reset"] = json!(reset);
        }
        let maybe = |error| CreateFailed {
            error,
            maybe_created: true,
        };
        let (status, text) = self
            .call(Method::Post, "/v1/keys", Some(&body))
            .await
            .map_err(maybe)?;
        if !(200..=299).contains(&status) {
            return Err(CreateFailed {
                error: failure(WHAT, status, &text),
                maybe_created: !(400..=499).contains(&status),
            });
        }
        let envelope = parse::<Envelope>(WHAT, &text).map_err(maybe)?;
        let key = envelope
            .key
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| maybe(malformed(WHAT, "no `key` in the answer")))?;
        Ok(CreatedKey {
            key,
            info: info(WHAT, envelope.data).map_err(maybe)?,
        })
    }

    /// One page of keys, disabled ones included (`GET /v1/keys?offset=N`); a page shorter
    /// than [`LIST_PAGE_SIZE`] is the last.
    pub async fn list_keys(&self, offset: usize) -> Result<Vec<ListedKey>, AppError> {
        const WHAT: &str = "GET /v1/keys";
        let path = format!("/v1/keys?offset={offset}&include_disabled=true");
        let (status, text) = self.call(Method::Get, &path, None).await?;
        if !(200..=299).contains(&status) {
            return Err(failure(WHAT, status, &text));
        }
        Ok(parse::<ListPage>(WHAT, &text)?.data)
    }

    /// Reads a key (`GET /v1/keys/{hash}`); `None` if OpenRouter does not know it.
    pub async fn get_key(&self, hash: &str) -> Result<Option<KeyInfo>, AppError> {
        let path = key_path(hash)?;
        let (status, text) = self.call(Method::Get, &path, None).await?;
        match status {
            404 => Ok(None),
            200..=299 => {
                let what = "GET /v1/keys/{hash}";
                Ok(Some(info(what, parse::<Envelope>(what, &text)?.data)?))
            }
            _ => Err(failure("GET /v1/keys/{hash}", status, &text)),
        }
    }

    /// Disables a key so it stops working at once (`PATCH /v1/keys/{hash}`); `false` if
    /// OpenRouter does not know it.
    pub async fn disable_key(&self, hash: &str) -> Result<bool, AppError> {
        let path = key_path(hash)?;
        let body = json!({ "disabled": true });
        let (status, text) = self.call(Method::Patch, &path, Some(&body)).await?;
        match status {
            404 => Ok(false),
            200..=299 => Ok(true),
            _ => Err(failure("PATCH /v1/keys/{hash}", status, &text)),
        }
    }

    /// Deletes a key (`DELETE /v1/keys/{hash}`). A key OpenRouter no longer knows counts as
    /// deleted, so a retried deletion succeeds.
    pub async fn delete_key(&self, hash: &str) -> Result<(), AppError> {
        let path = key_path(hash)?;
        let (status, text) = self.call(Method::Delete, &path, None).await?;
        match status {
            404 | 200..=299 => Ok(()),
            _ => Err(failure("DELETE /v1/keys/{hash}", status, &text)),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), AppError> {
        let headers = Headers::new();
        headers.set(
            "Authorization",
            &format!("Bearer {}", self.provisioning_key),
        )?;
        headers.set("Accept", "application/json")?;
        if body.is_some() {
            headers.set("Content-Type", "application/json")?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(body) = body {
            init.with_body(Some(body.to_string().into()));
        }
        let url = format!("{}{path}", self.base_url);
        let req = Request::new_with_init(&url, &init)?;
        let resp = super::send_within(SERVICE, req, self.timeout).await?;
        let status = resp.status_code();
        Ok((status, super::text(SERVICE, resp).await?))
    }
}

/// The path of one key; refuses anything but a plain hex hash, so a stored value can never
/// steer the request elsewhere.
fn key_path(hash: &str) -> Result<String, AppError> {
    if hash.is_empty() || hash.len() > 128 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("a key hash", "is not hex"));
    }
    Ok(format!("/v1/keys/{hash}"))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, AppError> {
    serde_json::from_str(text).map_err(|e| malformed(what, &format!("unexpected answer: {e}")))
}

fn info(what: &str, wire: WireKey) -> Result<KeyInfo, AppError> {
    let amount = |name: &str, v: f64| {
        micros_from_usd(v)
            .filter(|m| *m >= 0)
            .ok_or_else(|| malformed(what, &format!("`{name}` is not an amount: {v}")))
    };
    Ok(KeyInfo {
        limit: wire.limit.map(|v| amount("limit", v)).transpose()?,
        limit_remaining: wire
            .limit_remaining
            .map(|v| amount("limit_remaining", v.max(0.0)))
            .transpose()?,
        usage: amount("usage", wire.usage)?,
        label: wire.label.unwrap_or_default(),
        disabled: wire.disabled,
        hash: {
            key_path(&wire.hash)?;
            wire.hash
        },
    })
}

fn malformed(what: &str, problem: &str) -> AppError {
    AppError::Upstream {
        service: SERVICE,
        detail: format!("{what}: {problem}"),
    }
}

/// An error answer; OpenRouter's message (`{"error": {"code", "message"}}`, or a flat
/// `{"message"}`) goes to the log only.
fn failure(what: &str, status: u16, text: &str) -> AppError {
    AppError::Upstream {
        service: SERVICE,
        detail: format!("{what} answered {status}: {}", super::error_message(text)),
    }
}
