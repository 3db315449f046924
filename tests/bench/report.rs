//! The metering paths' targets, and BENCHMARKS.md.

use std::process::Command;

use serde_json::{json, Value};

use super::{round, Findings, Outcome, Settings, WasmSize};

/// The ceiling every path is compared with.
const CEILING: &str = "ping (no auth)";

/// The metering hot paths' targets (8 connections, 2 cores): at least this share of the
/// ping route's requests per second, at most this much workerd CPU per request.
const USAGE_TARGETS: [(&str, &str, f64, f64); 5] = [
    ("usage quota", "GET /api/usage/quota", 0.25, 3.0),
    ("usage report", "POST /api/usage/report", 0.15, 5.0),
    ("usage reserve", "POST /api/usage/reserve", 0.15, 5.0),
    ("platform data", "POST /api/data", 0.15, 5.0),
    // Two metering batches and a model call (the fake model answers at once).
    ("model proxy", "POST /v1/chat/completions", 0.10, 8.0),
];

/// One metering path against its targets.
pub struct TargetCheck {
    scenario: &'static str,
    path: &'static str,
    rps: f64,
    ping_rps: f64,
    min_share: f64,
    /// Both workerd processes (the worker runtime and wrangler's dev proxy).
    cpu_ms: f64,
    /// The worker runtime's workerd alone.
    runtime_cpu_ms: f64,
    max_cpu_ms: f64,
}

impl TargetCheck {
    fn share(&self) -> f64 {
        if self.ping_rps > 0.0 {
            self.rps / self.ping_rps
        } else {
            0.0
        }
    }

    fn throughput_met(&self) -> bool {
        self.share() >= self.min_share
    }

    fn cpu_met(&self) -> bool {
        self.cpu_ms <= self.max_cpu_ms
    }

    fn runtime_verdict(&self) -> &'static str {
        if self.runtime_cpu_ms <= self.max_cpu_ms {
            "within"
        } else {
            "over"
        }
    }

    fn verdict(&self) -> &'static str {
        match (self.throughput_met(), self.cpu_met()) {
            (true, true) => "met",
            (false, true) => "MISSED (throughput)",
            (true, false) => "MISSED (CPU)",
            (false, false) => "MISSED (throughput and CPU)",
        }
    }

    /// One line for the terminal.
    pub fn sentence(&self) -> String {
        format!(
            "{}: {:.1} req/s = {:.0} % of ping (target >= {:.0} %), {:.2} ms workerd CPU per request (target <= {:.0} ms): {}; the worker runtime alone {:.2} ms ({})",
            self.path,
            self.rps,
            self.share() * 100.0,
            self.min_share * 100.0,
            self.cpu_ms,
            self.max_cpu_ms,
            self.verdict(),
            self.runtime_cpu_ms,
            self.runtime_verdict()
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "path": self.path,
            "rps": round(self.rps, 1),
            "share_of_ping": round(self.share(), 3),
            "min_share_of_ping": self.min_share,
            "workerd_cpu_ms_per_req": round(self.cpu_ms, 3),
            "runtime_workerd_cpu_ms_per_req": round(self.runtime_cpu_ms, 3),
            "max_workerd_cpu_ms_per_req": self.max_cpu_ms,
            "met": self.throughput_met() && self.cpu_met(),
        })
    }
}

/// Each metering path measured in this run, against its targets.
pub fn check_usage_targets(outcomes: &[Outcome]) -> Vec<TargetCheck> {
    let find = |name: &str| outcomes.iter().find(|o| o.name == name);
    let ping_rps = find(CEILING).map_or(0.0, |o| o.rps);
    USAGE_TARGETS
        .iter()
        .filter_map(|&(scenario, path, min_share, max_cpu_ms)| {
            find(scenario).map(|o| TargetCheck {
                scenario,
                path,
                rps: o.rps,
                ping_rps,
                min_share,
                cpu_ms: o.workerd_cpu_us_per_req / 1e3,
                runtime_cpu_ms: o.runtime_cpu_us_per_req / 1e3,
                max_cpu_ms,
            })
        })
        .collect()
}

/// Everything BENCHMARKS.md reports.
pub struct Report<'a> {
    pub outcomes: &'a [Outcome],
    pub settings: &'a Settings,
    pub wasm: &'a WasmSize,
    pub findings: &'a Findings,
    pub checks: &'a [TargetCheck],
}

/// BENCHMARKS.md: when, where and how it was measured, the metering paths against their
/// targets, every scenario, and how to read the numbers.
pub fn markdown(report: &Report) -> String {
    let s = report.settings;
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Written by `scripts/bench`; run it again to replace this file with your machine's \
         numbers. The worker runs under `wrangler dev` with local D1 and KV, exactly as the \
         end-to-end suite runs it, so these are local numbers: they compare paths with each \
         other, they do not predict the edge.\n\n",
    );
    md.push_str(&format!(
        "- Command: `BENCH_REQUESTS={} BENCH_CONCURRENCY={} BENCH_WARMUP={} BENCH_ROUNDS={} BENCH_USERS={} scripts/bench`\n",
        s.requests, s.concurrency, s.warmup, s.rounds, s.users
    ));
    md.push_str(&format!("- Measured: {}\n", utc_now()));
    md.push_str(&format!("- Commit: {}\n", commit()));
    md.push_str(&format!("- Machine: {}\n", machine()));
    md.push_str(&format!(
        "- Worker: `{}`, {} KiB ({} KiB gzipped)\n\n",
        report.wasm.path,
        report.wasm.bytes / 1024,
        report.wasm.gzip_bytes / 1024
    ));

    md.push_str("## Metering hot paths\n\n");
    md.push_str(&format!(
        "Targets for {} concurrent connections on a 2-core machine; `{CEILING}` in the same run is the ceiling.\n\n",
        s.concurrency
    ));
    md.push_str(
        "| path | req/s | share of ping | target | workerd CPU ms/req | runtime alone | target | |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---|\n");
    for c in report.checks {
        md.push_str(&format!(
            "| `{}` | {:.1} | {:.0} % | ≥ {:.0} % | {:.2} | {:.2} | ≤ {:.0} | {} |\n",
            c.path,
            c.rps,
            c.share() * 100.0,
            c.min_share * 100.0,
            c.cpu_ms,
            c.runtime_cpu_ms,
            c.max_cpu_ms,
            c.verdict()
        ));
    }
    md.push_str(
        "\n*workerd CPU* counts both `workerd` processes of `wrangler dev` (the worker runtime \
         and the dev proxy in front of it); *runtime alone* is the one running the worker, \
         with local D1 and KV. The verdict is on both.\n",
    );

    md.push_str("\n## Every scenario\n\n");
    md.push_str(&format!(
        "{} requests per scenario after each user's first request and {} warm-up requests, {} client threads; the median of {} interleaved rounds by CPU.\n\n",
        s.requests, s.warmup, s.concurrency, s.rounds
    ));
    md.push_str(
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | workerd CPU µs/req | runtime CPU µs/req | runtime cores | proxy cores |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for o in report.outcomes {
        // CPU seconds per second of the run: how busy each process kept a core.
        let cores = |us_per_req: f64| us_per_req * o.rps / 1e6;
        md.push_str(&format!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} |\n",
            o.name,
            o.rps,
            o.p50_ms,
            o.p95_ms,
            o.p99_ms,
            o.workerd_cpu_us_per_req,
            o.runtime_cpu_us_per_req,
            cores(o.runtime_cpu_us_per_req),
            cores(o.workerd_cpu_us_per_req - o.runtime_cpu_us_per_req)
        ));
    }
    md.push_str("\nIdentity:\n\n");
    for line in report.findings.lines() {
        md.push_str(&format!("- {}\n", line.trim()));
    }

    md.push_str(
        "\n## How to read these numbers\n\n\
         - **workerd CPU** is the user + system time of every `workerd` process of the \
         `wrangler dev` group, read from `/proc/<pid>/stat` before and after the measured \
         requests and divided by their number: the worker runtime (the worker itself, local \
         D1's SQLite and KV) plus wrangler's dev proxy. **runtime** is the runtime's \
         `workerd` alone. The clock ticks at 100 Hz, so a reading moves by ±0.5 ms between \
         rounds; the median round is reported.\n\
         - **req/s** is the measured requests divided by the wall time from the first sent to \
         the last answered. The load generator runs on the same cores as the worker.\n\
         - **cores** is CPU seconds per second of the run (µs/req × req/s). Under load both \
         `workerd` processes, and wrangler's `node`, stay about as busy whatever the route, \
         so a slower route shows more CPU per request there even where the process does no \
         more work per request (the dev proxy forwards every route alike). The dev proxy does \
         not exist when deployed; compare routes by the runtime's column first.\n\
         - Each authenticated request reads the caller from D1 and passes the plan's rate \
         limiter (in memory under `wrangler dev`). A quota read shares the caller lookup's \
         round trip (one D1 `batch`); a report and a reservation are one more `batch` each \
         (one round trip, one transaction; a report's device sighting is inside it).\n\
         - Reports carry a new `request_id` each; reservations hold 100 tokens each, far \
         below any user's limit, so every one is admitted.\n",
    );
    md
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".to_owned())
}

/// The commit measured, marked `-dirty` when the working tree had changes.
fn commit() -> String {
    let Some(rev) = command_line("git", &["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("`{rev}` (with uncommitted changes)")
    } else {
        format!("`{rev}`")
    }
}

/// Cores and CPU model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

/// The first line a command prints, if it succeeds.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}
