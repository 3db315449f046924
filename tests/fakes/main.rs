//! The local fakes of Clerk, Stripe and OpenRouter as a standalone program, so Tollgate can be
//! tried without any account: `scripts/dev --fakes` builds and starts it beside the worker
//! (`cargo run --example fakes -- --help` shows the options).
//!
//! The fakes are the end-to-end suite's own (tests/e2e/fakes), on fixed loopback ports:
//! the control port `--port` (default 8790), then Clerk on +1, Stripe on +2 and OpenRouter on
//! +3. Once they listen, the program writes the settings that point the worker at them to
//! `--env-file` (an env file for `wrangler dev --env-file`: the fakes' URLs, the fake Clerk's
//! issuer and JWKS, the Stripe secret key and webhook signing secret both sides share, the
//! fake OpenRouter provisioning key, and a plan catalog whose paid plans the fake Stripe
//! sells), and prints every request the fakes receive.
//!
//! The control port plays what happens outside the API:
//!
//! - `GET /token?user=user_alice[&ttl=3600]` answers a Clerk session token for that user,
//!   signed by the fake Clerk (as Clerk's frontend SDK would hand one to the browser);
//! - `POST /stripe/complete-checkout?session=cs_test_…` is the customer paying: the fake
//!   Stripe completes the Checkout Session (creating the subscription), then delivers the
//!   signed `checkout.session.completed` event to the worker's `/api/webhooks/stripe`, and
//!   answers what the worker said.
//!
//! The program runs until it is stopped, or until the process `--watch-pid` names exits.

#![allow(dead_code)]

#[path = "../e2e/fakes/mod.rs"]
mod fakes;
#[path = "../e2e/harness/mod.rs"]
mod harness;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use fakes::{
    stripe_signature, FakeResponse, FakeUpstream, Fakes, Recorded, CLERK_ISSUER,
    STRIPE_WEBHOOK_SECRET,
};
use harness::identity::{now, unique};

/// The only `azp` the worker accepts with the fakes: the web app on Vite's default port.
const AUTHORIZED_PARTY: &str = "http://localhost:5173";

/// The Clerk user id that is an admin with the fakes.
const ADMIN_USER: &str = "user_admin";

/// The Stripe prices of the paid plans, which the fake Stripe sells: (plan, price, cents).
const PRICES: [(&str, &str, i64); 2] = [
    ("basic", "price_fake_basic", 999),
    ("premium", "price_fake_premium", 2999),
];

const USAGE: &str = "\
usage: fakes [--port BASE] [--worker-url URL] [--env-file PATH] [--watch-pid PID]

  --port BASE        control port (default 8790); Clerk listens on BASE+1, Stripe on BASE+2,
                     OpenRouter on BASE+3
  --worker-url URL   where the worker listens, for webhook deliveries
                     (default http://127.0.0.1:8787)
  --env-file PATH    where to write the worker's settings (default .wrangler/fakes/fakes.env)
  --watch-pid PID    exit when this process does";

struct Options {
    port: u16,
    worker_url: String,
    env_file: String,
    watch_pid: Option<i32>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        port: 8790,
        worker_url: "http://127.0.0.1:8787".to_owned(),
        env_file: ".wrangler/fakes/fakes.env".to_owned(),
        watch_pid: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => {
                options.port = value
                    .parse()
                    .ok()
                    .filter(|p| *p > 0 && *p <= u16::MAX - 3)
                    .ok_or_else(|| format!("--port: not a port: {value}"))?;
            }
            "--worker-url" => options.worker_url = value.trim_end_matches('/').to_owned(),
            "--env-file" => options.env_file = value,
            "--watch-pid" => {
                options.watch_pid = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|p| *p > 1)
                        .ok_or_else(|| format!("--watch-pid: not a process id: {value}"))?,
                );
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("fakes: {problem}");
            }
            eprintln!("{USAGE}");
            return if problem.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("fakes: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let address = |offset: u16| format!("127.0.0.1:{}", options.port + offset);
    let fakes = Arc::new(Fakes::start_on([&address(1), &address(3), &address(2)])?);
    for (_, price, cents) in PRICES {
        fakes.stripe.add_price(price, cents);
    }
    let control = {
        let fakes = Arc::clone(&fakes);
        let worker_url = options.worker_url.clone();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        FakeUpstream::start_on("control", &address(0), move |request| {
            control(request, &fakes, &agent, &worker_url)
        })?
    };

    let vars = worker_vars(&fakes);
    write_env_file(&options.env_file, &vars)?;

    println!("fakes: listening");
    println!(
        "  control     {}  (GET /token?user=…, POST /stripe/complete-checkout?session=…)",
        control.base_url()
    );
    for fake in fakes.all() {
        println!("  {:<11} {}", fake.name(), fake.base_url());
    }
    println!(
        "fakes: the worker's settings are in {} (webhooks go to {})",
        options.env_file, options.worker_url
    );

    // Print what the fakes receive, as it comes in.
    let mut seen = [0usize; 5];
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for (fake, seen) in fakes.all().iter().zip(seen.iter_mut()) {
            let received = fake.received();
            for request in &received[*seen..] {
                println!(
                    "fakes: [{}] {} {}",
                    fake.name(),
                    request.method,
                    request.path
                );
            }
            *seen = received.len();
        }
        if let Some(pid) = options.watch_pid {
            if !alive(pid) {
                println!("fakes: process {pid} is gone; stopping");
                return Ok(());
            }
        }
    }
}

/// Whether the process `pid` still exists.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The settings that point the worker at the fakes.
fn worker_vars(fakes: &Fakes) -> Vec<(&'static str, String)> {
    let mut vars = vec![("ENVIRONMENT", "fakes".to_owned())];
    for (name, value) in fakes.base_url_vars() {
        // One endpoint secret is enough here (the tests also list a second one).
        let value = if name == "STRIPE_WEBHOOK_SECRET" {
            STRIPE_WEBHOOK_SECRET.to_owned()
        } else {
            value
        };
        vars.push((name, value));
    }
    vars.push(("CLERK_DOMAIN", String::new()));
    vars.push(("CLERK_AUTHORIZED_PARTIES", AUTHORIZED_PARTY.to_owned()));
    vars.push(("ADMIN_USER_IDS", ADMIN_USER.to_owned()));
    // Where Checkout and the portal send the customer back to: the web app (never reached
    // here; the fake Stripe has no pages).
    for (name, path) in [
        ("STRIPE_SUCCESS_URL", "/billing/success"),
        ("STRIPE_CANCEL_URL", "/billing/cancel"),
        ("STRIPE_PORTAL_RETURN_URL", "/billing"),
    ] {
        vars.push((name, format!("{AUTHORIZED_PARTY}{path}")));
    }
    vars.push(("PLAN_CATALOG", catalog().to_string()));
    vars
}

/// The default plans (free, basic, premium, enterprise), with the paid ones sold by the fake
/// Stripe.
fn catalog() -> Value {
    let price = |plan: &str| {
        PRICES
            .iter()
            .find(|(id, _, _)| *id == plan)
            .map(|(_, price, cents)| (json!(price), json!(cents)))
    };
    let plan = |id: &str, name: &str, tokens: Value, calls: Value, keys: Value| {
        let (stripe_price, cents) = price(id).unwrap_or((Value::Null, json!(0)));
        json!({
            "id": id, "name": name, "tokens_per_month": tokens, "calls_per_month": calls,
            "api_keys": keys, "concurrent_sessions": keys, "requests_per_minute": 100,
            "price_cents": if id == "enterprise" { Value::Null } else { cents },
            "stripe_price_id": stripe_price,
        })
    };
    json!([
        plan("free", "Free", json!(1_000_000), json!(5), json!(1)),
        plan("basic", "Basic", json!(10_000_000), json!(500), json!(3)),
        plan(
            "premium",
            "Premium",
            json!(50_000_000),
            json!(500),
            json!(10)
        ),
        plan(
            "enterprise",
            "Enterprise",
            Value::Null,
            Value::Null,
            Value::Null
        ),
    ])
}

fn write_env_file(path: &str, vars: &[(&str, String)]) -> Result<(), String> {
    let mut text = String::from(
        "# Written by the fakes (tests/fakes/main.rs) for `scripts/dev --fakes`; rewritten at \
         each start.\n",
    );
    for (name, value) in vars {
        text.push_str(&format!("{name}={value}\n"));
    }
    let path = std::path::Path::new(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {dir:?}: {e}"))?;
    }
    // Written whole under another name, then renamed: whoever waits for the file never reads
    // half of it.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(|e| format!("write {partial:?}: {e}"))?;
    std::fs::rename(&partial, path).map_err(|e| format!("write {path:?}: {e}"))
}

/// What the control port answers.
fn control(
    request: &Recorded,
    fakes: &Fakes,
    agent: &ureq::Agent,
    worker_url: &str,
) -> FakeResponse {
    let param = |name: &str| {
        request.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
    };
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/token") => {
            let user = param("user").unwrap_or_else(|| "user_dev".to_owned());
            let ttl = match param("ttl").map(|t| t.parse::<i64>()) {
                None => 3600,
                Some(Ok(ttl)) if ttl > 0 => ttl,
                Some(_) => return text(400, "ttl: a number of seconds above 0\n"),
            };
            let now = now();
            let claims = json!({
                "sub": user, "iss": CLERK_ISSUER, "azp": AUTHORIZED_PARTY,
                "sid": unique("sess_"), "email": format!("{user}@example.test"),
                "iat": now, "nbf": now - 5, "exp": now + ttl, "v": 2,
            });
            text(200, &format!("{}\n", fakes.clerk.sign(&claims)))
        }
        ("POST", "/stripe/complete-checkout") => {
            let Some(session) = param("session") else {
                return text(400, "session: the id of an open Checkout Session (cs_test_…)\n");
            };
            match fakes.stripe.session(&session) {
                None => return text(404, &format!("no Checkout Session {session}\n")),
                Some(s) if s["status"] != "open" => {
                    return text(409, &format!("Checkout Session {session} is not open\n"))
                }
                Some(_) => {}
            }
            let event = fakes.stripe.complete_checkout(&session);
            let body = event.to_string();
            let signature = stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now());
            let delivered = agent
                .post(&format!("{worker_url}/api/webhooks/stripe"))
                .set("Content-Type", "application/json")
                .set("Stripe-Signature", &signature)
                .send_string(&body);
            let (status, answer) = match delivered {
                Ok(reply) => (reply.status(), reply.into_string().unwrap_or_default()),
                Err(ureq::Error::Status(status, reply)) => {
                    (status, reply.into_string().unwrap_or_default())
                }
                Err(e) => {
                    return text(502, &format!("could not deliver {} to the worker: {e}\n", event["id"]))
                }
            };
            let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::String(answer));
            let subscription = fakes
                .stripe
                .session(&session)
                .map(|s| s["subscription"].clone())
                .unwrap_or(Value::Null);
            FakeResponse::json(
                200,
                &json!({
                    "event": { "id": event["id"], "type": event["type"] },
                    "subscription": subscription,
                    "webhook": { "status": status, "answer": answer },
                }),
            )
        }
        ("GET", "/") => text(
            200,
            "The control port of Tollgate's local fakes:\n  \
             GET  /token?user=user_alice[&ttl=3600]   a fake Clerk session token\n  \
             POST /stripe/complete-checkout?session=cs_test_...   pay a checkout and deliver its webhook\n",
        ),
        _ => text(404, "not found; GET / lists what the control port does\n"),
    }
}

fn text(status: u16, body: &str) -> FakeResponse {
    FakeResponse {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}
