//! The world every end-to-end test runs in: the worker under `wrangler dev`, the fake
//! upstreams it is configured to call, and an HTTP client.

mod client;
pub mod identity;
pub mod plans;
pub mod snapshot;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

// The fakes program and the benchmark share the harness but send no bursts.
#[allow(unused_imports)]
pub use client::all_at_once;
pub use client::{header_value, Call, Reply};

use crate::fakes::Fakes;
use worker::WorkerProcess;

/// The running worker and its fakes, shared by every test.
pub struct World {
    worker: WorkerProcess,
    /// The fake upstream services the worker calls.
    pub fakes: Fakes,
    agent: ureq::Agent,
    /// Requests and D1 reads hold this shared; the few D1 writes tests make (setting up a
    /// state no endpoint makes) hold it exclusively: a worker write landing during one fails
    /// with SQLITE_BUSY, which is an artefact of two writers on one local file, not a bug.
    /// Reads need no exclusion: local D1 is in WAL mode, where readers never block a writer.
    gate: Arc<RwLock<()>>,
    /// The worker's log file.
    log: Arc<std::path::PathBuf>,
}

impl World {
    /// Starts the fakes, then the worker configured to call them; waits until it answers.
    /// The admin every case shares (`ADMIN_CLERK_ID`) is put on a paid plan, which has no
    /// rate limit in the tests' catalog: its calls from every case at once are one user's,
    /// and on the free plan they would share its 100 requests a minute.
    pub fn start() -> Result<Self, String> {
        let world = Self::start_without(&[])?;
        let event = identity::clerk_user_event(
            "user.created",
            identity::ADMIN_CLERK_ID,
            identity::now() * 1000,
            serde_json::json!({ "plan": "premium" }),
        );
        let reply = world.clerk_webhook(&identity::unique("msg_admin_"), &event);
        if reply.status != 200 {
            return Err(format!(
                "the admin's plan: the Clerk webhook answered {}: {}",
                reply.status, reply.body
            ));
        }
        Ok(world)
    }

    /// Like [`Self::start`], but with these settings left unset (to see what a deployment
    /// without them answers).
    pub fn start_without(unset: &[&str]) -> Result<Self, String> {
        Self::start_configured(unset, &[])
    }

    /// Like [`Self::start`], but with these settings set to these values (to see what a
    /// deployment with a bad setting answers).
    pub fn start_with(set: &[(&'static str, &str)]) -> Result<Self, String> {
        Self::start_configured(&[], set)
    }

    fn start_configured(unset: &[&str], set: &[(&'static str, &str)]) -> Result<Self, String> {
        let fakes = Fakes::start();
        // The fake Stripe sells the catalog's prices and the platform tests' tier.
        for (price, cents) in plans::stripe_prices()
            .into_iter()
            .chain([plans::TIER_PRICE])
        {
            fakes.stripe.add_price(price, cents);
        }
        let mut vars = BTreeMap::new();
        vars.insert("ENVIRONMENT", "e2e".to_owned());
        vars.insert(
            "CORS_ALLOWED_ORIGINS",
            format!("http://localhost:5173,{}", ALLOWED_EXTENSION_ORIGIN),
        );
        for (name, url) in fakes.base_url_vars() {
            vars.insert(name, url);
        }
        for (name, value) in identity::worker_vars()
            .into_iter()
            .chain(plans::worker_vars())
        {
            vars.insert(name, value);
        }
        for (name, value) in provider_vars().into_iter().chain(billing_vars()) {
            vars.insert(name, value);
        }
        vars.retain(|name, _| !unset.contains(name));
        for (name, value) in set {
            vars.insert(name, (*value).to_owned());
        }
        let worker = WorkerProcess::start(&vars)?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(60))
            // Redirects are answers to check (OAuth), not to follow.
            .redirects(0)
            .build();
        Ok(Self {
            log: Arc::new(worker.log_path().to_owned()),
            worker,
            fakes,
            agent,
            gate: Arc::new(RwLock::new(())),
        })
    }

    /// A request to the worker.
    pub fn call(&self, method: &str, path: &str) -> Call {
        Call::new(
            &self.agent,
            &self.gate,
            &self.log,
            method,
            &format!("{}{}", self.worker.base_url(), path),
        )
    }

    /// The worker's `host:port`, for tests that speak HTTP/1.1 by hand.
    pub fn address(&self) -> &str {
        self.worker
            .base_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path).send()
    }

    /// Rows from the worker's local D1 (the SQLite file `wrangler dev` keeps).
    pub fn d1_query(&self, sql: &str) -> Vec<serde_json::Value> {
        self.d1_query_all(sql).swap_remove(0)
    }

    /// Rows of several `;`-separated statements, run in one transaction.
    pub fn d1_query_all(&self, sql: &str) -> Vec<Vec<serde_json::Value>> {
        if only_reads(sql) {
            let _shared = self
                .gate
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.worker.d1_query_all(sql)
        } else {
            let _exclusive = self
                .gate
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.worker.d1_query_all(sql)
        }
    }

    /// The worker's log so far.
    pub fn worker_log(&self) -> String {
        self.worker.log()
    }

    /// The worker's log once it holds every one of `needles`, waiting up to 5 s for them:
    /// a line is written as the request ends and reaches the log through wrangler a moment
    /// after the answer. Returns the log as it is then, holding them or not.
    pub fn worker_log_with(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = self.worker.log();
            if needles.iter().all(|needle| log.contains(needle))
                || std::time::Instant::now() >= deadline
            {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Prints the end of the worker's log (used when tests fail).
    pub fn print_worker_log_tail(&self, lines: usize) {
        let log = self.worker.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        eprintln!("---- last {lines} lines of the worker log ----");
        for line in tail.into_iter().rev() {
            eprintln!("{line}");
        }
    }
}

/// The key the worker seals provider keys with (base64url of 32 bytes; a test value).
pub const KEY_ENCRYPTION_KEY: &str = "F-znvLCk2PJJ4bI7IEGAxtNhjEvyb1coz-fxWKYM7P4";

/// An earlier encryption key, listed in `KEY_ENCRYPTION_KEY_PREVIOUS`: what it sealed still
/// opens, and the sweep reseals it under the current key.
pub const PREVIOUS_KEY_ENCRYPTION_KEY: &str = "nwS0Mv3dIwbmkbWRqyBddz0tiOk_U1rH_onHPYHg-2s";

/// How long one OpenRouter call may take in the tests (the timeout case waits this long).
pub const OPENROUTER_TIMEOUT_MS: u64 = 1500;

/// Provider key settings: sealing, a short OpenRouter timeout, and retries of failed key
/// deletions due at once, so a test can trigger the sweep right after a failure.
fn provider_vars() -> Vec<(&'static str, String)> {
    vec![
        ("KEY_ENCRYPTION_KEY", KEY_ENCRYPTION_KEY.to_owned()),
        (
            "KEY_ENCRYPTION_KEY_PREVIOUS",
            PREVIOUS_KEY_ENCRYPTION_KEY.to_owned(),
        ),
        ("OPENROUTER_TIMEOUT_MS", OPENROUTER_TIMEOUT_MS.to_string()),
        ("KEY_DELETE_RETRY_SECS", "0".to_owned()),
    ]
}

/// Where Checkout and the Billing Portal send the customer back to.
pub const BILLING_RETURN_URL: &str = "http://localhost:5173/billing";

/// Billing settings: return URLs on the allowed web app origin, a short Stripe timeout.
fn billing_vars() -> Vec<(&'static str, String)> {
    vec![
        (
            "STRIPE_SUCCESS_URL",
            format!("{BILLING_RETURN_URL}/success"),
        ),
        ("STRIPE_CANCEL_URL", format!("{BILLING_RETURN_URL}/cancel")),
        ("STRIPE_PORTAL_RETURN_URL", BILLING_RETURN_URL.to_owned()),
        ("STRIPE_TIMEOUT_MS", "2000".to_owned()),
        // One line each: the env file holds one setting per line.
        ("TOKEN_PACKS", one_line(TOKEN_PACKS)),
        ("SOCIAL_TASKS", one_line(SOCIAL_TASKS)),
    ]
}

/// JSON on one line.
fn one_line(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .expect("valid JSON")
        .to_string()
}

/// The token packs the worker sells in the tests (prices given inline to Checkout).
pub const TOKEN_PACKS: &str = r#"[
  {"id": "starter", "name": "Starter", "tokens": 1000, "price_cents": 500, "currency": "usd", "stripe_price_id": null},
  {"id": "pro", "name": "Pro", "tokens": 12000, "price_cents": 5000, "currency": "usd", "stripe_price_id": null}
]"#;

/// The social tasks in the tests.
pub const SOCIAL_TASKS: &str = r#"[
  {"id": "follow-x", "title": "Follow us on X", "platform": "x", "url": "https://x.com/tollgate", "reward": 50},
  {"id": "join-discord", "title": "Join our Discord", "platform": "discord", "url": "https://discord.gg/tollgate", "reward": 25}
]"#;

/// A Chrome extension origin on the test allow-list.
pub const ALLOWED_EXTENSION_ORIGIN: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

/// Whether every `;`-separated part of `sql` is a query (`SELECT`, `WITH`). A `;` inside a
/// string literal makes a part that is neither, which counts as a write: the safe side.
fn only_reads(sql: &str) -> bool {
    sql.split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .all(|part| {
            let word: String = part
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect::<String>()
                .to_ascii_uppercase();
            word == "SELECT" || word == "WITH"
        })
}
