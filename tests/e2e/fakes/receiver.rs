//! A webhook receiver: the customer's endpoint a workflow delivers to. Answers every `POST`
//! with `200 {"ok": true}`, records each delivery with its headers and raw body, and can be
//! told to fail the next N deliveries with a 500 ([`FakeReceiver::fail_next`]). Each test
//! starts its own, so one test's failures never reach another's deliveries.

use serde_json::json;

use super::{FakeResponse, FakeUpstream, Fault, Recorded};

/// The fake receiver.
pub struct FakeReceiver {
    upstream: FakeUpstream,
}

#[allow(dead_code)]
impl FakeReceiver {
    /// Starts a receiver on a free loopback port.
    pub fn start() -> Self {
        let upstream = FakeUpstream::start_on("receiver", "127.0.0.1:0", |request: &Recorded| {
            if request.method != "POST" {
                return FakeResponse::json(405, &json!({ "error": "POST only" }));
            }
            FakeResponse::json(200, &json!({ "ok": true }))
        })
        .expect("bind the receiver");
        Self { upstream }
    }

    /// Where deliveries should go (`http://127.0.0.1:<port>/hook`).
    pub fn url(&self) -> String {
        format!("{}/hook", self.upstream.base_url())
    }

    /// Every delivery received so far (failed ones included), in order.
    pub fn received(&self) -> Vec<Recorded> {
        self.upstream.received()
    }

    /// Makes the next `n` deliveries fail with 500.
    pub fn fail_next(&self, n: usize) {
        self.upstream.inject(&vec![Fault::Status(500); n]);
    }
}
