//! A server process owned by a test: its output goes to a log file (never to the test's own
//! stdout/stderr, which nextest watches for leaked handles), it dies with the test, and it can be
//! killed abruptly or stopped gracefully.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    child: Option<Child>,
    log_path: PathBuf,
}

/// Why a server did not become ready.
pub enum NotReady {
    Exited(ExitStatus),
    TimedOut(Duration),
}

impl NotReady {
    /// What to do about it, appended to the failure message.
    pub fn hint(&self) -> &'static str {
        match self {
            NotReady::Exited(_) => "\n(if the binaries are missing or broken, run scripts/setup; if the template is damaged, delete target/testenv-cache)",
            NotReady::TimedOut(_) => "\n(the machine may be overloaded; the log above shows how far start-up got)",
        }
    }
}

/// Where the time of a server start went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartTimings {
    /// Finding the data directory template (building it, once per machine) and copying it, TLS
    /// files.
    pub prepare: Duration,
    /// Process spawn until the server accepted the first connection and its admin account was set.
    pub launch: Duration,
    pub total: Duration,
}

impl StartTimings {
    pub fn since(started: Instant, prepared: Duration) -> StartTimings {
        let total = started.elapsed();
        StartTimings { prepare: prepared, launch: total.saturating_sub(prepared), total }
    }
}

/// A start attempt that failed.
pub struct StartFailure {
    pub message: String,
    /// This attempt's log says the port was bound by someone else: retry with another port.
    pub port_taken: bool,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "exited during start-up ({status})"),
            NotReady::TimedOut(waited) => write!(f, "was not ready after {waited:?}"),
        }
    }
}

impl ServerProcess {
    /// Spawns `command` with stdin closed and stdout/stderr appended to `log_path`.
    ///
    /// The child stays in the test's process group, so a test runner that signals the group on a
    /// timeout reaches it, and it gets a parent-death signal: if the test process dies without
    /// running Drop (SIGKILL), the kernel kills the server too. That signal follows the spawning
    /// *thread*; servers are spawned from the test's async context, whose thread outlives the
    /// server handle.
    pub fn spawn(mut command: Command, log_path: &Path) -> io::Result<ServerProcess> {
        let log = open_log(log_path)?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing. It runs after the
        // uid/gid switch, which would otherwise clear the parent-death signal.
        unsafe {
            command.pre_exec(die_with_parent);
        }
        let child = command.spawn()?;
        Ok(ServerProcess { child: Some(child), log_path: log_path.to_path_buf() })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited (and been reaped).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten(),
            None => None,
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    /// SIGKILL to the server and everything it started, then reap. Abrupt on purpose: no
    /// shutdown work runs, as in a crash. PostgreSQL's backends make themselves session leaders,
    /// so the process group alone would miss them: the server is frozen (no more forks), its
    /// children are listed, and all are killed together. Returns once they are gone, because
    /// PostgreSQL refuses to start while a killed backend is still attached to the old shared
    /// memory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Once reaped, its pid may already belong to another process: never signal that.
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            let pid = child.id();
            signal_process(pid, libc::SIGSTOP);
            let children = children_of(pid);
            signal_process(pid, libc::SIGKILL);
            for &orphan in &children {
                signal_process(orphan, libc::SIGKILL);
            }
            let _ = child.wait();
            wait_until_gone(&children, Duration::from_secs(5));
        }
    }

    /// Asks the server to shut down with `signal` and waits up to `grace`, then kills it.
    pub async fn shut_down(&mut self, signal: libc::c_int, grace: Duration) {
        let Some(child) = self.child.as_mut() else { return };
        if child.try_wait().ok().flatten().is_none() {
            signal_process(child.id(), signal);
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() && started.elapsed() < grace {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.kill();
    }

    /// Polls `probe` until it says the server is ready, the process exits, or `limit` passes.
    pub async fn wait_until_ready<F, Fut>(&mut self, limit: Duration, mut probe: F) -> Result<Duration, NotReady>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Err(NotReady::Exited(status));
            }
            if probe().await {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(NotReady::TimedOut(limit));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read(&self.log_path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        format!("(the log {} is empty)", path.display())
    } else {
        format!("last lines of {}:\n{}", path.display(), tail.join("\n"))
    }
}

/// Runs a short command to completion and returns its stdout, or a message with its output.
pub fn run_to_completion(mut command: Command) -> Result<String, String> {
    let description = format!("{command:?}");
    let output = command.stdin(Stdio::null()).output().map_err(|err| format!("cannot run {description}: {err}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{description} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG with a valid signal number has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}


/// The pids whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| process_stat(candidate).is_some_and(|(_, parent)| parent == pid))
        .collect()
}

/// State letter and parent pid of a process, from /proc/<pid>/stat.
fn process_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Killed children are reparented and reaped by init; a zombie holds no resources any more.
fn wait_until_gone(pids: &[u32], limit: Duration) {
    let started = Instant::now();
    let alive = |pid: u32| process_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X');
    while pids.iter().any(|&pid| alive(pid)) && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal_process(pid: u32, signal: libc::c_int) {
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Arranges for `command` to run as `user` (the spawned pid is then the server itself, not a
/// `su`/`runuser` wrapper, so signals reach it directly).
pub fn run_as(command: &mut Command, user: &crate::system_user::SystemUser) {
    command.uid(user.uid).gid(user.gid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_parent_of_this_process() {
        let (state, parent) = process_stat(std::process::id()).expect("own stat");
        // The main thread of a test binary is running or waiting for the test threads.
        assert!(matches!(state, 'R' | 'S'), "state {state}");
        // SAFETY: getppid cannot fail.
        assert_eq!(parent, unsafe { libc::getppid() } as u32);
    }

    #[test]
    fn kill_takes_the_children_down_too() {
        let mut command = Command::new("sh");
        // A parent that starts a child in a new session (as PostgreSQL's backends make themselves).
        command.arg("-c").arg("setsid sleep 60 & echo $! ; wait");
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut process = ServerProcess::spawn(command, log.path()).unwrap();
        let started = Instant::now();
        let child_pid = loop {
            if let Ok(pid) = std::fs::read_to_string(log.path()).unwrap_or_default().trim().parse::<u32>() {
                break pid;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the child never started");
            std::thread::sleep(Duration::from_millis(5));
        };
        process.kill();
        let gone = |pid: u32| process_stat(pid).is_none_or(|(state, _)| state == 'Z');
        assert!(gone(child_pid), "the child {child_pid} outlived kill");
    }
}
