//! The load generator: `n` requests from `concurrency` client threads, each with its own
//! HTTP agent (and so its own keep-alive connection), every answer checked to have the
//! scenario's status.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Request `i`'s JSON body.
pub type Body = Box<dyn Fn(usize) -> String + Sync>;

/// What every request of a scenario sends, and the status it must get.
pub struct Target {
    /// `GET` or `POST`.
    pub method: &'static str,
    pub url: String,
    /// `Authorization` header values: none, one for every request, or one per request
    /// (request `i` sends `authorization[i % len]`).
    pub authorization: Vec<String>,
    /// The JSON body of request `i`, for a `POST`.
    pub body: Option<Body>,
    /// The status every answer must have.
    pub expect: u16,
    /// One more header: its name and values (request `i` sends `values[i % len]`).
    pub header: Option<(&'static str, Vec<String>)>,
}

impl Target {
    /// `GET url` expecting `200`.
    pub fn get(url: String, authorization: Vec<String>) -> Self {
        Self {
            method: "GET",
            url,
            authorization,
            body: None,
            expect: 200,
            header: None,
        }
    }

    /// `POST url` with request `i`'s body `body(i)`, expecting `expect`.
    pub fn post(url: String, authorization: Vec<String>, body: Body, expect: u16) -> Self {
        Self {
            method: "POST",
            url,
            authorization,
            body: Some(body),
            expect,
            header: None,
        }
    }

    /// The same target, sending `name` with request `i`'s value `values[i % len]`.
    pub fn with_header(mut self, name: &'static str, values: Vec<String>) -> Self {
        self.header = Some((name, values));
        self
    }

    /// How many distinct callers the requests cycle through.
    pub fn callers(&self) -> usize {
        let headers = self.header.as_ref().map_or(0, |(_, values)| values.len());
        self.authorization.len().max(headers)
    }
}

/// One agent per client thread, kept across the warm-up and the measured run.
pub fn agents(concurrency: usize) -> Vec<ureq::Agent> {
    (0..concurrency)
        .map(|_| {
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .max_idle_connections_per_host(1)
                .build()
        })
        .collect()
}

/// A finished run.
pub struct Run {
    /// Each request's latency, sorted.
    pub latencies: Vec<Duration>,
    /// Wall time from the first request sent to the last answer read.
    pub elapsed: Duration,
}

impl Run {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`-quantile (0 < q ≤ 1) of latency, nearest rank, in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[index].as_secs_f64() * 1e3
    }
}

/// Sends `n` requests to `target`, spread over the agents' threads, numbered from `first`
/// (which picks their credential and body); the first answer without the expected status (or
/// a request that gets no answer) stops every thread and is the error.
pub fn run(target: &Target, agents: &[ureq::Agent], first: usize, n: usize) -> Result<Run, String> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let error = Mutex::new(None::<String>);
    let start = Instant::now();
    let per_thread: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let handles: Vec<_> = agents
            .iter()
            .map(|agent| {
                let (next, failed, error) = (&next, &failed, &error);
                scope.spawn(move || {
                    let mut latencies = Vec::with_capacity(n / agents.len() + 1);
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let sent = Instant::now();
                        match one(agent, target, first + i) {
                            Ok(()) => latencies.push(sent.elapsed()),
                            Err(err) => {
                                failed.store(true, Ordering::Relaxed);
                                error.lock().unwrap().get_or_insert(err);
                                break;
                            }
                        }
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    if let Some(err) = error.into_inner().unwrap() {
        return Err(err);
    }
    let mut latencies: Vec<Duration> = per_thread.into_iter().flatten().collect();
    latencies.sort_unstable();
    Ok(Run { latencies, elapsed })
}

/// One request, its body read to the end (so the connection is reused).
fn one(agent: &ureq::Agent, target: &Target, i: usize) -> Result<(), String> {
    let what = format!("{} {}", target.method, target.url);
    let mut request = agent.request(target.method, &target.url);
    if !target.authorization.is_empty() {
        let authorization = &target.authorization[i % target.authorization.len()];
        request = request.set("Authorization", authorization);
    }
    if let Some((name, values)) = &target.header {
        request = request.set(name, &values[i % values.len()]);
    }
    let answer = match &target.body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(&body(i)),
        None => request.call(),
    };
    match answer {
        Ok(resp) if resp.status() == target.expect => resp
            .into_string()
            .map(drop)
            .map_err(|e| format!("{what}: reading the body: {e}")),
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
            let status = resp.status();
            let body = resp.into_string().unwrap_or_default();
            Err(format!(
                "{what} answered {status}, not {}: {body}",
                target.expect
            ))
        }
        Err(err) => Err(format!("{what}: no answer: {err}")),
    }
}
