//! CPU time of the worker's processes, read from `/proc/<pid>/stat`.
//!
//! The harness starts `wrangler dev` under a `sh` that leads its own process group, as a child
//! of this process. The worker's processes are therefore this process's descendants (and the
//! members of their process groups); of those, the ones named `workerd` run the worker, the
//! rest (`sh`, wrangler's `node`) proxy, log and supervise.

use std::collections::{BTreeMap, BTreeSet};

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub comm: String,
    /// `utime + stime` (fields 14 and 15), in clock ticks.
    pub ticks: u64,
}

/// The CPU time of the wrangler group's processes at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Ticks by pid, with the process's name.
    pub procs: BTreeMap<i32, (String, u64)>,
}

impl Snapshot {
    /// Every process descending from this one, plus every member of their process groups
    /// (other than this process's own group).
    pub fn take() -> Result<Self, String> {
        let all = all_procs()?;
        let me = std::process::id() as i32;
        let my_pgrp = all.get(&me).map(|p| p.pgrp);
        let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in all.values() {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        let mut descendants = BTreeSet::new();
        let mut todo = vec![me];
        while let Some(pid) = todo.pop() {
            for &child in children.get(&pid).into_iter().flatten() {
                if descendants.insert(child) {
                    todo.push(child);
                }
            }
        }
        let groups: BTreeSet<i32> = descendants
            .iter()
            .filter_map(|pid| all.get(pid))
            .map(|p| p.pgrp)
            .filter(|g| Some(*g) != my_pgrp)
            .collect();
        let procs = all
            .values()
            .filter(|p| descendants.contains(&p.pid) || groups.contains(&p.pgrp))
            .map(|p| (p.pid, (p.comm.clone(), p.ticks)))
            .collect();
        Ok(Self { procs })
    }

    /// Processes named `workerd`.
    pub fn workerd_pids(&self) -> Vec<i32> {
        self.procs
            .iter()
            .filter(|(_, (comm, _))| comm == "workerd")
            .map(|(pid, _)| *pid)
            .collect()
    }
}

/// CPU used between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Microseconds of CPU of the `workerd` processes.
    pub workerd_us: f64,
    /// Microseconds of CPU of the `workerd` that runs the worker itself (see [`role`]); the
    /// rest of `workerd_us` is wrangler's dev proxy.
    pub runtime_us: f64,
    /// Microseconds of CPU of every process in the group (including `workerd`).
    pub group_us: f64,
    /// Microseconds per process: `(pid, comm, us)`.
    pub per_process: Vec<(i32, String, f64)>,
}

impl Usage {
    /// The CPU used from `before` to `after`. A process that appeared in between counts in
    /// full; one that ended in between is lost (neither happens while a worker is serving).
    pub fn between(before: &Snapshot, after: &Snapshot) -> Self {
        let us_per_tick = 1e6 / clock_ticks_per_second();
        let mut usage = Self::default();
        for (pid, (comm, ticks)) in &after.procs {
            let start = before
                .procs
                .get(pid)
                .filter(|(c, _)| c == comm)
                .map_or(0, |(_, t)| *t);
            let us = ticks.saturating_sub(start) as f64 * us_per_tick;
            usage.group_us += us;
            if comm == "workerd" {
                usage.workerd_us += us;
                if role(*pid, comm) == "worker runtime" {
                    usage.runtime_us += us;
                }
            }
            usage.per_process.push((*pid, comm.clone(), us));
        }
        usage
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `utime` and `stime`.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Every process now (processes, not threads: `/proc` lists thread-group leaders).
fn all_procs() -> Result<BTreeMap<i32, Proc>, String> {
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("read /proc: {e}"))?;
    let mut procs = BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(proc) = parse_stat(pid, &stat) {
            procs.insert(pid, proc);
        }
    }
    Ok(procs)
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ... utime stime ...`. `comm` may
/// contain spaces and parentheses, so the fields after it are found from the last `)`.
fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // Field 3 (state) is index 0 here, so field N is index N - 3.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Proc {
        pid,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        comm,
        ticks: field(14)?.parse::<u64>().ok()? + field(15)?.parse::<u64>().ok()?,
    })
}

/// What a process of the group does, as far as its command line tells: wrangler 4 runs the
/// worker (with local D1 and KV) in a `workerd` that has an inspector, and its dev proxy (which
/// owns the port clients connect to) in another `workerd`.
pub fn role(pid: i32, comm: &str) -> &'static str {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let has = |needle: &[u8]| cmdline.windows(needle.len()).any(|w| w == needle);
    match comm {
        "workerd" if has(b"--inspector-addr") => "worker runtime",
        "workerd" => "dev proxy",
        "node" if has(b"wrangler") => "wrangler",
        _ => "",
    }
}
