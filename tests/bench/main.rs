//! The load benchmark (`scripts/bench`, `cargo bench --bench load`).
//!
//! It starts the world exactly as the end-to-end suite does — the real worker under
//! `wrangler dev`, local D1 and KV, the fake Clerk — and measures, per scenario, throughput,
//! latency percentiles and the CPU time the worker's processes spend per request:
//!
//! - `GET /api/health/ping` without credentials (the ceiling: no auth, no storage);
//! - `GET /api/user/profile` with an HS256 token, with a Clerk RS256 token, with an API key;
//! - the metering hot paths: `GET /api/usage/quota`, `POST /api/usage/report` (a new
//!   `request_id` each time, with a device) and `POST /api/usage/reserve`;
//! - the metered model proxy, `POST /v1/chat/completions`, against the fake model.
//!
//! Each authenticated scenario has `BENCH_USERS` users of its own on the default plan, so
//! every request passes through the plan's rate limiter as in production without any user
//! reaching it. Each user's first request (which creates the user and verifies the token) is
//! sent before the warm-up and not measured; after that each credential is reused, as a real
//! client does, so the identity scenarios measure the warm path (verified-token cache, JWKS
//! already fetched). One more scenario sends a different RS256 token with every request,
//! which defeats the verified-token cache: it shows what one RSA verification costs.
//!
//! The scenarios run `BENCH_ROUNDS` times, interleaved, and each is reported by its median
//! round (by worker CPU), since one round's CPU reading moves by a few tenths of a ms.
//! Results go to stdout as a table, to `target/bench/results.json`, and to BENCHMARKS.md
//! with the metering paths checked against their targets.
//!
//! Settings: `BENCH_REQUESTS` (per round, default 2000), `BENCH_CONCURRENCY` (client threads,
//! default 8), `BENCH_WARMUP` (requests before each measurement, default 50), `BENCH_ROUNDS`
//! (default 3), `BENCH_USERS` (per scenario, default 128).

#![allow(dead_code)]

#[path = "../e2e/fakes/mod.rs"]
mod fakes;
#[path = "../e2e/harness/mod.rs"]
mod harness;

mod cpu;
mod load;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::{json, Value};

use cpu::{Snapshot, Usage};
use harness::identity::{clerk_claims, hmac_claims, hs256, now, unique, JWT_SECRET};
use harness::World;
use load::Target;

/// The target for the extra worker CPU an RS256 (Clerk) request costs over an HS256 one.
const RS256_OVER_HS256_TARGET_MS: f64 = 0.5;

/// Requests measured per round in the password scenarios (at most): each runs Argon2id, so
/// they cost tens of milliseconds of CPU where the others cost tenths of one.
const PASSWORD_REQUESTS: usize = 100;

/// How the bench is run.
#[derive(Clone)]
struct Settings {
    requests: usize,
    concurrency: usize,
    warmup: usize,
    rounds: usize,
    users: usize,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        Ok(Self {
            requests: env_count("BENCH_REQUESTS", 2000)?,
            concurrency: env_count("BENCH_CONCURRENCY", 8)?,
            warmup: env_count("BENCH_WARMUP", 50)?,
            rounds: env_count("BENCH_ROUNDS", 3)?,
            users: env_count("BENCH_USERS", 128)?,
        })
    }
}

fn env_count(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} must be a positive whole number, not {value:?}")),
    }
}

/// One measured scenario.
struct Outcome {
    name: &'static str,
    requests: usize,
    concurrency: usize,
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    workerd_cpu_us_per_req: f64,
    runtime_cpu_us_per_req: f64,
    group_cpu_us_per_req: f64,
    jwks_fetches: usize,
    jwks_fetches_warmup: usize,
    /// Rebuilds wrangler started during the measured run (its watcher saw src/ change).
    reloads: usize,
    usage: Usage,
}

impl Outcome {
    fn json(&self) -> Value {
        let per_req = |us: f64| round(us / self.requests as f64, 1);
        json!({
            "scenario": self.name,
            "requests": self.requests,
            "concurrency": self.concurrency,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "workerd_cpu_us_per_req": round(self.workerd_cpu_us_per_req, 1),
            "runtime_workerd_cpu_us_per_req": round(self.runtime_cpu_us_per_req, 1),
            "group_cpu_us_per_req": round(self.group_cpu_us_per_req, 1),
            "jwks_fetches": self.jwks_fetches,
            "jwks_fetches_warmup": self.jwks_fetches_warmup,
            "worker_reloads": self.reloads,
            "cpu_us_per_req_by_process": self.usage.per_process.iter()
                .map(|(pid, comm, us)| json!({
                    "pid": pid, "comm": comm, "role": cpu::role(*pid, comm), "us": per_req(*us),
                }))
                .collect::<Vec<_>>(),
        })
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; there is nothing else to parse.
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("bench: starting the worker under wrangler dev (as the e2e suite does)");
    // Every benchmark request comes from one client IP: the sign-up throttle (5 accounts an
    // hour per IP by default) would refuse all but the first registrations. Its claim is
    // still made on every registration, so its cost is measured.
    let world = match World::start_with(&[("SIGNUP_PER_IP_PER_HOUR", "100000")]) {
        Ok(world) => world,
        Err(err) => {
            eprintln!("bench: could not start the worker: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = bench(&world, &settings);
    if result.is_err() {
        world.print_worker_log_tail(40);
    }
    // Tears the wrangler process group down before anything else happens.
    drop(world);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One scenario: its name and how to make its target for a round (1-based).
struct Scenario<'w> {
    name: &'static str,
    target: Box<dyn Fn(usize) -> Target + 'w>,
    /// At most this many measured requests per round (the password scenarios).
    max_requests: Option<usize>,
}

fn bench(world: &World, settings: &Settings) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base_url = base_url(world)?;
    let wasm = wasm_size(&root)?;

    let workerd = Snapshot::take()?.workerd_pids();
    if workerd.is_empty() {
        return Err(format!(
            "no workerd process found among this process's descendants: {:?}",
            Snapshot::take()?.procs
        ));
    }
    eprintln!("bench: worker at {base_url}; workerd pids {workerd:?}");

    let scenarios = scenarios(world, settings, &base_url)?;
    let mut rounds: Vec<Vec<Outcome>> = (0..scenarios.len()).map(|_| Vec::new()).collect();
    for round in 1..=settings.rounds {
        for (i, scenario) in scenarios.iter().enumerate() {
            let target = (scenario.target)(round);
            let mut settings = settings.clone();
            if let Some(max) = scenario.max_requests {
                settings.requests = settings.requests.min(max);
                settings.warmup = settings.warmup.min(max / 10);
            }
            let settings = &settings;
            eprintln!(
                "bench: round {round}/{}: {}: {} users' first requests + {} warm-up + {} requests, {} threads",
                settings.rounds,
                scenario.name,
                primes(&target, settings),
                settings.warmup,
                settings.requests,
                settings.concurrency
            );
            rounds[i].push(measure(world, scenario.name, &target, settings)?);
        }
    }
    // Each scenario's median round by worker CPU.
    let outcomes: Vec<Outcome> = rounds
        .into_iter()
        .map(|mut runs| {
            runs.sort_by(|a, b| {
                a.workerd_cpu_us_per_req
                    .total_cmp(&b.workerd_cpu_us_per_req)
            });
            runs.swap_remove(runs.len() / 2)
        })
        .collect();

    print_table(&outcomes, settings, &wasm);
    let findings = Findings::of(&outcomes);
    println!();
    for line in findings.lines() {
        println!("{line}");
    }
    let checks = report::check_usage_targets(&outcomes);
    println!();
    for check in &checks {
        println!("{}", check.sentence());
    }

    let results = json!({
        "requests": settings.requests,
        "concurrency": settings.concurrency,
        "warmup": settings.warmup,
        "rounds": settings.rounds,
        "users_per_scenario": settings.users,
        "clock_ticks_per_second": cpu::clock_ticks_per_second(),
        "scenarios": outcomes.iter().map(Outcome::json).collect::<Vec<_>>(),
        "usage_targets": checks.iter().map(report::TargetCheck::json).collect::<Vec<_>>(),
        "rs256_minus_hs256_workerd_cpu_ms_per_req": round(findings.rs256_over_hs256_ms, 4),
        "rs256_minus_hs256_runtime_workerd_cpu_ms_per_req": round(findings.rs256_over_hs256_runtime_ms, 4),
        "rs256_minus_hs256_target_ms": RS256_OVER_HS256_TARGET_MS,
        "rs256_new_token_minus_warm_runtime_workerd_cpu_ms_per_req": round(findings.uncached_ms, 4),
        "wasm": wasm.json(),
    });
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {dir:?}: {e}"))?;
    let path = dir.join("results.json");
    let text = serde_json::to_string_pretty(&results).expect("JSON values serialise");
    std::fs::write(&path, text + "\n").map_err(|e| format!("write {path:?}: {e}"))?;
    println!("results: {}", path.display());

    let markdown = report::markdown(&report::Report {
        outcomes: &outcomes,
        settings,
        wasm: &wasm,
        findings: &findings,
        checks: &checks,
    });
    let path = root.join("BENCHMARKS.md");
    std::fs::write(&path, markdown).map_err(|e| format!("write {path:?}: {e}"))?;
    println!("report: {}", path.display());
    Ok(())
}

/// `BENCH_USERS` bearer credentials of fresh HMAC users, valid for an hour.
fn hmac_users(settings: &Settings, prefix: &str) -> Vec<String> {
    (0..settings.users)
        .map(|_| {
            let mut claims = hmac_claims(&unique(prefix));
            claims["exp"] = json!(now() + 3600);
            format!("Bearer {}", hs256(&claims, JWT_SECRET.as_bytes()))
        })
        .collect()
}

/// `BENCH_USERS` Clerk users' session claims, valid for an hour.
fn clerk_users(settings: &Settings) -> Vec<Value> {
    (0..settings.users)
        .map(|_| {
            let mut claims = clerk_claims(&unique("user_bench_"));
            claims["exp"] = json!(now() + 3600);
            claims
        })
        .collect()
}

/// Every scenario, each with a pool of users of its own (so no user's rate limit is reached:
/// each sees about `(requests + warm-up) / users` requests per round).
fn scenarios<'w>(
    world: &'w World,
    settings: &Settings,
    base_url: &str,
) -> Result<Vec<Scenario<'w>>, String> {
    let profile = format!("{base_url}/api/user/profile");
    let hs256 = hmac_users(settings, "bench_hs256_");
    let proxy_keys = api_keys(world, settings, &hmac_users(settings, "bench_proxy_"))?;
    let api_keys = api_keys(world, settings, &hmac_users(settings, "bench_key_"))?;
    login_accounts(world, settings)?;
    let clerk = &world.fakes.clerk;
    let warm: Vec<String> = clerk_users(settings)
        .iter()
        .map(|claims| format!("Bearer {}", clerk.sign(claims)))
        .collect();
    let fresh_users = clerk_users(settings);
    let per_round = settings.users + settings.warmup + settings.requests;
    let quota = hmac_users(settings, "bench_quota_");
    let report_users = hmac_users(settings, "bench_report_");
    let reserve_users = hmac_users(settings, "bench_reserve_");
    let users = settings.users;
    let platform_key = platform(world)?;
    let data_url = format!("{base_url}/api/data");

    let get = |url: &str, authorization: Vec<String>| -> Box<dyn Fn(usize) -> Target + 'w> {
        let url = url.to_owned();
        Box::new(move |_| Target::get(url.clone(), authorization.clone()))
    };
    // A POST whose body is `body(round, request, users)`: unique per round and request.
    let post = |path: &str,
                authorization: Vec<String>,
                expect: u16,
                body: fn(usize, usize, usize) -> Value|
     -> Box<dyn Fn(usize) -> Target + 'w> {
        let url = format!("{base_url}{path}");
        Box::new(move |round| {
            let body: load::Body = Box::new(move |i| body(round, i, users).to_string());
            Target::post(url.clone(), authorization.clone(), body, expect)
        })
    };
    Ok(vec![
        Scenario {
            name: "ping (no auth)",
            target: get(&format!("{base_url}/api/health/ping"), vec![]),
            max_requests: None,
        },
        Scenario {
            name: "profile HS256",
            target: get(&profile, hs256),
            max_requests: None,
        },
        Scenario {
            name: "profile RS256 (warm)",
            target: get(&profile, warm),
            max_requests: None,
        },
        Scenario {
            name: "profile API key",
            target: get(&profile, api_keys),
            max_requests: None,
        },
        Scenario {
            name: "profile RS256 (new token each)",
            // A token nobody sent before with every request (its own `jti`), so none is in
            // the verified-token cache: what one RSA verification costs.
            target: Box::new(move |round| {
                let tokens = (0..per_round)
                    .map(|i| {
                        let mut claims = fresh_users[i % users].clone();
                        claims["jti"] = json!(format!("bench-{round}-{i}"));
                        format!("Bearer {}", clerk.sign(&claims))
                    })
                    .collect();
                Target::get(profile.clone(), tokens)
            }),
            max_requests: None,
        },
        Scenario {
            name: "usage quota",
            target: get(&format!("{base_url}/api/usage/quota"), quota),
            max_requests: None,
        },
        Scenario {
            name: "usage report",
            target: post("/api/usage/report", report_users, 200, |round, i, users| {
                json!({
                    "provider": "openrouter", "model": "openai/gpt-4o-mini",
                    "input_tokens": 120, "output_tokens": 30,
                    "device_id": format!("bench-device-{}", i % users),
                    "request_id": format!("bench-report-{round}-{i}"),
                })
            }),
            max_requests: None,
        },
        Scenario {
            name: "usage reserve",
            target: post("/api/usage/reserve", reserve_users, 201, |round, i, _| {
                json!({
                    "estimate_tokens": 100, "provider": "openrouter",
                    "model": "openai/gpt-4o-mini",
                    "request_id": format!("bench-reserve-{round}-{i}"),
                })
            }),
            max_requests: None,
        },
        Scenario {
            // The metered model proxy against the fake model: admission (one batch), the
            // model call, settlement from its usage (one batch), in OpenAI's shapes.
            name: "model proxy",
            target: post("/v1/chat/completions", proxy_keys, 200, |round, i, _| {
                json!({
                    "messages": [{"role": "user",
                                  "content": format!("bench {round}-{i} [reply:20]")}],
                    "max_tokens": 50,
                })
            }),
            max_requests: None,
        },
        Scenario {
            // A platform's end user counted exactly: the key's lookup (with the end user's
            // stored tier), the per-end-user rate limit, one conditional count batch. Each
            // round meters end users of its own, so none reaches its 100 requests a minute.
            name: "platform data",
            target: Box::new(move |round| {
                let url = data_url.clone();
                let body: load::Body = Box::new(move |i| {
                    json!({ "request_id": format!("bench-data-{round}-{i}") }).to_string()
                });
                let end_users = (0..users)
                    .map(|u| format!("bench-end-user-{round}-{u}"))
                    .collect();
                Target::post(url, vec![platform_key.clone()], body, 200)
                    .with_header("X-User-Id", end_users)
            }),
            max_requests: None,
        },
        Scenario {
            // Argon2id at the default cost (19 MiB, 2 passes) on every request: the CPU one
            // sign-in costs, against accounts registered beforehand.
            name: "account login",
            target: post("/api/auth/login", vec![], 200, |_, i, users| {
                json!({
                    "email": format!("bench-login-{}@bench.example.test", i % users),
                    "password": BENCH_PASSWORD,
                })
            }),
            max_requests: Some(PASSWORD_REQUESTS),
        },
        Scenario {
            // One Argon2id hash, the account's rows, and the verification mail (to the
            // fake mail API) per request.
            name: "account register",
            target: post("/api/auth/register", vec![], 201, |round, i, _| {
                json!({
                    "email": format!("bench-register-{round}-{i}@bench.example.test"),
                    "password": BENCH_PASSWORD,
                })
            }),
            max_requests: Some(PASSWORD_REQUESTS),
        },
    ])
}

/// A registered platform whose one tier is unlimited: its key as a bearer.
fn platform(world: &World) -> Result<String, String> {
    let reply = world
        .call("POST", "/api/developer/register")
        .json(&json!({ "email": format!("{}@bench.example.test", unique("bench-platform-")) }));
    if reply.status != 201 {
        return Err(format!(
            "POST /api/developer/register answered {}, not 201: {}",
            reply.status, reply.body
        ));
    }
    let key = reply.json()["api_key"]
        .as_str()
        .ok_or_else(|| format!("no api_key in {}", reply.body))?
        .to_owned();
    let tiers = json!({ "tiers": [{ "id": "unlimited", "name": "Unlimited",
        "calls_per_month": null, "price_cents": 0, "currency": "usd" }] });
    let reply = world
        .authed("PUT", "/api/developer/tiers", &key)
        .json(&tiers);
    if reply.status != 200 {
        return Err(format!(
            "PUT /api/developer/tiers answered {}, not 200: {}",
            reply.status, reply.body
        ));
    }
    Ok(format!("Bearer {key}"))
}

/// The password of the benchmark's accounts.
const BENCH_PASSWORD: &str = "bench horse battery staple";

/// Registers the accounts the login scenario signs in to.
fn login_accounts(world: &World, settings: &Settings) -> Result<(), String> {
    eprintln!("bench: registering {} accounts", settings.users);
    for i in 0..settings.users {
        let reply = world.call("POST", "/api/auth/register").json(&json!({
            "email": format!("bench-login-{i}@bench.example.test"),
            "password": BENCH_PASSWORD,
        }));
        if reply.status != 201 {
            return Err(format!(
                "POST /api/auth/register answered {}, not 201: {}",
                reply.status, reply.body
            ));
        }
    }
    Ok(())
}

/// One API key for each of these users (`GET /api/user/api-key` creates it).
fn api_keys(world: &World, settings: &Settings, users: &[String]) -> Result<Vec<String>, String> {
    eprintln!("bench: creating {} API keys", settings.users);
    users
        .iter()
        .map(|bearer| {
            let token = bearer.trim_start_matches("Bearer ");
            let created = world.authed("GET", "/api/user/api-key", token).send();
            if created.status != 201 {
                return Err(format!(
                    "GET /api/user/api-key answered {}, not 201: {}",
                    created.status, created.body
                ));
            }
            created.json()["api_key"]["key"]
                .as_str()
                .map(|key| format!("Bearer {key}"))
                .ok_or_else(|| format!("no api_key.key in {}", created.body))
        })
        .collect()
}

/// How many requests open a scenario, one per user: every user's first request creates its
/// row and verifies its token, which is not what is measured.
fn primes(target: &Target, settings: &Settings) -> usize {
    target.callers().clamp(1, settings.users)
}

/// Opens the scenario (each user's first request), warms up, then measures it.
fn measure(
    world: &World,
    name: &'static str,
    target: &Target,
    settings: &Settings,
) -> Result<Outcome, String> {
    let agents = load::agents(settings.concurrency);
    let jwks_start = world.fakes.clerk.jwks_fetches();
    // The very first request alone: on a cold isolate it fetches the JWKS, and concurrent
    // first requests would race each other for it. Then one request for each other user.
    let primes = primes(target, settings);
    load::run(target, &agents[..1], 0, 1).map_err(|e| format!("{name} (first request): {e}"))?;
    load::run(target, &agents, 1, primes - 1)
        .map_err(|e| format!("{name} (first requests): {e}"))?;
    load::run(target, &agents, primes, settings.warmup)
        .map_err(|e| format!("{name} (warm-up): {e}"))?;
    let jwks_before = world.fakes.clerk.jwks_fetches();
    let reloads_before = reloads(world);
    let cpu_before = Snapshot::take()?;
    let run = load::run(target, &agents, primes + settings.warmup, settings.requests)
        .map_err(|e| format!("{name}: {e}"))?;
    let cpu_after = Snapshot::take()?;
    let reloads = reloads(world) - reloads_before;
    if reloads > 0 || cpu_before.workerd_pids() != cpu_after.workerd_pids() {
        eprintln!(
            "bench: WARNING: {name}: wrangler rebuilt or restarted the worker during the run \
             (a file under src/ changed); its numbers include that"
        );
    }
    let jwks_after = world.fakes.clerk.jwks_fetches();
    let usage = Usage::between(&cpu_before, &cpu_after);
    let n = settings.requests as f64;
    Ok(Outcome {
        name,
        requests: settings.requests,
        concurrency: settings.concurrency,
        rps: run.rps(),
        p50_ms: run.percentile_ms(0.50),
        p95_ms: run.percentile_ms(0.95),
        p99_ms: run.percentile_ms(0.99),
        workerd_cpu_us_per_req: usage.workerd_us / n,
        runtime_cpu_us_per_req: usage.runtime_us / n,
        group_cpu_us_per_req: usage.group_us / n,
        jwks_fetches: jwks_after - jwks_before,
        jwks_fetches_warmup: jwks_before - jwks_start,
        reloads,
        usage,
    })
}

/// How many times wrangler's watcher has rebuilt the worker so far.
fn reloads(world: &World) -> usize {
    world
        .worker_log()
        .matches("changed, restarting build")
        .count()
}

/// CPU per request (as `cpu` picks it) of the RS256 scenario minus that of the HS256 one,
/// in ms.
fn rs256_over_hs256_ms(outcomes: &[Outcome], cpu: impl Fn(&Outcome) -> f64) -> f64 {
    difference_ms(outcomes, "profile RS256 (warm)", "profile HS256", cpu)
}

/// CPU per request of scenario `a` minus that of `b`, in ms.
fn difference_ms(outcomes: &[Outcome], a: &str, b: &str, cpu: impl Fn(&Outcome) -> f64) -> f64 {
    let of = |name: &str| outcomes.iter().find(|o| o.name == name).map_or(0.0, &cpu);
    (of(a) - of(b)) / 1e3
}

/// What the identity scenarios show.
struct Findings {
    /// Warm RS256 minus HS256, all workerd processes, ms of CPU per request.
    rs256_over_hs256_ms: f64,
    /// The same, the worker runtime's workerd alone.
    rs256_over_hs256_runtime_ms: f64,
    /// A never-seen RS256 token minus a warm one, runtime workerd, ms per request.
    uncached_ms: f64,
    /// JWKS fetches during the warm RS256 run.
    warm_rs256_jwks_fetches: Option<usize>,
}

impl Findings {
    fn of(outcomes: &[Outcome]) -> Self {
        Self {
            rs256_over_hs256_ms: rs256_over_hs256_ms(outcomes, |o| o.workerd_cpu_us_per_req),
            rs256_over_hs256_runtime_ms: rs256_over_hs256_ms(outcomes, |o| {
                o.runtime_cpu_us_per_req
            }),
            uncached_ms: difference_ms(
                outcomes,
                "profile RS256 (new token each)",
                "profile RS256 (warm)",
                |o| o.runtime_cpu_us_per_req,
            ),
            warm_rs256_jwks_fetches: outcomes
                .iter()
                .find(|o| o.name == "profile RS256 (warm)")
                .map(|o| o.jwks_fetches),
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "RS256 vs HS256 worker CPU per request: {:+.3} ms (target <= {RS256_OVER_HS256_TARGET_MS} ms): {}",
                self.rs256_over_hs256_ms,
                if self.rs256_over_hs256_ms <= RS256_OVER_HS256_TARGET_MS {
                    "within target"
                } else {
                    "OVER TARGET"
                }
            ),
            format!(
                "  (all workerd processes; the worker runtime's workerd alone: {:+.3} ms)",
                self.rs256_over_hs256_runtime_ms
            ),
            format!(
                "A new RS256 token (RSA verification, no cache hit) costs {:+.3} ms of worker runtime CPU over a warm one",
                self.uncached_ms
            ),
        ];
        if let Some(fetches) = self.warm_rs256_jwks_fetches {
            lines.push(format!(
                "JWKS fetches during the warm RS256 run: {fetches} (a warm RS256 token should cost no network call)"
            ));
        }
        lines
    }
}

fn print_table(outcomes: &[Outcome], settings: &Settings, wasm: &WasmSize) {
    println!();
    println!(
        "Tollgate load bench: {} requests per scenario after {} warm-up, {} client threads; \
         CPU from /proc/<pid>/stat at {} ticks/s",
        settings.requests,
        settings.warmup,
        settings.concurrency,
        cpu::clock_ticks_per_second()
    );
    println!();
    println!(
        "{:<30} {:>8} {:>5} {:>9} {:>8} {:>8} {:>8} {:>14} {:>14} {:>12} {:>5}",
        "scenario",
        "requests",
        "conc",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "workerd us/req",
        "runtime us/req",
        "group us/req",
        "jwks"
    );
    for o in outcomes {
        println!(
            "{:<30} {:>8} {:>5} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>14.1} {:>14.1} {:>12.1} {:>5}",
            o.name,
            o.requests,
            o.concurrency,
            o.rps,
            o.p50_ms,
            o.p95_ms,
            o.p99_ms,
            o.workerd_cpu_us_per_req,
            o.runtime_cpu_us_per_req,
            o.group_cpu_us_per_req,
            o.jwks_fetches
        );
    }
    println!();
    println!(
        "workerd: every workerd of the wrangler group (worker runtime + dev proxy); runtime: the \
         workerd running the worker with local D1/KV; group: all of it plus wrangler's node"
    );
    println!("CPU us/req by process (pid):");
    for o in outcomes {
        let parts: Vec<String> = o
            .usage
            .per_process
            .iter()
            .filter(|(_, _, us)| *us > 0.0)
            .map(|(pid, comm, us)| {
                let role = match cpu::role(*pid, comm) {
                    "" => String::new(),
                    role => format!(" {role}"),
                };
                format!("{comm}[{pid}{role}] {:.1}", us / o.requests as f64)
            })
            .collect();
        println!("  {:<30} {}", o.name, parts.join(", "));
    }
    println!();
    println!(
        "wasm: {} is {} KiB, {} KiB gzipped ({} bytes)",
        wasm.path,
        wasm.bytes / 1024,
        wasm.gzip_bytes / 1024,
        wasm.gzip_bytes
    );
}

/// The worker's wasm and its gzipped size (`gzip -9`, as `scripts/build` reports it).
struct WasmSize {
    path: String,
    bytes: u64,
    gzip_bytes: u64,
}

impl WasmSize {
    fn json(&self) -> Value {
        json!({ "path": self.path, "bytes": self.bytes, "gzip_bytes": self.gzip_bytes })
    }
}

fn wasm_size(root: &Path) -> Result<WasmSize, String> {
    let rel = "build/index_bg.wasm";
    let path = root.join(rel);
    let bytes = std::fs::metadata(&path)
        .map_err(|e| format!("{rel}: {e} (scripts/build makes it)"))?
        .len();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"gzip -9 -c "$1" | wc -c"#)
        .arg("sh")
        .arg(&path)
        .output()
        .map_err(|e| format!("run gzip: {e}"))?;
    let gzip_bytes = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("gzip -9 -c {rel} | wc -c gave no number ({e})"))?;
    Ok(WasmSize {
        path: rel.to_owned(),
        bytes,
        gzip_bytes,
    })
}

/// Where the worker listens. The harness keeps it to itself; it started `wrangler dev` with
/// `--ip 127.0.0.1 --port <port>`, as a descendant of this process, so the port is read from
/// that command line (or, failing that, from wrangler's "Ready on" line in its log).
fn base_url(world: &World) -> Result<String, String> {
    for pid in Snapshot::take()?.procs.keys() {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.iter().any(|a| a == "dev") {
            continue;
        }
        let port = args
            .iter()
            .position(|a| a == "--port")
            .and_then(|i| args.get(i + 1))
            .and_then(|p| p.parse::<u16>().ok());
        if let Some(port) = port {
            return Ok(format!("http://127.0.0.1:{port}"));
        }
    }
    let log = world.worker_log();
    log.split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .map(|w| w.trim_end_matches('/').to_owned())
        .ok_or_else(|| "cannot tell where wrangler dev listens".to_owned())
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
