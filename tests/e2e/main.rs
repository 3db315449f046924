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
use std::sync::Arc;

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

    let world = match World::start() {
        Ok(world) => Arc::new(world),
        Err(err) => {
            eprintln!("e2e: could not start the worker: {err}");
            return ExitCode::FAILURE;
        }
    };
    let parallel = libtest_mimic::run(&args, trials(&world, cases));
    let serial_args = Arguments {
        test_threads: Some(1),
        ..args
    };
    let serial = libtest_mimic::run(&serial_args, trials(&world, serial));
    let failed = parallel.has_failed() || serial.has_failed();
    if failed {
        world.print_worker_log_tail(60);
    }
    drop(world);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn trials(world: &Arc<World>, cases: Vec<api::Case>) -> Vec<Trial> {
    cases
        .into_iter()
        .map(|(name, case)| {
            let world = Arc::clone(world);
            Trial::test(name, move || {
                case(&world);
                Ok(())
            })
        })
        .collect()
}
