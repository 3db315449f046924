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

/// A local state directory with every migration applied, made once per test process (one
/// `wrangler d1 migrations apply`); each worker starts on a copy of it.
fn migrated_state(root: &Path) -> Result<&'static Path, String> {
    static STATE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    STATE
        .get_or_init(|| {
            let dir = root
                .join("target")
                .join("e2e")
                .join(format!("migrated-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {dir:?}: {e}"))?;
            let migrate = wrangler(root)
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
                .arg(&dir)
                .output()
                .map_err(|e| format!("run wrangler d1 migrations apply: {e}"))?;
            if !migrate.status.success() {
                return Err(format!(
                    "migrations failed:\n{}{}",
                    String::from_utf8_lossy(&migrate.stdout),
                    String::from_utf8_lossy(&migrate.stderr)
                ));
            }
            Ok(dir)
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// Copies the directory tree `from` into `to` (which exists).
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("read {from:?}: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {from:?}: {e}"))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| format!("create {target:?}: {e}"))?;
            copy_dir(&source, &target)?;
        } else {
            std::fs::copy(&source, &target)
                .map_err(|e| format!("copy {source:?} to {target:?}: {e}"))?;
        }
    }
    Ok(())
}

/// How long the worker may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct WorkerProcess {
    state_dir: PathBuf,
    log_path: PathBuf,
    base_url: String,
    child: Child,
    lifeline: Option<ChildStdin>,
}

impl WorkerProcess {
    /// Starts `wrangler dev` on a fresh local state directory with the migrations applied.
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

        copy_dir(migrated_state(&root)?, &state_dir)?;

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
            // A dev registry of its own: wrangler dev instances sharing the default one
            // (~/.config/.wrangler/registry) hear of each other's starts and stops, and the
            // runtime reload that follows fails every request in flight with the proxy's
            // 503 "worker restarted mid-request"; cases that start a worker of their own
            // would do that to the shared worker.
            .env("WRANGLER_REGISTRY_PATH", run_dir.join("registry"))
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn wrangler dev: {e}"))?;
        let lifeline = child.stdin.take();

        let mut worker = Self {
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

    /// The file wrangler and the worker print to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything wrangler and the worker printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs one or more `;`-separated statements, in one transaction, and returns each one's
    /// rows, in order (a statement that returns no rows gives an empty list).
    ///
    /// Local D1 is a SQLite file in WAL mode that `workerd` holds open; this opens the same
    /// file in-process, as `wrangler d1 execute --local` would from a process of its own,
    /// and reads committed data without blocking the worker. Values come back as D1's JSON
    /// has them (a whole REAL is a JSON integer, as JavaScript writes it).
    pub fn d1_query_all(&self, sql: &str) -> Vec<Vec<serde_json::Value>> {
        // A write of the worker's that lands during a write of ours is worth a short wait
        // (and a retry), not a failed test.
        let mut attempt = 0;
        loop {
            match self.d1_query_once(sql) {
                Err(busy) if attempt < 10 && busy.contains("locked") => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
                Err(failure) => panic!("{failure}"),
                Ok(rows) => return rows,
            }
        }
    }

    /// The worker's D1 database file: the one SQLite file of the D1 object that is not its
    /// metadata.
    fn d1_file(&self) -> Result<PathBuf, String> {
        let dir = self.state_dir.join("v3/d1/miniflare-D1DatabaseObject");
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("read {dir:?}: {e}"))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| {
                path.extension().is_some_and(|e| e == "sqlite")
                    && path.file_stem().is_some_and(|stem| stem != "metadata")
            })
            .collect();
        match files.len() {
            1 => Ok(files.remove(0)),
            n => Err(format!(
                "{dir:?} holds {n} D1 databases, not one: {files:?}"
            )),
        }
    }

    fn d1_query_once(&self, sql: &str) -> Result<Vec<Vec<serde_json::Value>>, String> {
        use rusqlite::fallible_iterator::FallibleIterator;
        use rusqlite::{Connection, OpenFlags};
        let failed = |e: rusqlite::Error| format!("D1 query failed for {sql}: {e}");
        let mut connection = Connection::open_with_flags(
            self.d1_file()?,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(failed)?;
        let transaction = connection.transaction().map_err(failed)?;
        let mut results = Vec::new();
        {
            let mut batch = rusqlite::Batch::new(&transaction, sql);
            while let Some(mut statement) = batch.next().map_err(failed)? {
                let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
                let mut rows = statement.raw_query();
                let mut found = Vec::new();
                while let Some(row) = rows.next().map_err(failed)? {
                    let mut object = serde_json::Map::new();
                    for (i, name) in names.iter().enumerate() {
                        let value = row.get_ref(i).map_err(failed)?;
                        object.insert(name.clone(), json_of(value));
                    }
                    found.push(serde_json::Value::Object(object));
                }
                results.push(found);
            }
        }
        transaction.commit().map_err(failed)?;
        if results.is_empty() {
            return Err(format!("no statement in {sql}"));
        }
        Ok(results)
    }
}

/// A SQLite value as D1 answers it in JSON.
fn json_of(value: rusqlite::types::ValueRef<'_>) -> serde_json::Value {
    use rusqlite::types::ValueRef;
    use serde_json::Value;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        // JavaScript writes 3.0 as 3.
        ValueRef::Real(r) if r.fract() == 0.0 && r.abs() < 9_007_199_254_740_992.0 => {
            Value::from(r as i64)
        }
        ValueRef::Real(r) => Value::from(r),
        ValueRef::Text(text) => Value::from(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::from(bytes.to_vec()),
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
