//! `wrangler dev` as a child process group: fresh state, migrations applied, free ports,
//! and a teardown that cannot be skipped.
//!
//! The worker runs under a small `sh` that is the leader of its own process group. The shell
//! waits on a pipe from this test process; when the pipe closes — on normal teardown, on a
//! panic, or because this process died — the shell kills its whole group (wrangler, workerd).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A number per worker this process starts: a test that starts a second worker (with other
/// settings) must get a state directory of its own, not wipe the shared worker's.
fn next_run() -> usize {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How long the worker may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct WorkerProcess {
    root: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    base_url: String,
    child: Child,
    lifeline: Option<ChildStdin>,
}

impl WorkerProcess {
    /// Applies migrations to a fresh local state directory and starts `wrangler dev` on it.
    pub fn start(vars: &BTreeMap<&str, String>) -> Result<Self, String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let run_dir = root.join("target").join("e2e").join(format!(
            "run-{}-{}",
            std::process::id(),
            next_run()
        ));
        let _ = std::fs::remove_dir_all(&run_dir);
        let state_dir = run_dir.join("state");
        std::fs::create_dir_all(&state_dir).map_err(|e| format!("create {state_dir:?}: {e}"))?;

        // Test vars go in an env file of their own, so a developer's .dev.vars never leaks in.
        let env_file = run_dir.join("test.env");
        let mut env_text = String::new();
        for (name, value) in vars {
            env_text.push_str(&format!("{name}={value}\n"));
        }
        std::fs::write(&env_file, env_text).map_err(|e| format!("write {env_file:?}: {e}"))?;

        let migrate = wrangler(&root)
            .args([
                "d1",
                "migrations",
                "apply",
                "DB",
                "--local",
                "-c",
                "wrangler.dev.toml",
            ])
            .arg("--persist-to")
            .arg(&state_dir)
            .output()
            .map_err(|e| format!("run wrangler d1 migrations apply: {e}"))?;
        if !migrate.status.success() {
            return Err(format!(
                "migrations failed:\n{}{}",
                String::from_utf8_lossy(&migrate.stdout),
                String::from_utf8_lossy(&migrate.stderr)
            ));
        }

        let port = free_port()?;
        let inspector_port = free_port()?;
        let log_path = run_dir.join("wrangler.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("clone log: {e}"))?;

        let script = r#"wrangler="$1"; shift
"$wrangler" "$@" </dev/null &
read -r _ignored
kill -TERM 0"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(root.join("node_modules/.bin/wrangler"))
            .args(["dev", "-c", "wrangler.dev.toml", "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--inspector-port", &inspector_port.to_string()])
            .arg("--persist-to")
            .arg(&state_dir)
            .arg("--env-file")
            .arg(&env_file)
            .args(["--show-interactive-dev-session=false", "--log-level", "log"])
            .current_dir(&root)
            .envs(wrangler_env())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn wrangler dev: {e}"))?;
        let lifeline = child.stdin.take();

        let mut worker = Self {
            root,
            state_dir,
            log_path,
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            lifeline,
        };
        worker.wait_until_ready()?;
        Ok(worker)
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let deadline = Instant::now() + START_TIMEOUT;
        let ping = format!("{}/api/health/ping", self.base_url);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "wrangler dev exited early ({status}):\n{}",
                    self.log()
                ));
            }
            if agent.get(&ping).call().is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "wrangler dev did not answer within {START_TIMEOUT:?}:\n{}",
            self.log()
        ))
    }

    /// Where the worker listens.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Everything wrangler and the worker printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs SQL against the worker's local D1 through `wrangler d1 execute` and returns the rows.
    pub fn d1_query(&self, sql: &str) -> Vec<serde_json::Value> {
        self.d1_query_all(sql).swap_remove(0)
    }

    /// Runs one or more `;`-separated statements and returns each one's rows, in order.
    pub fn d1_query_all(&self, sql: &str) -> Vec<Vec<serde_json::Value>> {
        // The running worker holds the same SQLite file; a read that lands during one of its
        // writes gets SQLITE_BUSY, which is worth a short retry, not a failed test.
        let mut attempt = 0;
        loop {
            match self.d1_query_once(sql) {
                Err(busy) if attempt < 10 && busy.contains("SQLITE_BUSY") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
                }
                Err(failure) => panic!("{failure}"),
                Ok(rows) => return rows,
            }
        }
    }

    fn d1_query_once(&self, sql: &str) -> Result<Vec<Vec<serde_json::Value>>, String> {
        let out = wrangler(&self.root)
            .args([
                "d1",
                "execute",
                "DB",
                "--local",
                "-c",
                "wrangler.dev.toml",
                "--json",
            ])
            .arg("--persist-to")
            .arg(&self.state_dir)
            .args(["--command", sql])
            .output()
            .expect("run wrangler d1 execute");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "d1 execute failed for {sql}:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let parsed: serde_json::Value = serde_json::from_str(&stdout)
            .map_err(|e| format!("d1 output is not JSON ({e}):\n{stdout}"))?;
        parsed
            .as_array()
            .filter(|statements| !statements.is_empty())
            .ok_or_else(|| format!("d1 output has no statements:\n{stdout}"))?
            .iter()
            .map(|statement| {
                statement["results"]
                    .as_array()
                    .cloned()
                    .ok_or_else(|| format!("d1 output has no results:\n{stdout}"))
            })
            .collect()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Closing the lifeline makes the group leader kill the whole group.
        if let Some(mut lifeline) = self.lifeline.take() {
            let _ = lifeline.write_all(b"\n");
        }
        let pgid = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever is left of the group. (Not /usr/bin/kill: procps parses `-PGID`
        // as options, and `kill -KILL -16121` can end up signalling every process.)
        if let Some(pgid) = libc::pid_t::try_from(pgid).ok().filter(|p| *p > 1) {
            // SAFETY: killpg only sends a signal; pgid is our child's own group (> 0).
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

fn wrangler(root: &Path) -> Command {
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.current_dir(root)
        .envs(wrangler_env())
        .stdin(Stdio::null());
    cmd
}

fn wrangler_env() -> [(&'static str, &'static str); 3] {
    [
        ("WRANGLER_SEND_METRICS", "false"),
        ("CI", "true"),
        ("NO_COLOR", "1"),
    ]
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}
