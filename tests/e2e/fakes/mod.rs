//! Local fakes of the upstream services. Each is a real HTTP server on a loopback port that
//! answers like the documented API, records what it received, and can be told to fail.
//!
//! This is the shared skeleton: [`FakeUpstream`] serves a `Responder`; the service-specific
//! behaviour is added per service as the features that call them land: Clerk's JWKS, session
//! and user metadata Backend API are in [`clerk`], OpenRouter's key management (provisioning)
//! API is in [`openrouter`], Stripe's customers, Checkout and portal sessions and
//! subscriptions (and the webhook Events it sends) are in [`stripe`].

mod clerk;
mod elevenlabs;
mod mail;
mod model;
mod openrouter;
mod receiver;
mod stripe;

pub use clerk::FakeClerk;
#[allow(unused_imports)]
pub use elevenlabs::{audio_for, FakeElevenLabs};
pub use mail::FakeMail;
#[allow(unused_imports)]
pub use model::{FakeModel, ModelFault};
pub use openrouter::FakeOpenRouter;
#[allow(unused_imports)]
pub use receiver::FakeReceiver;
pub use stripe::FakeStripe;
// The load benchmark includes this module too and does not sign Stripe events.
#[allow(unused_imports)]
pub use stripe::sign as stripe_signature;
// The load benchmark includes this module too and uses neither.
#[allow(unused_imports)]
pub use openrouter::{Call, FakeKey};

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The raw query string, without `?`.
    #[allow(dead_code)]
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::harness::header_value(&self.headers, name)
    }
}

/// What a fake answers.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers to send besides `Content-Type`.
    pub headers: Vec<(&'static str, String)>,
}

impl FakeResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }
}

/// A fault to inject into the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a generic JSON error body.
    Status(u16),
    /// Wait this long before answering normally (to trigger the worker's timeouts).
    Delay(Duration),
}

type Responder = dyn Fn(&Recorded) -> FakeResponse + Send + Sync;

#[derive(Default)]
struct State {
    received: Vec<Recorded>,
    faults: Vec<Fault>,
}

/// One fake service on a loopback port.
pub struct FakeUpstream {
    name: &'static str,
    base_url: String,
    server: Arc<tiny_http::Server>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    /// Starts serving `responder` on `address`: a free loopback port (`127.0.0.1:0`) in the
    /// tests, a fixed one for the standalone fakes of `scripts/dev --fakes`.
    pub fn start_on(
        name: &'static str,
        address: &str,
        responder: impl Fn(&Recorded) -> FakeResponse + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let server = Arc::new(
            tiny_http::Server::http(address).map_err(|e| format!("{name}: bind {address}: {e}"))?,
        );
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let responder: Arc<Responder> = Arc::new(responder);
        let thread = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let state = Arc::clone(&state);
                    let responder = Arc::clone(&responder);
                    std::thread::spawn(move || serve(request, &state, &*responder));
                }
            })
        };
        Ok(Self {
            name,
            base_url: format!("http://127.0.0.1:{port}"),
            server,
            state,
            thread: Some(thread),
        })
    }

    /// The service's name (`clerk`, `stripe`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where the fake listens.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many requests had this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .received
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// Makes the next requests fail or stall, one fault per request, in order.
    pub fn inject(&self, faults: &[Fault]) {
        self.state.lock().unwrap().faults.extend_from_slice(faults);
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut request: tiny_http::Request, state: &Mutex<State>, responder: &Responder) {
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let recorded = Recorded {
        method: request.method().as_str().to_ascii_uppercase(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect(),
        body,
    };
    let fault = {
        let mut state = state.lock().unwrap();
        state.received.push(recorded.clone());
        (!state.faults.is_empty()).then(|| state.faults.remove(0))
    };
    let answer = match fault {
        Some(Fault::Status(status)) => FakeResponse::json(
            status,
            &serde_json::json!({ "error": { "message": "injected fault", "type": "api_error" } }),
        ),
        Some(Fault::Delay(delay)) => {
            std::thread::sleep(delay);
            responder(&recorded)
        }
        None => responder(&recorded),
    };
    let header =
        tiny_http::Header::from_bytes("Content-Type", answer.content_type).expect("a valid header");
    let mut response = tiny_http::Response::from_data(answer.body)
        .with_status_code(answer.status)
        .with_header(header);
    for (name, value) in &answer.headers {
        if let Ok(extra) = tiny_http::Header::from_bytes(*name, value.as_bytes()) {
            response.add_header(extra);
        }
    }
    let _ = request.respond(response);
}

/// The Clerk secret key the worker is configured with; the fake Clerk requires it.
pub const CLERK_SECRET_KEY: &str = "sk_test_tollgate_fake";

/// The issuer (`iss`) of the fake Clerk instance's session tokens, as the worker is configured
/// to expect it.
pub const CLERK_ISSUER: &str = "https://clerk.tollgate.test";

/// The issuer (`iss`) of the fake end-user Clerk instance's session tokens (the platforms'
/// end users), as the worker is configured to expect it (`END_USER_CLERK_ISSUER`).
pub const END_USER_CLERK_ISSUER: &str = "https://clerk.end-users.tollgate.test";

/// The end-user Clerk instance's secret key (its Backend API is never called by the worker).
pub const END_USER_CLERK_SECRET_KEY: &str = "sk_test_tollgate_fake_end_users";

/// The OpenRouter provisioning key the worker is configured with; the fake OpenRouter requires
/// it.
pub const OPENROUTER_PROVISIONING_KEY: &str = "sk-or-prov-tollgate-fake";

/// The Stripe secret key the worker is configured with; the fake Stripe requires it.
pub const STRIPE_SECRET_KEY: &str = "sk_test_tollgate_fake";

/// The signing secret of the worker's Stripe webhook endpoint; sign test events with it
/// (`stripe_signature(payload, STRIPE_WEBHOOK_SECRET, timestamp)`).
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_tollgate_e2e_stripe";

/// The signing secret of another Stripe endpoint (or the one being rotated out), listed before
/// [`STRIPE_WEBHOOK_SECRET`] in the worker's `STRIPE_WEBHOOK_SECRET`: either one verifies.
pub const STRIPE_OTHER_WEBHOOK_SECRET: &str = "whsec_tollgate_e2e_stripe_other_endpoint";

/// The mail API key the worker is configured with; the fake mail API requires it.
pub const MAIL_API_KEY: &str = "re_tollgate_fake";

/// The model the worker uses by default (`CHAT_MODEL`), and another it offers.
pub const CHAT_MODEL: &str = "fakeai/small";
pub const CHAT_OTHER_MODEL: &str = "fakeai/large";

/// The fakes the worker is configured to call.
pub struct Fakes {
    pub clerk: FakeClerk,
    /// A second Clerk instance, the platforms' end users', with a signing key of its own (on a
    /// free port).
    pub end_user_clerk: FakeClerk,
    pub openrouter: FakeOpenRouter,
    pub stripe: FakeStripe,
    /// A Resend-shaped mail API (on a free port).
    pub mail: FakeMail,
    /// An OpenAI-compatible model API (on a free port).
    pub model: FakeModel,
    /// ElevenLabs' text to speech (on a free port).
    pub elevenlabs: FakeElevenLabs,
}

impl Fakes {
    /// Starts every fake. Each answers an unknown path with 404 in its service's error shape,
    /// which is what the real API says.
    pub fn start() -> Self {
        Self::start_on(["127.0.0.1:0"; 3]).expect("bind the fakes")
    }

    /// Like [`Self::start`], on these addresses: Clerk's, OpenRouter's, Stripe's.
    pub fn start_on([clerk, openrouter, stripe]: [&str; 3]) -> Result<Self, String> {
        Ok(Self {
            clerk: FakeClerk::start_on(CLERK_SECRET_KEY, clerk)?,
            end_user_clerk: FakeClerk::start_named(
                "clerk-end-users",
                END_USER_CLERK_SECRET_KEY,
                "127.0.0.1:0",
            )?,
            openrouter: FakeOpenRouter::start_on(OPENROUTER_PROVISIONING_KEY, openrouter)?,
            stripe: FakeStripe::start_on(STRIPE_SECRET_KEY, stripe)?,
            mail: FakeMail::start_on(MAIL_API_KEY, "127.0.0.1:0")?,
            model: FakeModel::start(),
            elevenlabs: FakeElevenLabs::start(),
        })
    }

    /// The worker vars that point it at these fakes, with the credentials they require.
    pub fn base_url_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLERK_API_URL", self.clerk.upstream().base_url().to_owned()),
            ("CLERK_JWKS_URL", self.clerk.jwks_url()),
            ("CLERK_ISSUER", CLERK_ISSUER.to_owned()),
            ("CLERK_SECRET_KEY", CLERK_SECRET_KEY.to_owned()),
            ("END_USER_CLERK_JWKS_URL", self.end_user_clerk.jwks_url()),
            ("END_USER_CLERK_ISSUER", END_USER_CLERK_ISSUER.to_owned()),
            (
                "OPENROUTER_API_URL",
                format!("{}/api", self.openrouter.upstream().base_url()),
            ),
            (
                "PROVISIONING_API_KEY",
                OPENROUTER_PROVISIONING_KEY.to_owned(),
            ),
            (
                "STRIPE_API_URL",
                self.stripe.upstream().base_url().to_owned(),
            ),
            ("STRIPE_SECRET_KEY", STRIPE_SECRET_KEY.to_owned()),
            ("MAIL_API_URL", self.mail.upstream().base_url().to_owned()),
            ("MAIL_API_KEY", MAIL_API_KEY.to_owned()),
            ("CHAT_API_URL", self.model.base_url().to_owned()),
            ("CHAT_API_KEY", model::CHAT_API_KEY.to_owned()),
            ("CHAT_MODEL", CHAT_MODEL.to_owned()),
            ("CHAT_MODELS", format!("{CHAT_MODEL},{CHAT_OTHER_MODEL}")),
            ("CHAT_PROVIDER", "fakeai".to_owned()),
            (
                "ELEVENLABS_API_URL",
                self.elevenlabs.upstream().base_url().to_owned(),
            ),
            (
                "ELEVENLABS_API_KEY",
                elevenlabs::ELEVENLABS_API_KEY.to_owned(),
            ),
            ("ELEVENLABS_VOICE_ID", "fakevoice".to_owned()),
            (
                "STRIPE_WEBHOOK_SECRET",
                format!("{STRIPE_OTHER_WEBHOOK_SECRET}, {STRIPE_WEBHOOK_SECRET}"),
            ),
        ]
    }

    /// Every fake.
    pub fn all(&self) -> [&FakeUpstream; 5] {
        [
            self.clerk.upstream(),
            self.end_user_clerk.upstream(),
            self.openrouter.upstream(),
            self.stripe.upstream(),
            self.mail.upstream(),
        ]
    }
}
