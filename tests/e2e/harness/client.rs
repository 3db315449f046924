//! A small HTTP client for the tests: every status is an answer, never an error.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What wrangler dev's proxy answers, with a 503, when it lost a request it had forwarded.
const PROXY_LOST: &str = "Your worker restarted mid-request.";

/// A request being built.
pub struct Call {
    request: ureq::Request,
    gate: Arc<RwLock<()>>,
    /// The worker's log, where each request's line names its `X-Request-Id`.
    log: Arc<PathBuf>,
    /// Whether to send no `X-Request-Id` of the harness's (to see the worker make one).
    anonymous: bool,
}

impl Call {
    pub(super) fn new(
        agent: &ureq::Agent,
        gate: &Arc<RwLock<()>>,
        log: &Arc<PathBuf>,
        method: &str,
        url: &str,
    ) -> Self {
        Self {
            request: agent.request(method, url),
            gate: Arc::clone(gate),
            log: Arc::clone(log),
            anonymous: false,
        }
    }

    /// Sends no `X-Request-Id` unless the case sets one: the worker makes the id.
    pub fn without_request_id(mut self) -> Self {
        self.anonymous = true;
        self
    }

    /// Sends the request, holding the shared side of the storage gate (see `World`) and,
    /// outside a burst, of the traffic lock (see [`all_at_once`]).
    ///
    /// Each request carries an `X-Request-Id` (`e2e-` and 16 hex digits) unless the case set
    /// one. Under load, wrangler dev's proxy sometimes loses a request it forwarded and
    /// answers 503 "Your worker restarted mid-request. Please try sending the request
    /// again." (Cloudflare's edge has no such proxy). When the worker's log has no line for
    /// that id, the worker never saw the request, so it is sent again with the same id, as
    /// the message asks (up to three times); when it has one, the 503 is returned as it is.
    fn sent(self, send: impl Fn(ureq::Request) -> Reply) -> Reply {
        let _traffic = (!IN_BURST.with(Cell::get)).then(|| {
            TRAFFIC
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        });
        let _shared = self
            .gate
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut request = self.request;
        let id = match request.header("X-Request-Id") {
            Some(id) => id.to_owned(),
            None if self.anonymous => return send(request),
            None => {
                let id = format!("e2e-{}", super::identity::unique("").replace('-', ""));
                request = request.set("X-Request-Id", &id);
                id
            }
        };
        let mut tries = 0;
        loop {
            let reply = send(request.clone());
            tries += 1;
            let lost = reply.status == 503 && reply.body.starts_with(PROXY_LOST);
            if !lost || tries == 3 || worker_saw(&self.log, &id) {
                return reply;
            }
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.set(name, value);
        self
    }

    /// Sends without a body.
    pub fn send(self) -> Reply {
        self.sent(|request| Reply::from(request.call()))
    }

    /// Sends a JSON body.
    #[allow(dead_code)]
    pub fn json(self, body: &Value) -> Reply {
        self.sent(|request| Reply::from(request.send_json(body)))
    }

    /// Sends raw bytes with the given content type.
    pub fn body(mut self, content_type: &str, bytes: &[u8]) -> Reply {
        self.request = self.request.set("Content-Type", content_type);
        self.sent(|request| Reply::from(request.send_bytes(bytes)))
    }
}

/// Whether the worker wrote a log line for the request `id`, waiting up to 2 s for it (the
/// line reaches the log through wrangler a moment after the request ends).
fn worker_saw(log: &PathBuf, id: &str) -> bool {
    let needle = format!("\"request_id\":\"{id}\"");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains(&needle)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every request holds this shared, except those of a burst, whose case holds it alone.
static TRAFFIC: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this thread sends one of a burst's requests.
    static IN_BURST: Cell<bool> = const { Cell::new(false) };
}

/// Runs `request` `n` times at once (released together by a barrier), with no other case's
/// request in flight: other cases' requests wait until the burst is answered.
///
/// Under `wrangler dev`, a burst of concurrent requests meeting other cases' traffic can make
/// the dev server's proxy answer some of them itself with 503 "worker restarted
/// mid-request" (Cloudflare's edge has no such proxy), which breaks the exact counts the
/// bursts exist to prove. Alone, the burst's requests all reach the worker.
pub fn all_at_once<F>(n: usize, request: F) -> Vec<Reply>
where
    F: Fn(usize) -> Reply + Sync,
{
    let _alone = TRAFFIC
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, request) = (&barrier, &request);
                scope.spawn(move || {
                    IN_BURST.with(|burst| burst.set(true));
                    barrier.wait();
                    request(i)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl From<Result<ureq::Response, ureq::Error>> for Reply {
    fn from(result: Result<ureq::Response, ureq::Error>) -> Self {
        let resp = match result {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(err) => panic!("request failed before any response: {err}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|name| {
                let value = resp.header(&name).unwrap_or_default().to_owned();
                (name.to_ascii_lowercase(), value)
            })
            .collect();
        let body = resp.into_string().expect("read response body");
        Self {
            status,
            headers,
            body,
        }
    }
}

impl Reply {
    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// Asserts an error envelope with this status and code whose `request_id` matches the
    /// `X-Request-Id` header; returns the `error` object.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "status; body: {}", self.body);
        let body = self.json();
        let error = body["error"].clone();
        assert_eq!(error["code"], code, "code; body: {}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message; body: {}",
            self.body
        );
        let request_id = self.header("x-request-id").expect("X-Request-Id header");
        assert_eq!(
            error["request_id"], request_id,
            "request_id matches the header"
        );
        error
    }
}

/// A header's value from `(lower-cased name, value)` pairs; `name` in any case.
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
