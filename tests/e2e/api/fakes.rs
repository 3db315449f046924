//! The fake upstreams themselves: they record what they receive and fail on request,
//! which the fault-path tests of later features rely on.

use std::time::{Duration, Instant};

use super::Case;
use crate::fakes::Fault;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(fakes: fakes_record_requests_and_inject_faults)
}

fn fakes_record_requests_and_inject_faults(world: &World) {
    let agent = ureq::AgentBuilder::new().build();
    for fake in world.fakes.all() {
        let url = format!("{}/self-test/{}", fake.base_url(), fake.name());
        let status = |r: Result<ureq::Response, ureq::Error>| match r {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp.status(),
            Err(e) => panic!("{e}"),
        };
        let before = fake.received().len();
        assert_eq!(
            status(agent.post(&url).set("X-Probe", "1").send_string("hello")),
            404
        );

        fake.inject(&[Fault::Status(503), Fault::Delay(Duration::from_millis(300))]);
        assert_eq!(status(agent.get(&url).call()), 503, "{}", fake.name());
        let started = Instant::now();
        assert_eq!(status(agent.get(&url).call()), 404);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the delay was applied"
        );
        assert_eq!(status(agent.get(&url).call()), 404, "faults are used up");

        let received = fake.received();
        let first = &received[before];
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, format!("/self-test/{}", fake.name()));
        assert_eq!(first.header("x-probe"), Some("1"));
        assert_eq!(first.body, b"hello");
        assert_eq!(received.len(), before + 4);
    }
}
