//! End-to-end tests: the real worker under `wrangler dev`, with real local D1 and KV and
//! local fakes of the upstream services, driven over HTTP exactly as a client would.
//!
//! One `wrangler dev` serves every test. Most cases run in parallel; the few that change
//! something every other case depends on (rotating the fake Clerk's signing key) run after
//! them, one at a time. It is started once, on free ports with a fresh
//! state directory and the migrations applied, and its whole process group is torn down at
//! the end, also when tests fail or the runner itself dies.

mod api;
mod fakes;
mod harness;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};

use harness::World;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let cases = api::all();
    let serial = api::serial();
    if args.list {
        let trials = cases
            .iter()
            .chain(serial.iter())
            .map(|(name, _)| Trial::test(*name, || Ok(())))
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }

    let started = Instant::now();
    let world = match World::start() {
        Ok(world) => Arc::new(world),
        Err(err) => {
            eprintln!("e2e: could not start the worker: {err}");
            return ExitCode::FAILURE;
        }
    };
    let timings = Timings::default();
    timings.phase("start the worker", started.elapsed());
    let phase = Instant::now();
    let parallel = libtest_mimic::run(&args, trials(&world, cases, &timings));
    timings.phase("parallel cases", phase.elapsed());
    let serial_args = Arguments {
        test_threads: Some(1),
        ..args
    };
    let phase = Instant::now();
    let serial = libtest_mimic::run(&serial_args, trials(&world, serial, &timings));
    timings.phase("serial cases", phase.elapsed());
    let failed = parallel.has_failed() || serial.has_failed();
    if failed {
        world.print_worker_log_tail(60);
    }
    let phase = Instant::now();
    drop(world);
    timings.phase("stop the worker", phase.elapsed());
    timings.print(started.elapsed());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn trials(world: &Arc<World>, cases: Vec<api::Case>, timings: &Timings) -> Vec<Trial> {
    cases
        .into_iter()
        .map(|(name, case)| {
            let world = Arc::clone(world);
            let timings = timings.clone();
            Trial::test(name, move || {
                let started = Instant::now();
                case(&world);
                timings.case(name, started.elapsed());
                Ok(())
            })
        })
        .collect()
}

/// Where the suite's time went: each phase, and the slowest cases (a case's own wall time,
/// which in the parallel phase overlaps others').
#[derive(Clone, Default)]
struct Timings {
    phases: Arc<Mutex<Vec<(&'static str, Duration)>>>,
    cases: Arc<Mutex<Vec<(&'static str, Duration)>>>,
}

impl Timings {
    const SLOWEST: usize = 15;

    fn phase(&self, name: &'static str, took: Duration) {
        self.phases.lock().unwrap().push((name, took));
    }

    fn case(&self, name: &'static str, took: Duration) {
        self.cases.lock().unwrap().push((name, took));
    }

    fn print(&self, total: Duration) {
        println!("\ne2e: time per phase");
        for (name, took) in self.phases.lock().unwrap().iter() {
            println!("    {:7.1}s  {name}", took.as_secs_f64());
        }
        println!("    {:7.1}s  total", total.as_secs_f64());
        let mut cases = self.cases.lock().unwrap().clone();
        cases.sort_by_key(|case| std::cmp::Reverse(case.1));
        println!("e2e: the {} slowest passing cases", Self::SLOWEST);
        for (name, took) in cases.iter().take(Self::SLOWEST) {
            println!("    {:7.1}s  {name}", took.as_secs_f64());
        }
    }
}
